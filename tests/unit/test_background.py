"""The training worker process trains what this process would; a broken worker is no failure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest

from dikkat.models.head import LABELS
from dikkat.training import background
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
    there = train_head_in_worker(X, y, X_val, y_val, epochs=5, seed=3, init=start)
    assert there.best_epoch == here.best_epoch
    np.testing.assert_allclose(there.head.predict_proba(X_val), here.head.predict_proba(X_val))


def test_a_worker_that_cannot_run_falls_back_to_training_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self, *args, **kwargs):
        raise BrokenProcessPool("worker died")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", broken)
    X, y, X_val, y_val = small_problem()
    result = train_head_in_worker(X, y, X_val, y_val, epochs=3, seed=0)
    expected = train_head(X, y, X_val, y_val, epochs=3, seed=0)
    np.testing.assert_allclose(result.head.predict_proba(X_val), expected.head.predict_proba(X_val))


def test_an_error_in_training_itself_is_not_hidden() -> None:
    X, y, X_val, y_val = small_problem()
    with pytest.raises(ValueError, match="init head takes"):
        train_head_in_worker(X, y, X_val, y_val, init=train_head(X[:, :4], y, epochs=1).head)


def test_the_worker_runs_at_the_configured_priority() -> None:
    """The setting is what is checked: how much CPU nice 19 gets depends on the machine's load."""
    own = os.nice(0)
    assert background._worker(5).submit(os.nice, 0).result(timeout=300) == min(own + 5, 19)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaper is missing


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_worker_exits_when_its_serving_process_is_killed() -> None:
    serving = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "from dikkat.training import background\n"
            "print(background._worker(0).submit(os.getpid).result(), flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        worker_pid = int(serving.stdout.readline())
        assert _alive(worker_pid)
    finally:
        serving.kill()
        serving.wait()
    deadline = time.monotonic() + 120  # only catches a worker that never exits
    while _alive(worker_pid):
        assert time.monotonic() < deadline, f"worker {worker_pid} outlived its killed parent"
        time.sleep(0.1)
