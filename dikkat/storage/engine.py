"""The Store's engines: opening (and upgrading) the database, transactions and reads."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dikkat.storage.errors import StoreError, first_line, store_errors
from dikkat.storage.legacy_schema import BUSY_TIMEOUT_MS, PRAGMAS
from dikkat.storage.migrate import (
    current_revision,
    head_revision,
    shown_url,
    sqlite_path,
    sqlite_url,
)
from dikkat.storage.migrate import upgrade as upgrade_schema
from dikkat.storage.records import DatabaseOpenError

Statement = sa.Executable | str  # a str is raw SQL with :named binds
# what keeps a database from opening: a bad URL, a missing driver, the file, the server
_OPEN_ERRORS = (exc.ArgumentError, ImportError, OSError, sqlite3.Error, exc.DBAPIError)


class StoreBase:
    """A writer engine (one transaction per write) and a reader engine over one database URL."""

    def __init__(self, url: str, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self.url = url
        self.path: Path | None = sqlite_path(url)
        self._writer = writer
        self._reader = reader
        self._sqlite = writer.dialect.name == "sqlite"
        # SQLite has one writer at a time anyway: queue here, not in the busy handler.
        self._write_lock = asyncio.Lock() if self._sqlite else None
        self._languages: dict[tuple[str, str], str | None] = {}

    @classmethod
    async def open(cls, url: str | Path, *, upgrade: bool = True, pool_size: int = 5) -> Self:
        """Connect to `url` (sqlite+aiosqlite:///file, postgresql+asyncpg://..., or a SQLite
        file's Path) and bring its schema to the newest revision. Raises DatabaseOpenError."""
        url = sqlite_url(url) if isinstance(url, Path) else url
        path = sqlite_path(url)
        shown = shown_url(url) if path is None else str(path)
        store = None
        try:
            store = cls(url, *_engines(url, path, pool_size))
            revision = await store._revision()
            if revision != head_revision() and not upgrade:
                raise DatabaseOpenError(
                    f"the database {shown} is at schema revision {revision or 'none'}, this "
                    f"Dikkat needs {head_revision()}: run `dikkat db upgrade`"
                )
            if revision != head_revision():
                await upgrade_schema(url)
            await store.ping()
            return store
        except BaseException as error:
            if store is not None:
                await store.close()
            cause = error.__cause__ if isinstance(error, StoreError) else error
            if isinstance(cause, _OPEN_ERRORS):
                hint = open_hint(shown, cause, sqlite=path is not None)
                raise DatabaseOpenError(hint) from cause
            raise

    async def close(self) -> None:
        """Close every pooled connection (pending writes are already committed)."""
        if self._reader is not self._writer:
            await self._reader.dispose()
        await self._writer.dispose()

    async def schema_version(self) -> int:
        """The Alembic revision as a number (0004 = SQLite user_version 4, 0006 = version 5)."""
        revision = await self._revision()
        return int(revision) if revision and revision.isdigit() else 0

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        return (await self._read("SELECT 1"))[0][0] == 1

    async def sqlite_pragma(self, pragma: str) -> Any:
        """A PRAGMA on the SQLite writer connection (benchmarks, tests); its first value, if any."""
        if self._write_lock is None:
            raise NotImplementedError("PRAGMA is SQLite's")
        async with store_errors(), self._write_lock, self._writer.connect() as conn:
            result = await conn.exec_driver_sql(pragma)
            return result.scalar() if result.returns_rows else None

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that knows ON CONFLICT on this dialect."""
        return (sqlite.insert if self._sqlite else postgresql.insert)(table)

    def _upsert(self, table: sa.Table, keys: tuple[str, ...], replaced: tuple[str, ...]) -> Any:
        """An INSERT that replaces the `replaced` columns of a row whose `keys` exist already."""
        insert = self._insert(table)
        excluded = {name: insert.excluded[name] for name in replaced}
        return insert.on_conflict_do_update(index_elements=keys, set_=excluded)

    async def _count(self, table: sa.Table, *where: Any) -> int:
        """How many rows of `table` match `where`."""
        query = sa.select(sa.func.count()).select_from(table).where(*where)
        return int((await self._read(query))[0][0])

    async def _revision(self) -> str | None:
        async with store_errors(), self._reader.connect() as conn:
            return await conn.run_sync(current_revision)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, serialised in this process)."""
        async with store_errors(), self._write_lock or nullcontext(), self._writer.begin() as conn:
            yield conn

    async def _read(self, statement: Statement, params: Any = None) -> list[sa.Row]:
        """Every row of a query, on the reader."""
        statement = sa.text(statement) if isinstance(statement, str) else statement
        async with store_errors(), self._reader.connect() as conn:
            return list((await conn.execute(statement, params)).all())

    async def _write(self, statement: Statement, params: Any = None) -> sa.CursorResult:
        """One statement (once per item of a `params` list) in its own transaction; its result is
        buffered, readable after the commit."""
        statement = sa.text(statement) if isinstance(statement, str) else statement
        async with self._transaction() as db:
            return await db.execute(statement, params)


def _engines(url: str, path: Path | None, pool_size: int) -> tuple[AsyncEngine, AsyncEngine]:
    """The writer and the reader. SQLite: a one-connection writer (BEGIN IMMEDIATE) and a
    query-only reader, both in WAL mode; PostgreSQL: one pool for both."""
    if path is None:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        return engine, engine
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = create_async_engine(url, pool_size=1, max_overflow=0)
    reader = create_async_engine(url, pool_size=2, max_overflow=0, isolation_level="AUTOCOMMIT")
    pragmas = (*PRAGMAS, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def connect(dbapi_connection: Any, *, query_only: bool) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in pragmas + (("PRAGMA query_only = ON",) if query_only else ()):
            cursor.execute(pragma)
        cursor.close()

    event.listen(writer.sync_engine, "connect", lambda c, _: connect(c, query_only=False))
    event.listen(reader.sync_engine, "connect", lambda c, _: connect(c, query_only=True))
    event.listen(writer.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return writer, reader


def open_hint(shown: str, error: BaseException, *, sqlite: bool) -> str:
    """One line for a database that cannot be opened: which one, what went wrong, what to do."""
    text = first_line(error)
    if "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
        advice = "make the file and its folder writable for this user"
    elif "not a database" in text or "malformed" in text:
        advice = "it is not a usable SQLite database: restore a backup"
    elif sqlite:
        advice = "check the path and permissions"
    else:
        advice = "check the URL, that the server runs and the credentials"
    setting = "DIKKAT_DB_PATH" if sqlite else "DIKKAT_DATABASE_URL"
    return f"cannot open the database {shown}: {text}; {advice} or set {setting}"
