"""The Store's engines: opening (and upgrading) the database, transactions and reads."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dikkat.storage.errors import StoreError, store_errors
from dikkat.storage.legacy_schema import BUSY_TIMEOUT_MS, PRAGMAS
from dikkat.storage.migrate import (
    current_revision,
    head_revision,
    shown_url,
    sqlite_path,
    sqlite_url,
    upgrade_async,
)
from dikkat.storage.records import DatabaseOpenError, open_hint

SQLITE_PRAGMAS = (*PRAGMAS, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


class Row(tuple):
    """A result row readable by position and by column name, like aiosqlite.Row."""

    _names: dict[str, int]

    def __new__(cls, names: Sequence[str], values: Iterable[Any]) -> Self:
        row = super().__new__(cls, values)
        row._names = {name: i for i, name in enumerate(names)}
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        return super().__getitem__(self._names[key] if isinstance(key, str) else key)

    def keys(self) -> Iterator[str]:
        """Column names, so that dict(row) works."""
        return iter(self._names)


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

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that knows ON CONFLICT on this dialect."""
        return (sqlite.insert if self._sqlite else postgresql.insert)(table)

    @classmethod
    async def open(cls, url: str | Path, *, upgrade: bool = True, pool_size: int = 5) -> Self:
        """Connect to `url` (sqlite+aiosqlite:///file, postgresql+asyncpg://..., or a SQLite
        file's Path) and bring its schema to the newest revision. Raises DatabaseOpenError."""
        url = sqlite_url(url) if isinstance(url, Path) else url
        path = sqlite_path(url)
        shown = shown_url(url) if path is None else str(path)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                writer, reader = _sqlite_engines(url)
            else:
                writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
                reader = writer
        except (exc.ArgumentError, ImportError, OSError) as error:
            raise DatabaseOpenError(_open_hint(shown, error, path is not None)) from error
        store = cls(url, writer, reader)
        try:
            revision = await store._revision()
            if revision != head_revision() and upgrade:
                await upgrade_async(url)
            elif revision != head_revision():
                raise DatabaseOpenError(
                    f"the database {shown} is at schema revision {revision or 'none'}, this "
                    f"Dikkat needs {head_revision()}: run `dikkat db upgrade`"
                )
            await store.ping()
        except BaseException as error:
            await store.close()
            if isinstance(error, StoreError) and error.__cause__ is not None:
                error = error.__cause__
            if isinstance(error, exc.DBAPIError | OSError | sqlite3.Error):
                raise DatabaseOpenError(_open_hint(shown, error, path is not None)) from error
            raise
        return store

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
        return (await self._one("SELECT 1"))[0] == 1

    async def sqlite_pragma(self, pragma: str) -> Any:
        """Run a PRAGMA on the SQLite writer connection (its busy timeout or page limit, for
        benchmarks and tests); its first value, if it returns one."""
        if not self._sqlite:
            raise NotImplementedError("PRAGMA is SQLite's")
        assert self._write_lock is not None
        async with store_errors(), self._write_lock, self._writer.connect() as conn:
            result = await conn.exec_driver_sql(pragma)
            row = result.first() if result.returns_rows else None
            return None if row is None else row[0]

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._writer.dialect.name

    async def _revision(self) -> str | None:
        async with store_errors(), self._reader.connect() as conn:
            return await conn.run_sync(current_revision)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, serialised in this process)."""
        if self._write_lock is None:
            async with store_errors(), self._writer.begin() as conn:
                yield conn
            return
        async with store_errors(), self._write_lock, self._writer.begin() as conn:
            yield conn

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """First row of a raw query with `?` placeholders."""
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Every row of a raw read query with `?` placeholders."""
        statement, binds = _qmark(sql, params)
        async with store_errors(), self._reader.connect() as conn:
            result = await conn.execute(statement, binds)
            return [Row(list(result.keys()), row) for row in result]

    async def _execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one raw write with `?` placeholders in its own transaction; the rowcount."""
        statement, binds = _qmark(sql, params)
        async with self._transaction() as conn:
            return (await conn.execute(statement, binds)).rowcount

    async def _rows(self, statement: sa.Executable) -> list[Row]:
        """Every row of a Core query, on the reader."""
        async with store_errors(), self._reader.connect() as conn:
            result = await conn.execute(statement)
            return [Row(list(result.keys()), row) for row in result]

    async def _first(self, statement: sa.Executable) -> Row | None:
        rows = await self._rows(statement)
        return rows[0] if rows else None


def _qmark(sql: str, params: Iterable[Any]) -> tuple[sa.TextClause, dict[str, Any]]:
    """`?` placeholders as SQLAlchemy named binds."""
    values = list(params)
    counter = iter(range(len(values)))
    text = re.sub(r"\?", lambda _: f":p{next(counter)}", sql)
    return sa.text(text), {f"p{i}": value for i, value in enumerate(values)}


def _sqlite_engines(url: str) -> tuple[AsyncEngine, AsyncEngine]:
    """A one-connection writer (BEGIN IMMEDIATE) and a query-only reader, both in WAL mode."""
    writer = create_async_engine(url, pool_size=1, max_overflow=0)
    reader = create_async_engine(url, pool_size=2, max_overflow=0, isolation_level="AUTOCOMMIT")

    def pragmas(dbapi_connection: Any, _record: Any, *, query_only: bool) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS + (("PRAGMA query_only = ON",) if query_only else ()):
            cursor.execute(pragma)
        cursor.close()

    event.listen(writer.sync_engine, "connect", lambda c, r: pragmas(c, r, query_only=False))
    event.listen(reader.sync_engine, "connect", lambda c, r: pragmas(c, r, query_only=True))
    event.listen(writer.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return writer, reader


def _open_hint(shown: str, error: BaseException, sqlite: bool) -> str:
    if sqlite:
        return open_hint(
            shown, error, setting="DIKKAT_DB_PATH", otherwise="check the path and permissions"
        )
    return open_hint(
        shown,
        error,
        setting="DIKKAT_DATABASE_URL",
        otherwise="check the URL, that the server runs and the credentials",
    )
