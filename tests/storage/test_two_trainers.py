"""Two trainer processes on one PostgreSQL database, a cron every 5 s for 60 s: exactly one run
per slot; the leader is killed during a run, the standby takes over within two intervals and
the interrupted run is marked failed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

INTERVAL_S = 5
TOTAL_S = 60


def _trainer(environment: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "dikkat", "run"], env=environment, stdout=handle, stderr=handle
    )


def _wait_for_line(log: Path, text: str, timeout: float, process: subprocess.Popen) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and text in log.read_text():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log.name} after {timeout}s:\n{log.read_text()[-3000:]}")


async def _runs(url: str) -> list:
    from dikkat.storage.sql.store import SqlStore

    store = await SqlStore.open(url)
    try:
        return await store._all("SELECT id, status, slot, error FROM retrain_runs ORDER BY id")
    finally:
        await store.close()


def test_one_run_per_slot_and_a_standby_takes_over(
    pg_url: str, tmp_path: Path, seed_features_db: Path
) -> None:
    features = tmp_path / "features.db"
    shutil.copy(seed_features_db, features)
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
        "DIKKAT_HTTP_PORT": "0",
        "DIKKAT_LOG_LEVEL": "INFO",
    }
    logs = [tmp_path / "leader.log", tmp_path / "standby.log"]
    leader = _trainer(environment, logs[0])
    standby = None
    try:
        started = _wait_for_line(logs[0], "this process leads retraining", 120, leader)
        standby = _trainer(environment, logs[1])
        _wait_for_line(logs[1], "ready: trainer", 120, standby)
        while True:  # kill the leader while one of its runs is going on
            runs = asyncio.run(_runs(pg_url))
            running = [r for r in runs if r["status"] == "running"]
            if running and time.monotonic() - started > TOTAL_S / 3:
                break
            time.sleep(0.05)
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.wait()
        took_over = _wait_for_line(
            logs[1], "this process leads retraining", 4 * INTERVAL_S, standby
        )
        time.sleep(max(0.0, started + TOTAL_S - time.monotonic()))
    finally:
        for process in (leader, standby):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    runs = asyncio.run(_runs(pg_url))
    slots = [r["slot"] for r in runs if r["slot"]]
    assert len(slots) == len(set(slots)) and len(slots) >= 6  # one run per slot, and runs went on
    interrupted = next(r for r in runs if r["id"] == running[0]["id"])
    assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]
    assert took_over - killed <= 2 * INTERVAL_S
    after = [r for r in runs if r["id"] > interrupted["id"]]
    takeover = took_over - killed
    print(f"{len(slots)} slots, takeover {takeover:.1f} s after the kill, {len(after)} runs after")
    assert after, "the standby scheduled runs after taking over"
