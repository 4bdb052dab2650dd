"""Two trainer processes on one PostgreSQL database, a cron every 5 s: exactly one run per slot;
the leader is killed during a run, the standby takes over, marks the interrupted run failed and
goes on with the schedule."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytestmark = pytest.mark.slow

INTERVAL_S = 5
RUNS_BEFORE_KILL = 2
RUNS_AFTER_TAKEOVER = 2
HANG_S = 600  # only catches a hang: each step normally takes a few intervals

T = TypeVar("T")


def _trainer(environment: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "dikkat", "run"], env=environment, stdout=handle, stderr=handle
    )


def _wait_for(
    condition: Callable[[], T | None], what: str, processes: dict[Path, subprocess.Popen]
) -> T:
    """Poll `condition` until it gives a value; fail when a process dies or on a hang."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        for log, process in processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{log.name} exited before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    logs = "\n".join(f"{log.name}:\n{log.read_text()[-2000:]}" for log in processes)
    raise AssertionError(f"no {what} after {HANG_S} s:\n{logs}")


def _logged(log: Path, text: str) -> Callable[[], bool | None]:
    return lambda: (log.is_file() and text in log.read_text()) or None


async def _with_store(url: str, use: Callable[[Any], Awaitable[T]]) -> T:
    from dikkat.storage.store import Store

    store = await Store.open(url)
    try:
        return await use(store)
    finally:
        await store.close()


async def _runs(url: str) -> list:
    async def read(store: Any) -> list:
        query = "SELECT id, status, slot, error FROM retrain_runs ORDER BY id"
        return [row._asdict() for row in await store._read(query)]

    return await _with_store(url, read)


def _finished(runs: list) -> list:
    return [r for r in runs if r["status"] != "running"]


def test_one_run_per_slot_and_a_standby_takes_over(
    pg_url: str, tmp_path: Path, seed_features_db: Path, cast_vote
) -> None:
    features = tmp_path / "features.db"
    shutil.copy(seed_features_db, features)
    asyncio.run(_with_store(pg_url, cast_vote))  # runs without any vote are skipped at once
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIKKAT_")},
        "DIKKAT_ROLE": "trainer",
        "DIKKAT_DATABASE_URL": pg_url,
        "DIKKAT_DB_PATH": str(features),
        "DIKKAT_MODEL_DIR": str(tmp_path / "models"),
        "DIKKAT_SENTIMENT_ENCODER": "minilm",
        "DIKKAT_DEVICE": "cpu",
        "DIKKAT_RETRAIN_CRON": f"*/{INTERVAL_S} * * * * *",
        "DIKKAT_RETRAIN_MIN_FEEDBACK": "0",
        "DIKKAT_RETRAIN_NICE": "0",
        "DIKKAT_HTTP_PORT": "0",
        "DIKKAT_LOG_LEVEL": "INFO",
    }
    leader_log, standby_log = tmp_path / "leader.log", tmp_path / "standby.log"
    leader = _trainer(environment, leader_log)
    standby = None
    try:
        _wait_for(
            _logged(leader_log, "this process leads retraining"), "leadership", {leader_log: leader}
        )
        standby = _trainer(environment, standby_log)
        both = {leader_log: leader, standby_log: standby}
        _wait_for(_logged(standby_log, "ready: trainer"), "standby start", both)

        def frozen_during_a_run() -> dict | None:
            """Stop the leader; keep it stopped only if one of its runs is going on."""
            if len(_finished(asyncio.run(_runs(pg_url)))) < RUNS_BEFORE_KILL:
                return None
            leader.send_signal(signal.SIGSTOP)  # a stopped leader cannot finish the run
            running = [r for r in asyncio.run(_runs(pg_url)) if r["status"] == "running"]
            if running:
                return running[0]
            leader.send_signal(signal.SIGCONT)
            return None

        interrupted = _wait_for(frozen_during_a_run, "run in progress", both)
        leader.send_signal(signal.SIGKILL)
        leader.wait()

        def runs_after_takeover() -> list | None:
            runs = asyncio.run(_runs(pg_url))
            later = [r for r in _finished(runs) if r["id"] > interrupted["id"]]
            return runs if len(later) >= RUNS_AFTER_TAKEOVER else None

        _wait_for(
            _logged(standby_log, "this process leads retraining"),
            "takeover",
            {standby_log: standby},
        )
        runs = _wait_for(runs_after_takeover, "runs after the takeover", {standby_log: standby})
    finally:
        for process in (leader, standby):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=HANG_S)
    slots = [r["slot"] for r in runs if r["slot"]]
    assert len(slots) == len(set(slots)), slots  # one run per slot
    failed = next(r for r in runs if r["id"] == interrupted["id"])
    assert failed["status"] == "failed" and "interrupted" in failed["error"], failed
    print(f"{len(slots)} slots, run {failed['id']} interrupted, {len(runs)} runs in all")
