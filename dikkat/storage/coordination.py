"""Work shared by several processes in the Store: one running retrain run (a lease and a unique
index), retrain requests that frontends leave for the one trainer, Telegram updates claimed once."""

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
from dikkat.storage.records import RetrainRun, RunInProgress, SlotTaken
from dikkat.storage.tables import retrain_requests, retrain_runs, telegram_updates

LEASE_S = 60.0
OWNER = f"{socket.gethostname()}:{os.getpid()}"
INTERRUPTED = "interrupted (its process stopped during the run)"
# A claimed update not finished after this long is taken over by the next delivery (its
# process is presumed dead on another host; on this host a dead owner is seen at once).
TELEGRAM_CLAIM_S = 120.0
_rr, _rq, _tu = retrain_runs.c, retrain_requests.c, telegram_updates.c


def owner_gone(owner: str | None) -> bool:
    """True when `owner` is a process on this host that no longer exists."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


class CoordinationMixin(StoreBase):
    """The retrain_runs, retrain_requests and telegram_updates tables."""

    # retrain runs

    async def start_run(
        self, trigger: str, requested_by: str | None, *, slot: str | None = None
    ) -> int:
        """Start a run owned by this process; its id. RunInProgress while another renews its lease
        (a lapsed one is failed first), SlotTaken if `slot` ever ran; unique indexes back both."""
        now = time.time()
        try:
            async with self._transaction() as db:
                await _reclaim_abandoned(db, now)
                refusal = await _refusal(db, slot)
                if refusal is not None:
                    raise refusal
                run = sa.insert(retrain_runs).values(
                    trigger=trigger,
                    requested_by=requested_by,
                    status="running",
                    started_at=now,
                    owner=OWNER,
                    lease_until=now + LEASE_S,
                    slot=slot,
                )
                return int((await db.execute(run.returning(_rr.id))).scalar_one())
        except exc.IntegrityError as error:  # another process inserted its run first
            async with self._reader.connect() as conn:
                refusal = await _refusal(conn, slot)
            raise refusal or RunInProgress("run #? is still running") from error

    async def renew_lease(self, run_id: int) -> None:
        """Keep this process's running run from being reclaimed for another LEASE_S seconds."""
        await self._write(
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
        await self._write(
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
        rows = await self._read(sa.select(retrain_runs).where(_rr.id == run_id))
        return RetrainRun.from_row(rows[0]) if rows else None

    async def last_run(self, *, finished: bool = False) -> RetrainRun | None:
        """The newest run (optionally only a finished, non-skipped one)."""
        query = sa.select(retrain_runs).order_by(_rr.id.desc()).limit(1)
        if finished:
            query = query.where(_rr.status.not_in(("running", "skipped")))
        rows = await self._read(query)
        return RetrainRun.from_row(rows[0]) if rows else None

    async def fail_unfinished_runs(self) -> int:
        """Fail runs left by a crash or kill (at start-up); a run still renewed is left alone."""
        async with self._transaction() as db:
            return await _reclaim_abandoned(db, time.time())

    # retrain requests

    async def request_retrain(self, requested_by: str) -> int:
        """Leave a retrain request for the trainer (e.g. `/retrain` on a frontend); its id."""
        request = sa.insert(retrain_requests).values(
            requested_by=requested_by, created_at=time.time()
        )
        return int((await self._write(request.returning(_rq.id))).scalar_one())

    async def take_retrain_request(self) -> tuple[int, str] | None:
        """Claim the oldest untaken request: (id, requested_by), or None. Never one request twice:
        PostgreSQL skips rows another taker locked (SKIP LOCKED), SQLite has one writer."""
        oldest = sa.select(_rq.id).where(_rq.taken_at.is_(None)).order_by(_rq.id).limit(1)
        if not self._sqlite:
            oldest = oldest.with_for_update(skip_locked=True)
        taken = await self._write(
            sa.update(retrain_requests)
            .where(_rq.id == oldest.scalar_subquery(), _rq.taken_at.is_(None))
            .values(taken_at=time.time())
            .returning(_rq.id, _rq.requested_by)
        )
        row = taken.first()
        return None if row is None else (int(row[0]), str(row[1]))

    async def attach_request_run(self, request_id: int, run_id: int) -> None:
        """Record which run served a request."""
        await self._write(
            sa.update(retrain_requests).where(_rq.id == request_id).values(run_id=run_id)
        )

    # Telegram updates

    async def record_telegram_update(
        self, update_id: int, *, claim_s: float = TELEGRAM_CLAIM_S
    ) -> bool:
        """Claim a webhook update (then process it and `finish_telegram_update`): False for a
        duplicate, unless its claim was released or is older than `claim_s` or its owner dead."""
        now = time.time()
        this_update = _tu.update_id == update_id
        async with self._transaction() as db:
            row = (await db.execute(sa.select(telegram_updates).where(this_update))).first()
            if row is None:
                claim = (
                    self._insert(telegram_updates)
                    .values(update_id=update_id, received_at=now, owner=OWNER)
                    .on_conflict_do_nothing(index_elements=["update_id"])
                )
            elif row.done_at is None and (row.received_at < now - claim_s or owner_gone(row.owner)):
                claim = (
                    sa.update(telegram_updates)
                    .where(
                        this_update,
                        _tu.done_at.is_(None),
                        _tu.received_at == row.received_at,
                        _tu.owner.is_not_distinct_from(row.owner),
                    )
                    .values(owner=OWNER, received_at=now)
                )
            else:
                return False
            return (await db.execute(claim)).rowcount == 1

    async def finish_telegram_update(self, update_id: int) -> None:
        """The update was processed: later deliveries of it are duplicates for good."""
        done = sa.update(telegram_updates).where(_tu.update_id == update_id)
        await self._write(done.values(done_at=time.time()))

    async def release_telegram_update(self, update_id: int) -> None:
        """Processing failed: drop this process's claim, so that whoever gets it re-sent runs it."""
        await self._write(
            sa.delete(telegram_updates).where(
                _tu.update_id == update_id, _tu.done_at.is_(None), _tu.owner == OWNER
            )
        )

    async def telegram_update_done(self, update_id: int) -> bool:
        """True when the update was processed to the end (a duplicate to answer 200)."""
        rows = await self._read(sa.select(_tu.done_at).where(_tu.update_id == update_id))
        return bool(rows) and rows[0].done_at is not None

    async def prune_telegram_updates(self, older_than_s: float) -> int:
        """Forget updates received more than `older_than_s` seconds ago; how many."""
        cutoff = time.time() - older_than_s
        deleted = await self._write(sa.delete(telegram_updates).where(_tu.received_at < cutoff))
        return deleted.rowcount


async def _refusal(db: AsyncConnection, slot: str | None) -> Exception | None:
    """Why a new run cannot start now: SlotTaken, RunInProgress, or None."""
    if slot is not None:
        taken = await db.scalar(sa.select(_rr.id).where(_rr.slot == slot).limit(1))
        if taken is not None:
            return SlotTaken(f"slot {slot} already ran as run #{taken}")
    running = await db.scalar(sa.select(_rr.id).where(_rr.status == "running").limit(1))
    return None if running is None else RunInProgress(f"run #{running} is still running")


async def _reclaim_abandoned(db: AsyncConnection, now: float) -> int:
    """Fail running runs whose lease expired or whose owner died on this host; how many."""
    running = await db.execute(
        sa.select(_rr.id, _rr.owner, _rr.lease_until).where(_rr.status == "running")
    )
    reclaimed = 0
    for run_id, owner, lease_until in running.all():
        if lease_until is not None and lease_until >= now and not owner_gone(owner):
            continue
        # unchanged lease: a renewal that committed in between keeps the run alive
        same_lease = _rr.lease_until.is_not_distinct_from(lease_until)
        fail = sa.update(retrain_runs).where(_rr.id == run_id, _rr.status == "running", same_lease)
        result = await db.execute(fail.values(status="failed", finished_at=now, error=INTERRUPTED))
        reclaimed += result.rowcount
    return reclaimed
