"""Low-priority background work: results and errors come back, only its own thread is reniced,
and the training worker process trains what this process would."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from dikkat.models.head import LABELS
from dikkat.training.background import run_at_low_priority, train_head_in_worker
from dikkat.training.sentiment import train_head


def own_nice() -> tuple[int, int]:
    thread = threading.get_native_id()
    return thread, os.getpriority(os.PRIO_PROCESS, thread)


async def test_result_and_error_reach_the_caller() -> None:
    assert await run_at_low_priority(lambda a, b=0: a + b, 2, b=3, nice=5) == 5

    def fails() -> None:
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        await run_at_low_priority(fails, nice=5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux only")
async def test_only_the_worker_thread_runs_at_lower_priority() -> None:
    caller, before = own_nice()
    worker, nice = await run_at_low_priority(own_nice, nice=5)
    assert worker != caller
    assert nice == min(19, before + 5)
    assert own_nice() == (caller, before)
    _, unchanged = await run_at_low_priority(own_nice, nice=0)
    assert unchanged == before


def small_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.choice(np.array(LABELS), 120)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    X[:, 0] += np.select([y == "negative", y == "positive"], [-2.0, 2.0], 0.0)
    return X[:90], y[:90], X[90:], y[90:]


def test_the_worker_process_trains_the_same_head_as_this_process() -> None:
    X, y, X_val, y_val = small_problem()
    here = train_head(X, y, X_val, y_val, epochs=5, seed=3)
    there = train_head_in_worker(X, y, X_val, y_val, epochs=5, seed=3, nice=5)
    assert there.best_epoch == here.best_epoch
    np.testing.assert_allclose(there.head.predict_proba(X_val), here.head.predict_proba(X_val))


def test_a_broken_worker_falls_back_to_training_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, *args, **kwargs):
        raise BrokenProcessPool("worker died")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", broken)
    X, y, X_val, y_val = small_problem()
    result = train_head_in_worker(X, y, X_val, y_val, epochs=3, seed=0, nice=7)
    assert result.head.predict_proba(X_val).shape == (len(X_val), len(LABELS))
