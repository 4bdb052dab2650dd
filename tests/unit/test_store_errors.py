"""The store's own errors: a driver's busy, full and unreachable errors, named once."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from dikkat.storage.errors import (
    StoreBusy,
    StoreFull,
    StoreUnavailable,
    classify,
    store_errors,
)


class PgError(Exception):
    """An error as asyncpg (through SQLAlchemy's adapter) carries it: a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


class Wrapped(Exception):
    """SQLAlchemy's DBAPIError shape: the driver's error in `orig`."""

    def __init__(self, orig: BaseException, invalidated: bool = False) -> None:
        super().__init__(str(orig))
        self.orig = orig
        self.connection_invalidated = invalidated


def real_sqlite_errors(tmp_path: Path) -> tuple[sqlite3.Error, sqlite3.Error]:
    """A "database is locked" and a "database or disk is full" from SQLite itself."""
    path = tmp_path / "e.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x TEXT)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("BEGIN IMMEDIATE")
    holder.execute("ROLLBACK")
    pages = holder.execute("PRAGMA page_count").fetchone()[0]
    holder.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.Error) as full:
        for _ in range(1000):
            holder.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
    holder.close()
    waiter.close()
    return locked.value, full.value


def test_sqlite_locked_and_full_are_busy_and_full(tmp_path: Path) -> None:
    locked, full = real_sqlite_errors(tmp_path)
    assert classify(locked) is StoreBusy and classify(Wrapped(locked)) is StoreBusy
    assert classify(full) is StoreFull and classify(Wrapped(full)) is StoreFull
    assert classify(sqlite3.IntegrityError("UNIQUE constraint failed")) is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (PgError("40P01"), StoreBusy),
        (PgError("55P03"), StoreBusy),
        (PgError("53100"), StoreFull),
        (PgError("08006"), StoreUnavailable),
        (PgError("57P01"), StoreUnavailable),
        (Wrapped(PgError("57P03")), StoreUnavailable),
        (Wrapped(RuntimeError("anything"), invalidated=True), StoreUnavailable),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), StoreUnavailable),
        (OSError(errno.ENOSPC, "No space left on device"), StoreFull),
        (PgError("23505"), None),  # a unique violation is the caller's
        (ValueError("a bug"), None),
    ],
)
def test_driver_errors_are_classified(error: BaseException, kind: type | None) -> None:
    assert classify(error) is kind


async def test_store_errors_translates_and_chains_and_passes_the_rest() -> None:
    cause = PgError("08006")
    with pytest.raises(StoreUnavailable) as raised:
        async with store_errors():
            raise Wrapped(cause)
    assert raised.value.__cause__.orig is cause
    with pytest.raises(KeyError):
        async with store_errors():
            raise KeyError("not the store's")
