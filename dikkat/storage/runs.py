"""Retrain runs in the Store: one running run across processes (lease + unique index)."""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection

from dikkat.storage.engine import StoreBase
from dikkat.storage.records import RetrainRun, RunInProgress, SlotTaken, run_from_row
from dikkat.storage.tables import retrain_runs

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


_rr = retrain_runs.c


class RunsMixin(StoreBase):
    """The retrain_runs table."""

    async def start_run(
        self, trigger: str, requested_by: str | None, *, slot: str | None = None
    ) -> int:
        """Record that a run started, owned by this process; returns its id.

        One run at a time across processes: a running run blocks a new one while its owner
        renews its lease (the partial unique index `one_running_run` refuses a racing second
        insert); a run whose lease expired, or whose owner died on this host, is failed first.
        A `slot` (one cron firing) starts at most one run ever: a second start of the same slot
        raises SlotTaken, whatever the first one's status (index `one_run_per_slot`).
        """
        now = time.time()
        try:
            async with self._transaction() as db:
                await _reclaim_abandoned(db, now)
                if slot is not None:
                    taken = await self._slot_run(db, slot)
                    if taken is not None:
                        raise SlotTaken(f"slot {slot} already ran as run #{taken}")
                running = await self._running_id(db)
                if running is not None:
                    raise RunInProgress(f"run #{running} is still running")
                run_id = (
                    await db.execute(
                        sa.insert(retrain_runs)
                        .values(
                            trigger=trigger,
                            requested_by=requested_by,
                            status="running",
                            started_at=now,
                            owner=OWNER,
                            lease_until=now + LEASE_S,
                            slot=slot,
                        )
                        .returning(_rr.id)
                    )
                ).scalar_one()
                return int(run_id)
        except exc.IntegrityError as error:  # another process inserted its run first
            async with self._reader.connect() as conn:
                taken = None if slot is None else await self._slot_run(conn, slot)
                running = await self._running_id(conn)
            if taken is not None:
                raise SlotTaken(f"slot {slot} already ran as run #{taken}") from error
            raise RunInProgress(f"run #{running or '?'} is still running") from error

    @staticmethod
    async def _slot_run(db: AsyncConnection, slot: str) -> int | None:
        """The id of the run started for `slot`, if any."""
        found = await db.execute(sa.select(_rr.id).where(_rr.slot == slot).limit(1))
        return found.scalar_one_or_none()

    async def _running_id(self, db: AsyncConnection) -> int | None:
        """The id of the running run, if any."""
        found = await db.execute(sa.select(_rr.id).where(_rr.status == "running").limit(1))
        return found.scalar_one_or_none()

    async def renew_lease(self, run_id: int) -> None:
        """Keep this process's running run from being reclaimed for another LEASE_S seconds."""
        async with self._transaction() as db:
            await db.execute(
                sa.update(retrain_runs)
                .where(_rr.id == run_id, _rr.status == "running", _rr.owner == OWNER)
                .values(lease_until=time.time() + LEASE_S)
            )

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
                sa.update(retrain_runs)
                .where(_rr.id == run_id)
                .values(
                    status=str(status),
                    finished_at=time.time(),
                    n_feedback=n_feedback,
                    n_train=n_train,
                    metrics_before=None if metrics_before is None else json.dumps(metrics_before),
                    metrics_after=None if metrics_after is None else json.dumps(metrics_after),
                    candidate_version=candidate_version,
                    error=error,
                )
            )

    async def get_run(self, run_id: int) -> RetrainRun | None:
        """One run by id."""
        row = await self._first(sa.select(retrain_runs).where(_rr.id == run_id))
        return run_from_row(row) if row else None

    async def last_run(self, *, finished: bool = False) -> RetrainRun | None:
        """The newest run (optionally only a finished, non-skipped one)."""
        query = sa.select(retrain_runs).order_by(_rr.id.desc()).limit(1)
        if finished:
            query = query.where(_rr.status.not_in(("running", "skipped")))
        row = await self._first(query)
        return run_from_row(row) if row else None

    async def fail_unfinished_runs(self) -> int:
        """Mark runs abandoned by a crash or kill as failed (called at start-up); a run that
        another live process is still renewing is left alone."""
        async with self._transaction() as db:
            return await _reclaim_abandoned(db, time.time())


async def _reclaim_abandoned(db: AsyncConnection, now: float) -> int:
    """Fail running runs whose lease expired or whose owner is gone; how many."""
    rows = await db.execute(
        sa.select(_rr.id, _rr.owner, _rr.lease_until).where(_rr.status == "running")
    )
    abandoned = [
        (run_id, lease_until)
        for run_id, owner, lease_until in rows
        if lease_abandoned(owner, lease_until, now)
    ]
    reclaimed = 0
    for run_id, lease_until in abandoned:
        # unchanged lease: a renewal that committed in between keeps the run alive
        same_lease = (
            _rr.lease_until.is_(None) if lease_until is None else _rr.lease_until == lease_until
        )
        result = await db.execute(
            sa.update(retrain_runs)
            .where(_rr.id == run_id, _rr.status == "running", same_lease)
            .values(status="failed", finished_at=now, error=INTERRUPTED)
        )
        reclaimed += result.rowcount
    return reclaimed
