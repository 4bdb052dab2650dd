"""Retrain runs in the Store: one running run across processes, kept alive by a lease."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import aiosqlite

from dikkat.storage.connection import StoreBase
from dikkat.storage.records import RetrainRun, RunInProgress, SlotTaken, run_from_row

LEASE_S = 60.0
OWNER = f"{socket.gethostname()}:{os.getpid()}"
INTERRUPTED = "interrupted (its process stopped during the run)"


def owner_gone(owner: str | None) -> bool:
    """True when `owner` is a process on this host that no longer exists."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def lease_abandoned(owner: str | None, lease_until: float | None, now: float) -> bool:
    """Whether a running run was left behind: its lease expired or its owner died here."""
    return lease_until is None or lease_until < now or owner_gone(owner)


class RunsMixin(StoreBase):
    """The retrain_runs table."""

    async def start_run(
        self, trigger: str, requested_by: str | None, *, slot: str | None = None
    ) -> int:
        """Record that a run started, owned by this process; returns its id.

        One run at a time across processes: a running run blocks a new one while its owner
        renews its lease; a run whose lease expired (or whose owner died on this host) is
        recorded as failed first. A `slot` (a cron firing, e.g. its scheduled time) starts at
        most one run ever: a second start of the same slot raises SlotTaken, whatever the
        first one's status.
        """
        now = time.time()
        async with self._transaction() as db:
            await self._reclaim_abandoned(db, now)
            if slot is not None:
                async with db.execute(
                    "SELECT id FROM retrain_runs WHERE slot = ?", (slot,)
                ) as cursor:
                    taken = await cursor.fetchone()
                if taken is not None:
                    raise SlotTaken(f"slot {slot} already ran as run #{taken[0]}")
            async with db.execute("SELECT id FROM retrain_runs WHERE status = 'running'") as c:
                running = await c.fetchone()
            if running is not None:
                raise RunInProgress(f"run #{running[0]} is still running")
            cursor = await db.execute(
                "INSERT INTO retrain_runs (trigger, requested_by, status, started_at, owner, "
                "lease_until, slot) VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (trigger, requested_by, now, OWNER, now + LEASE_S, slot),
            )
            return int(cursor.lastrowid)

    async def renew_lease(self, run_id: int) -> None:
        """Keep this process's running run from being reclaimed for another LEASE_S seconds."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE retrain_runs SET lease_until = ? "
                "WHERE id = ? AND status = 'running' AND owner = ?",
                (time.time() + LEASE_S, run_id, OWNER),
            )

    @staticmethod
    async def _reclaim_abandoned(db: aiosqlite.Connection, now: float) -> int:
        async with db.execute(
            "SELECT id, owner, lease_until FROM retrain_runs WHERE status = 'running'"
        ) as cursor:
            rows = await cursor.fetchall()
        abandoned = [
            row["id"] for row in rows if lease_abandoned(row["owner"], row["lease_until"], now)
        ]
        for run_id in abandoned:
            await db.execute(
                "UPDATE retrain_runs SET status = 'failed', finished_at = ?, error = ? "
                "WHERE id = ?",
                (now, INTERRUPTED, run_id),
            )
        return len(abandoned)

    async def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        n_feedback: int = 0,
        n_train: int = 0,
        metrics_before: dict[str, Any] | None = None,
        metrics_after: dict[str, Any] | None = None,
        candidate_version: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a run ended: promoted, rejected, skipped or failed."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE retrain_runs SET status = ?, finished_at = ?, n_feedback = ?, "
                "n_train = ?, metrics_before = ?, metrics_after = ?, candidate_version = ?, "
                "error = ? WHERE id = ?",
                (
                    status,
                    time.time(),
                    n_feedback,
                    n_train,
                    None if metrics_before is None else json.dumps(metrics_before),
                    None if metrics_after is None else json.dumps(metrics_after),
                    candidate_version,
                    error,
                    run_id,
                ),
            )

    async def get_run(self, run_id: int) -> RetrainRun | None:
        """One run by id."""
        row = await self._one("SELECT * FROM retrain_runs WHERE id = ?", (run_id,))
        return run_from_row(row) if row else None

    async def last_run(self, *, finished: bool = False) -> RetrainRun | None:
        """The newest run (optionally only a finished, non-skipped one)."""
        where = "WHERE status NOT IN ('running', 'skipped')" if finished else ""
        row = await self._one(f"SELECT * FROM retrain_runs {where} ORDER BY id DESC LIMIT 1")
        return run_from_row(row) if row else None

    async def fail_unfinished_runs(self) -> int:
        """Mark runs abandoned by a crash or kill as failed (called at start-up); a run that
        another live process is still renewing is left alone."""
        async with self._transaction() as db:
            return await self._reclaim_abandoned(db, time.time())
