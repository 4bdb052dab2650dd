"""The Store's connections: opening and migrating the database, transactions and reads."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import aiosqlite

from dikkat.storage.errors import store_errors
from dikkat.storage.records import DatabaseOpenError, open_hint
from dikkat.storage.schema import BUSY_TIMEOUT_MS, PRAGMAS, migration_script, pending_migrations


class StoreBase:
    """One writer connection (serialised transactions) and one query-only reader connection."""

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._conn = conn
        self._reader = reader or conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self._languages: dict[tuple[str, str], str | None] = {}

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) the database and bring its schema up to date.

        Raises DatabaseOpenError naming the file; the connection's thread is closed first.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await _connect(path)
        except (OSError, sqlite3.Error) as error:
            raise DatabaseOpenError(_open_hint(path, error)) from error
        try:
            conn.row_factory = aiosqlite.Row
            for pragma in PRAGMAS:
                await conn.execute(pragma)
            async with conn.execute("PRAGMA user_version") as cursor:
                (version,) = await cursor.fetchone()
            for target, script in pending_migrations(version):
                await conn.executescript(migration_script(target, script))
            # Reads get their own connection: in WAL mode they never wait behind a write
            # that is itself waiting for another process's lock.
            reader = await _connect(path)
        except BaseException as error:
            await conn.close()
            if isinstance(error, sqlite3.Error | OSError):
                raise DatabaseOpenError(_open_hint(path, error)) from error
            raise
        try:
            reader.row_factory = aiosqlite.Row
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await reader.close()
            await conn.close()
            raise
        return cls(conn, path, reader)

    async def close(self) -> None:
        """Close the connections (pending writes are already committed)."""
        if self._reader is not self._conn:
            await self._reader.close()
        await self._conn.close()

    async def schema_version(self) -> int:
        """The database's `PRAGMA user_version`."""
        return int((await self._one("PRAGMA user_version"))[0])

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        return (await self._one("SELECT 1"))[0] == 1

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with store_errors(), self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite already rolled back on a full disk
                    await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with store_errors(), self._reader.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with store_errors(), self._reader.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())


async def _connect(path: Path) -> aiosqlite.Connection:
    """aiosqlite.connect, seen through even when cancelled (a stop during start-up): its thread
    would otherwise finish after the event loop closed, then fail, and leave the file open."""
    connecting = asyncio.ensure_future(
        aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    )
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await connecting).close()
        raise


def _open_hint(path: Path, error: BaseException) -> str:
    return open_hint(
        str(path), error, setting="DIKKAT_DB_PATH", otherwise="check the path and permissions"
    )
