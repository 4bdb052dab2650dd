"""Exactly one retrain run: 200 concurrent `start_run` attempts from two processes start one run
(0 double starts), with and without the store's own check in front of the unique index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dikkat.storage.store import Store

WORKER = Path(__file__).with_name("run_race_worker.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mode", ["checked", "index_only"])
async def test_200_concurrent_starts_from_two_processes_start_one_run(
    db_url: str, mode: str
) -> None:
    store = await Store.open(db_url)  # creates the schema before the race
    try:
        start_at = str(time.time() + 2.0)  # after both interpreters have connected
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), db_url, "100", start_at, mode],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            lines = [worker.stdout.readline() for worker in workers]
        finally:
            outcomes = [worker.communicate("done\n", timeout=60) for worker in workers]
        assert all(worker.returncode == 0 for worker in workers), [err for _, err in outcomes]
        results = [json.loads(line) for line in lines]
        won = [run for result in results for run in result["won"]]
        assert [result["other"] for result in results] == [[], []]
        assert len(won) == 1, results
        assert sum(result["refused"] for result in results) == 199
        rows = await store._read("SELECT id, status FROM retrain_runs")
        assert [tuple(row) for row in rows] == [(won[0], "running")]
    finally:
        await store.close()
