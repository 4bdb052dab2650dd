"""Work shared by several processes in the Store: Telegram webhook updates claimed once,
retrain requests that frontends leave for the one trainer (revision 0006)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from dikkat.storage.engine import StoreBase
from dikkat.storage.runs import OWNER, owner_gone
from dikkat.storage.tables import retrain_requests, telegram_updates

# A claimed update not finished after this long is taken over by the next delivery (its
# process is presumed dead on another host; on this host a dead owner is seen at once).
TELEGRAM_CLAIM_S = 120.0


def claim_abandoned(
    owner: str | None, received_at: float, done_at: float | None, now: float, claim_s: float
) -> bool:
    """Whether an earlier claim of an update may be taken over: unfinished, and older than
    `claim_s` or held by a process that died on this host."""
    return done_at is None and (received_at < now - claim_s or owner_gone(owner))


_tu, _rq = telegram_updates.c, retrain_requests.c


class CoordinationMixin(StoreBase):
    """The telegram_updates and retrain_requests tables."""

    async def record_telegram_update(
        self, update_id: int, *, claim_s: float = TELEGRAM_CLAIM_S
    ) -> bool:
        """Claim a webhook update for this process: True the first time `update_id` is seen
        (process it, then `finish_telegram_update`), False for a re-sent duplicate.

        A duplicate of an update whose claim is abandoned (its owner died on this host, or
        it is older than `claim_s` and unfinished) or was released is claimed again: True.
        Atomic across processes: INSERT ... ON CONFLICT DO NOTHING, then the row count; a
        take-over only applies if the claim did not change since it was read.
        """
        now = time.time()
        async with self._transaction() as db:
            row = (
                await db.execute(
                    sa.select(_tu.owner, _tu.received_at, _tu.done_at).where(
                        _tu.update_id == update_id
                    )
                )
            ).first()
            if row is None:
                result = await db.execute(
                    self._insert(telegram_updates)
                    .values(update_id=update_id, received_at=now, owner=OWNER)
                    .on_conflict_do_nothing(index_elements=["update_id"])
                )
                return result.rowcount == 1
            owner, received_at, done_at = row
            if not claim_abandoned(owner, received_at, done_at, now, claim_s):
                return False
            result = await db.execute(
                sa.update(telegram_updates)
                .where(
                    _tu.update_id == update_id,
                    _tu.done_at.is_(None),
                    _tu.received_at == received_at,
                    _tu.owner.is_not_distinct_from(owner),
                )
                .values(owner=OWNER, received_at=now)
            )
            return result.rowcount == 1

    async def finish_telegram_update(self, update_id: int) -> None:
        """The update was processed: later deliveries of it are duplicates for good."""
        async with self._transaction() as db:
            await db.execute(
                sa.update(telegram_updates)
                .where(_tu.update_id == update_id)
                .values(done_at=time.time())
            )

    async def release_telegram_update(self, update_id: int) -> None:
        """Processing failed: forget this process's claim, so that the re-sent update is
        processed (by whichever process receives it)."""
        async with self._transaction() as db:
            await db.execute(
                sa.delete(telegram_updates).where(
                    _tu.update_id == update_id, _tu.done_at.is_(None), _tu.owner == OWNER
                )
            )

    async def telegram_update_done(self, update_id: int) -> bool:
        """True when the update was processed to the end (a duplicate to answer 200)."""
        row = await self._first(sa.select(_tu.done_at).where(_tu.update_id == update_id))
        return row is not None and row[0] is not None

    async def prune_telegram_updates(self, older_than_s: float) -> int:
        """Forget updates received more than `older_than_s` seconds ago; how many."""
        async with self._transaction() as db:
            result = await db.execute(
                sa.delete(telegram_updates).where(_tu.received_at < time.time() - older_than_s)
            )
            return result.rowcount

    async def request_retrain(self, requested_by: str) -> int:
        """Leave a retrain request for the trainer (e.g. `/retrain` on a frontend); its id."""
        async with self._transaction() as db:
            result = await db.execute(
                sa.insert(retrain_requests)
                .values(requested_by=requested_by, created_at=time.time())
                .returning(_rq.id)
            )
            return int(result.scalar_one())

    async def take_retrain_request(self) -> tuple[int, str] | None:
        """Claim the oldest request nobody took yet: (id, requested_by), or None. Two
        concurrent takers never get the same request (PostgreSQL: FOR UPDATE SKIP LOCKED, so
        the second takes the next one instead of waiting; SQLite: one writer at a time)."""
        oldest = sa.select(_rq.id).where(_rq.taken_at.is_(None)).order_by(_rq.id).limit(1)
        if not self._sqlite:
            oldest = oldest.with_for_update(skip_locked=True)
        async with self._transaction() as db:
            row = (
                await db.execute(
                    sa.update(retrain_requests)
                    .where(_rq.id == oldest.scalar_subquery(), _rq.taken_at.is_(None))
                    .values(taken_at=time.time())
                    .returning(_rq.id, _rq.requested_by)
                )
            ).first()
            return None if row is None else (int(row[0]), str(row[1]))

    async def attach_request_run(self, request_id: int, run_id: int) -> None:
        """Record which run served a request."""
        async with self._transaction() as db:
            await db.execute(
                sa.update(retrain_requests).where(_rq.id == request_id).values(run_id=run_id)
            )
