"""The promotion rule: better for the users with confidence, and above a fixed-set floor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP_DRAWS = 2000


def fixed_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The fixed-set part of a metrics record (older records hold only that, unnested)."""
    if not metrics:
        return {}
    return metrics.get("fixed", metrics)


@dataclass(frozen=True)
class Paired:
    """Gold labels and both heads' predicted labels on the same texts (class indices)."""

    gold: np.ndarray
    active: np.ndarray
    candidate: np.ndarray

    def __len__(self) -> int:
        return len(self.gold)


def macro_f1_rows(gold: np.ndarray, predicted: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Macro-F1 of every row of (draws, n) label arrays, over the classes present in its gold."""
    scores, present = [], []
    for c in range(n_classes):
        is_gold, is_predicted = gold == c, predicted == c
        hits = (is_gold & is_predicted).sum(axis=1)
        size = is_gold.sum(axis=1) + is_predicted.sum(axis=1)
        scores.append(np.divide(2.0 * hits, size, out=np.zeros(len(gold)), where=size > 0))
        present.append(is_gold.any(axis=1))
    scores_a, present_a = np.stack(scores, axis=1), np.stack(present, axis=1)
    return (scores_a * present_a).sum(axis=1) / np.maximum(present_a.sum(axis=1), 1)


def probability_better(paired: Paired, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> float:
    """Paired bootstrap: the share of resamples of the texts in which the candidate's macro-F1
    beats the active head's (ties count half)."""
    if not len(paired):
        return 0.5
    rows = np.random.default_rng(seed).integers(0, len(paired), size=(draws, len(paired)))
    gold = paired.gold[rows]
    candidate = macro_f1_rows(gold, paired.candidate[rows])
    active = macro_f1_rows(gold, paired.active[rows])
    return float(np.mean(candidate > active) + 0.5 * np.mean(candidate == active))


@dataclass(frozen=True)
class Decision:
    """Promote or not, why, and the numbers that decided it (kept with the run and version)."""

    promote: bool
    reason: str
    p_better: float | None
    confidence: float
    floor: float | None

    def record(self) -> dict[str, Any]:
        """What /models, /retrain and `dikkat retrain --json` show."""
        return {
            "promoted": self.promote,
            "p_better": None if self.p_better is None else round(self.p_better, 4),
            "confidence": self.confidence,
            "fixed_floor": None if self.floor is None else round(self.floor, 4),
        }


def decide(
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    held: Paired | None,
    floor: float | None,
    confidence: float,
    tolerance: float,
    min_feedback_eval: int,
) -> Decision:
    """Promote when, on held-out feedback, the candidate is better with probability at least
    `confidence` (paired bootstrap) and its fixed-set macro-F1 is at least `floor` (the shipped
    head's score minus the tolerance: a lucky active score does not raise it). With fewer than
    `min_feedback_eval` held-out texts the fixed set decides: at least the floor and no worse
    than the active head by more than `tolerance`."""
    fixed_before = fixed_metrics(before)["macro_f1"]
    fixed_after = fixed_metrics(after)["macro_f1"]
    above_floor = floor is None or fixed_after >= floor
    floor_note = "no floor" if floor is None else f"floor {floor:.3f}"
    fixed_note = f"fixed set {fixed_before:.3f} -> {fixed_after:.3f} ({floor_note})"
    if held is None or len(held) < min_feedback_eval:
        n_held = 0 if held is None else len(held)
        promote = above_floor and fixed_after >= fixed_before - tolerance
        reason = (
            f"{fixed_note}, tolerance {tolerance:g}; {n_held} held-out feedback rows "
            f"(< {min_feedback_eval}, not used)"
        )
        return Decision(promote, reason, None, confidence, floor)
    p_better = probability_better(held)
    feedback_before = before.get("feedback", {}).get("macro_f1", float("nan"))
    feedback_after = after.get("feedback", {}).get("macro_f1", float("nan"))
    reason = (
        f"held-out feedback {feedback_before:.3f} -> {feedback_after:.3f} (n={len(held)}, "
        f"P(better) {p_better:.2f}, needs {confidence:g}); {fixed_note}"
    )
    return Decision(above_floor and p_better >= confidence, reason, p_better, confidence, floor)
