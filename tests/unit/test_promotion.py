"""The promotion rule (paired bootstrap, fixed-set floor) and the held-out feedback split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from dikkat.training.candidate import is_held_out, split_feedback
from dikkat.training.promotion import (
    Decision,
    Paired,
    decide,
    fixed_metrics,
    macro_f1_rows,
    probability_better,
)


def scores(fixed: float, feedback: float | None = None, n: int = 50) -> dict:
    record = {"fixed": {"n": 700, "accuracy": fixed, "macro_f1": fixed}}
    record["feedback"] = (
        {"n": n, "accuracy": feedback, "macro_f1": feedback} if feedback else {"n": 0}
    )
    return record


def paired(n: int, fixed_by_candidate: int, broken_by_candidate: int, seed: int = 0) -> Paired:
    """n texts; the active head is right on half; the candidate fixes / breaks some answers."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 3, n)
    active = np.where(np.arange(n) % 2 == 0, gold, (gold + 1) % 3)
    candidate = active.copy()
    wrong, right = np.flatnonzero(active != gold), np.flatnonzero(active == gold)
    candidate[wrong[:fixed_by_candidate]] = gold[wrong[:fixed_by_candidate]]
    candidate[right[:broken_by_candidate]] = (gold[right[:broken_by_candidate]] + 2) % 3
    return Paired(gold, active, candidate)


def rule(before: dict, after: dict, held: Paired | None, floor: float | None = 0.70) -> Decision:
    return decide(
        before, after, held=held, floor=floor, confidence=0.9, tolerance=0.01, min_feedback_eval=20
    )


def test_a_clearly_better_candidate_above_the_floor_is_promoted() -> None:
    decision = rule(scores(0.80, 0.50), scores(0.78, 0.60), paired(200, 25, 3))
    assert decision.promote and decision.p_better > 0.99
    assert "P(better)" in decision.reason and "floor 0.700" in decision.reason
    assert decision.record() == {
        "promoted": True,
        "p_better": round(decision.p_better, 4),
        "confidence": 0.9,
        "fixed_floor": 0.7,
    }


def test_luck_does_not_promote_and_the_floor_does_not_ratchet() -> None:
    assert not rule(scores(0.80, 0.50), scores(0.80, 0.51), paired(200, 6, 5)).promote
    assert rule(scores(0.80, 0.50), scores(0.69, 0.60), paired(200, 25, 3)).promote is False
    # a lucky active score (0.95) does not raise the bar: the floor is the shipped head's
    assert rule(scores(0.95, 0.50), scores(0.75, 0.60), paired(200, 25, 3)).promote


def test_worse_on_feedback_is_rejected_whatever_the_fixed_set() -> None:
    decision = rule(scores(0.80, 0.60), scores(0.90, 0.50), paired(200, 3, 25))
    assert not decision.promote and decision.p_better < 0.01


def test_with_too_little_held_out_feedback_the_fixed_set_decides() -> None:
    few = paired(10, 0, 5)
    assert rule(scores(0.80), scores(0.795), few).promote  # within tolerance, above the floor
    assert not rule(scores(0.80), scores(0.78), few).promote  # worse than tolerance
    assert not rule(scores(0.72), scores(0.715, None), None, floor=0.72).promote  # below floor
    decision = rule(scores(0.80), scores(0.81), None, floor=None)
    assert decision.promote and decision.p_better is None and "no floor" in decision.reason


def test_flat_legacy_metrics_count_as_the_fixed_set() -> None:
    legacy = {"n": 194, "accuracy": 0.8, "macro_f1": 0.78}
    assert fixed_metrics(legacy) == legacy and fixed_metrics(scores(0.7))["macro_f1"] == 0.7
    assert rule(legacy, scores(0.775), None).promote


def test_bootstrap_macro_f1_matches_the_metrics_module() -> None:
    held = paired(300, 40, 10, seed=4)
    for answers in (held.active, held.candidate):
        expected = f1_score(held.gold, answers, average="macro", labels=[0, 1, 2])
        assert macro_f1_rows(held.gold[None], answers[None])[0] == pytest.approx(expected)
    assert probability_better(held) == probability_better(held)  # seeded: the same answer


def test_feedback_split_is_stable_disjoint_and_near_the_share() -> None:
    feedback = [(f"yorum numarası {i}", "positive") for i in range(2000)]
    train, held = split_feedback(feedback, 0.2)
    assert len(train) + len(held) == 2000 and not {t for t, _ in train} & {t for t, _ in held}
    assert 300 < len(held) < 500
    again_train, again_held = split_feedback(list(reversed(feedback)), 0.2)
    assert {t for t, _ in again_held} == {t for t, _ in held}
    assert split_feedback(feedback, 0.0) == (feedback, [])
    assert all(is_held_out(text, 0.2) for text, _ in held)
