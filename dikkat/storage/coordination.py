"""Work shared by several processes: Telegram webhook updates claimed once, retrain requests
that frontends leave for the one trainer (schema version 5)."""

from __future__ import annotations

import time

from dikkat.storage.connection import StoreBase
from dikkat.storage.runs import OWNER, owner_gone

# A claimed update not finished after this long is taken over by the next delivery (its
# process is presumed dead on another host; on this host a dead owner is seen at once).
TELEGRAM_CLAIM_S = 120.0


def claim_abandoned(
    owner: str | None, received_at: float, done_at: float | None, now: float, claim_s: float
) -> bool:
    """Whether an earlier claim of an update may be taken over: unfinished, and older than
    `claim_s` or held by a process that died on this host."""
    return done_at is None and (received_at < now - claim_s or owner_gone(owner))


class CoordinationMixin(StoreBase):
    """The telegram_updates and retrain_requests tables."""

    async def record_telegram_update(
        self, update_id: int, *, claim_s: float = TELEGRAM_CLAIM_S
    ) -> bool:
        """Claim a webhook update for this process: True the first time `update_id` is seen
        (process it, then `finish_telegram_update`), False for a re-sent duplicate.

        A duplicate of an update whose claim is abandoned (its owner died on this host, or
        it is older than `claim_s` and unfinished) or was released is claimed again: True.
        Atomic across processes (one writer; the primary key refuses a second insert).
        """
        now = time.time()
        async with self._transaction() as db:
            async with db.execute(
                "SELECT owner, received_at, done_at FROM telegram_updates WHERE update_id = ?",
                (update_id,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                cursor = await db.execute(
                    "INSERT INTO telegram_updates (update_id, received_at, owner) "
                    "VALUES (?, ?, ?) ON CONFLICT (update_id) DO NOTHING",
                    (update_id, now, OWNER),
                )
                return cursor.rowcount == 1
            owner, received_at, done_at = row
            if not claim_abandoned(owner, received_at, done_at, now, claim_s):
                return False
            cursor = await db.execute(
                "UPDATE telegram_updates SET owner = ?, received_at = ? WHERE update_id = ? "
                "AND done_at IS NULL AND received_at = ? AND owner IS ?",
                (OWNER, now, update_id, received_at, owner),
            )
            return cursor.rowcount == 1

    async def finish_telegram_update(self, update_id: int) -> None:
        """The update was processed: later deliveries of it are duplicates for good."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE telegram_updates SET done_at = ? WHERE update_id = ?",
                (time.time(), update_id),
            )

    async def release_telegram_update(self, update_id: int) -> None:
        """Processing failed: forget this process's claim, so that the re-sent update is
        processed (by whichever process receives it)."""
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM telegram_updates WHERE update_id = ? AND done_at IS NULL "
                "AND owner = ?",
                (update_id, OWNER),
            )

    async def telegram_update_done(self, update_id: int) -> bool:
        """True when the update was processed to the end (a duplicate to answer 200)."""
        row = await self._one(
            "SELECT done_at FROM telegram_updates WHERE update_id = ?", (update_id,)
        )
        return row is not None and row[0] is not None

    async def prune_telegram_updates(self, older_than_s: float) -> int:
        """Forget updates received more than `older_than_s` seconds ago; how many."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "DELETE FROM telegram_updates WHERE received_at < ?", (time.time() - older_than_s,)
            )
            return cursor.rowcount

    async def request_retrain(self, requested_by: str) -> int:
        """Leave a retrain request for the trainer (e.g. `/retrain` on a frontend); its id."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO retrain_requests (requested_by, created_at) VALUES (?, ?)",
                (requested_by, time.time()),
            )
            return int(cursor.lastrowid)

    async def take_retrain_request(self) -> tuple[int, str] | None:
        """Claim the oldest request nobody took yet: (id, requested_by), or None. Two
        concurrent takers never get the same request."""
        async with self._transaction() as db:
            async with db.execute(
                "UPDATE retrain_requests SET taken_at = ? WHERE id = (SELECT id FROM "
                "retrain_requests WHERE taken_at IS NULL ORDER BY id LIMIT 1) "
                "AND taken_at IS NULL RETURNING id, requested_by",
                (time.time(),),
            ) as cursor:
                row = await cursor.fetchone()
            return None if row is None else (int(row[0]), str(row[1]))

    async def attach_request_run(self, request_id: int, run_id: int) -> None:
        """Record which run served a request."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE retrain_requests SET run_id = ? WHERE id = ?", (run_id, request_id)
            )
