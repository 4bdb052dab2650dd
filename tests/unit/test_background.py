"""The training worker process trains what this process would; a broken worker is no failure."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from dikkat.models.head import LABELS
from dikkat.training.background import train_head_in_worker
from dikkat.training.sentiment import train_head


def small_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.choice(np.array(LABELS), 120)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    X[:, 0] += np.select([y == "negative", y == "positive"], [-2.0, 2.0], 0.0)
    return X[:90], y[:90], X[90:], y[90:]


def test_the_worker_process_trains_the_same_head_as_this_process() -> None:
    X, y, X_val, y_val = small_problem()
    start = train_head(X, y, epochs=2, seed=1).head  # a warm start, as a retrain's candidate has
    here = train_head(X, y, X_val, y_val, epochs=5, seed=3, init=start)
    there = train_head_in_worker(X, y, X_val, y_val, epochs=5, seed=3, init=start, nice=5)
    assert there.best_epoch == here.best_epoch
    np.testing.assert_allclose(there.head.predict_proba(X_val), here.head.predict_proba(X_val))


def test_a_worker_that_cannot_run_falls_back_to_training_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self, *args, **kwargs):
        raise BrokenProcessPool("worker died")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", broken)
    X, y, X_val, y_val = small_problem()
    result = train_head_in_worker(X, y, X_val, y_val, epochs=3, seed=0, nice=7)
    expected = train_head(X, y, X_val, y_val, epochs=3, seed=0)
    np.testing.assert_allclose(result.head.predict_proba(X_val), expected.head.predict_proba(X_val))


def test_an_error_in_training_itself_is_not_hidden() -> None:
    X, y, X_val, y_val = small_problem()
    with pytest.raises(ValueError, match="init head takes"):
        train_head_in_worker(X, y, X_val, y_val, init=train_head(X[:, :4], y, epochs=1).head)
