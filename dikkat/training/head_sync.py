"""Keeps the served head in step with the database when another process promotes or rolls back."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import HeadLoadError, HeadMismatchError
from dikkat.storage.store import Store
from dikkat.training.heads import head_file, load_head_for
from dikkat.training.serving import HeadServer

log = logging.getLogger(__name__)


class ActiveHeadWatcher:
    """Polls the active version every `poll_s` seconds and hot-swaps it when it changed."""

    def __init__(
        self,
        store: Store,
        service: HeadServer,
        encoder: SentenceEncoder,
        poll_s: float,
        *,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        """`wakeup` (set by a database notification) makes it check at once, between polls."""
        self.store = store
        self.service = service
        self.encoder = encoder
        self.poll_s = poll_s
        self.wakeup = wakeup
        self._unservable: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin polling and listening (no-op when poll_s is 0 and nothing notifies)."""
        if (self.poll_s > 0 or self.wakeup is not None) and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="active-head-watcher")

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> bool:
        """Swap in the database's active head if it is not the one served; True if swapped."""
        active = await self.store.active_version(self.encoder.feature_key)
        if active is None or active.id == self.service.head_version:
            return False
        if active.id in self._unservable:
            return False
        try:
            path = await head_file(self.store, active)
            head = await asyncio.to_thread(load_head_for, path, self.encoder, sha256=active.sha256)
        except (HeadLoadError, HeadMismatchError) as error:
            self._unservable.add(active.id)
            log.error(
                "head #%d is active in the database but cannot be served: %s", active.id, error
            )
            return False
        previous = self.service.head_version
        self.service.swap_head(head, active.id)
        log.info(
            "now serving head #%d (was #%s): activated by another process", active.id, previous
        )
        return True

    async def _poll(self) -> None:
        while True:
            await self._next_check()
            try:
                await self.check()
            except Exception:
                log.warning("could not check the active head", exc_info=True)

    async def _next_check(self) -> None:
        """Wait for the poll interval, or less when a notification comes first."""
        if self.wakeup is None:
            await asyncio.sleep(self.poll_s)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_s or None):
                await self.wakeup.wait()
        self.wakeup.clear()
