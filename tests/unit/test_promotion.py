"""The promotion rule and the held-out feedback split, on plain numbers."""

from __future__ import annotations

import pytest

from dikkat.training.candidate import is_held_out, split_feedback
from dikkat.training.promotion import fixed_metrics, should_promote


def scores(fixed: float, feedback: float | None = None, n: int = 50) -> dict:
    record = {"fixed": {"n": 194, "accuracy": fixed, "macro_f1": fixed}}
    record["feedback"] = (
        {"n": n, "accuracy": feedback, "macro_f1": feedback} if feedback else {"n": 0}
    )
    return record


@pytest.mark.parametrize(
    ("before", "after", "promote"),
    [
        (scores(0.80, 0.50), scores(0.795, 0.62), True),  # better for users, fixed within tolerance
        (scores(0.80, 0.50), scores(0.70, 0.70), False),  # better for users, fixed set collapsed
        (scores(0.80, 0.60), scores(0.85, 0.55), False),  # worse on held-out feedback
        (scores(0.80, 0.60), scores(0.81, 0.60), True),  # tie on feedback, better on fixed
        (scores(0.80, 0.60), scores(0.80, 0.60), False),  # nothing gained
        (scores(0.80), scores(0.795), True),  # no held-out feedback: fixed set should_promotes
        (scores(0.80, 0.9, n=5), scores(0.81, 0.1, n=5), True),  # too few held-out rows
    ],
)
def test_should_promote(before: dict, after: dict, promote: bool) -> None:
    decision, reason = should_promote(before, after, tolerance=0.01, min_feedback_eval=20)
    assert decision is promote
    assert "fixed set" in reason


def test_flat_legacy_metrics_count_as_the_fixed_set() -> None:
    legacy = {"n": 194, "accuracy": 0.8, "macro_f1": 0.78}
    assert fixed_metrics(legacy) == legacy and fixed_metrics(scores(0.7))["macro_f1"] == 0.7
    assert should_promote(legacy, scores(0.775), tolerance=0.01, min_feedback_eval=20)[0]


def test_feedback_split_is_stable_disjoint_and_near_the_share() -> None:
    feedback = [(f"yorum numarası {i}", "positive") for i in range(2000)]
    train, held = split_feedback(feedback, 0.2)
    assert len(train) + len(held) == 2000 and not {t for t, _ in train} & {t for t, _ in held}
    assert 300 < len(held) < 500
    again_train, again_held = split_feedback(list(reversed(feedback)), 0.2)
    assert {t for t, _ in again_held} == {t for t, _ in held}
    assert split_feedback(feedback, 0.0) == (feedback, [])
    assert all(is_held_out(text, 0.2) for text, _ in held)
