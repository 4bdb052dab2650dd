"""Head changes pushed by PostgreSQL: LISTEN on the channel that activating a version NOTIFYs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dikkat.storage.migrate import asyncpg_dsn
from dikkat.storage.versions import HEAD_CHANNEL

log = logging.getLogger(__name__)


class HeadNotifications:
    """A LISTEN connection of its own; `changed` is set whenever a head version is activated."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.changed = asyncio.Event()

    @classmethod
    async def listen(cls, url: str) -> HeadNotifications:
        """LISTEN on `url` (a postgresql+asyncpg:// URL)."""
        import asyncpg

        connection = await asyncpg.connect(asyncpg_dsn(url))
        notifications = cls(connection)
        await connection.add_listener(HEAD_CHANNEL, notifications._on_notify)
        return notifications

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        log.debug("head change notified: %s", payload)
        self.changed.set()

    async def close(self) -> None:
        """Stop listening."""
        try:
            await self._connection.remove_listener(HEAD_CHANNEL, self._on_notify)
        finally:
            await self._connection.close()
