"""The promotion rule: better for the users on held-out feedback, no worse on the fixed set."""

from __future__ import annotations

from typing import Any


def fixed_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The fixed-set part of a metrics record (older records hold only that, unnested)."""
    if not metrics:
        return {}
    return metrics.get("fixed", metrics)


def should_promote(
    before: dict[str, Any], after: dict[str, Any], *, tolerance: float, min_feedback_eval: int
) -> tuple[bool, str]:
    """Promote? Better on held-out feedback (when there is enough of it) and no worse than
    `tolerance` on the fixed set; with too little held-out feedback the fixed set decides."""
    fixed_before = fixed_metrics(before)["macro_f1"]
    fixed_after = fixed_metrics(after)["macro_f1"]
    fixed_ok = fixed_after >= fixed_before - tolerance
    fixed_note = f"fixed set {fixed_before:.3f} -> {fixed_after:.3f} (tolerance {tolerance:g})"
    held_before, held_after = before.get("feedback", {}), after.get("feedback", {})
    n_held = int(held_after.get("n", 0))
    if n_held < min_feedback_eval:
        reason = f"{fixed_note}; {n_held} held-out feedback rows (< {min_feedback_eval}, not used)"
        return fixed_ok, reason
    better = held_after["macro_f1"] > held_before["macro_f1"] or (
        held_after["macro_f1"] == held_before["macro_f1"] and fixed_after > fixed_before
    )
    reason = (
        f"held-out feedback {held_before['macro_f1']:.3f} -> {held_after['macro_f1']:.3f} "
        f"(n={n_held}); {fixed_note}"
    )
    return fixed_ok and better, reason
