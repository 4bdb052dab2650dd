"""Exactly one trainer schedules retrains: the leader holds a lock that dies with its process;
standbys wait for it. PostgreSQL: an advisory lock on the leader's own connection; SQLite (one
host): an exclusive lock on a file next to the database. A database that cannot be reached is a
StoreUnavailable, as from the store."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from dikkat.config import Settings
from dikkat.storage.errors import store_errors

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x64696B6B  # "dikk": the trainer leadership advisory lock
POLL_S = 0.5
HEARTBEAT_S = 5.0
CLOSE_S = 1.0  # a server that does not see the leader off in this time is cut off


class Leadership:
    """Become the one trainer (`acquire` waits while another process leads), and notice when
    the lock is lost (`lost` is set: a leader that lost its database connection must stop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lost = asyncio.Event()
        self._connection: Any = None
        self._file: int | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.reached = False  # the database (or the lock file) answered this Leadership once

    @property
    def held(self) -> bool:
        """True while this process leads."""
        return (self._connection is not None or self._file is not None) and not self.lost.is_set()

    async def acquire(self) -> None:
        """Wait until this process is the leader; StoreUnavailable when the database cannot be
        reached or goes away meanwhile (this Leadership is then done: use a new one)."""
        if self.settings.database_url is None:
            await self._acquire_file(Path(f"{self.settings.db_path}.trainer.lock"))
            return
        import asyncpg

        from dikkat.storage.migrate import asyncpg_dsn, sqlite_path

        url = self.settings.database_url.get_secret_value()
        path = sqlite_path(url)
        if path is not None:
            await self._acquire_file(Path(f"{path}.trainer.lock"))
            return
        async with store_errors():
            connection = await asyncpg.connect(asyncpg_dsn(url))
        self.reached = True
        try:
            async with store_errors():
                await connection.execute("SELECT pg_advisory_lock($1)", LEADER_LOCK_KEY)
        except BaseException:  # cancelled while waiting, or the server went away
            connection.terminate()  # at once: a close would wait for a server that may be gone
            raise
        self._connection = connection  # only now is this process the leader
        self._heartbeat = asyncio.create_task(self._watch(), name="trainer-leadership")

    async def _acquire_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.reached = True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(POLL_S)
            except BaseException:
                os.close(fd)
                raise
        self._file = fd

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await asyncio.wait_for(self._connection.fetchval("SELECT 1"), HEARTBEAT_S)
            except Exception as error:  # the session (and with it the lock) may be gone
                log.error("trainer leadership lost: %s", error)
                self.lost.set()
                return

    async def release(self) -> None:
        """Give up leadership (a standby takes over)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._connection is not None:
            with contextlib.suppress(Exception):  # ends the session: the lock is released
                await self._connection.close(timeout=CLOSE_S)
            self._connection = None
        if self._file is not None:
            os.close(self._file)  # closing the descriptor releases the flock
            self._file = None
