"""The store's own errors: what kept a read or write from happening, whatever the driver said."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class StoreError(RuntimeError):
    """The database could not serve a read or a write just now; nothing was changed."""


class StoreBusy(StoreError):
    """Another writer held the database longer than this one would wait."""


class StoreFull(StoreError):
    """The disk under the database (or its quota) is full: nothing new can be written."""


class StoreUnavailable(StoreError):
    """The database cannot be reached: the server is down or the connection was lost."""


# PostgreSQL SQLSTATEs: deadlock, lock not available, statement timeout, too many connections
_BUSY_STATES = frozenset({"40P01", "55P03", "57014", "53300"})
_DISK_FULL = "53100"


def classify(error: BaseException) -> type[StoreError] | None:
    """The store error a driver's exception means, None when it means none of them (a bug, a
    constraint: the caller's to handle). SQLAlchemy's wrappers are looked through."""
    if getattr(error, "connection_invalidated", False):
        return StoreUnavailable
    cause = getattr(error, "orig", None) or error
    if type(error).__name__ == "TimeoutError" and type(error).__module__.startswith("sqlalchemy"):
        return StoreBusy  # no pooled connection came free in time
    if isinstance(cause, sqlite3.Error):
        name = getattr(cause, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreBusy
        if name == "SQLITE_FULL":
            return StoreFull
        return None
    state = str(getattr(cause, "sqlstate", None) or "")
    if state in _BUSY_STATES:
        return StoreBusy
    if state == _DISK_FULL:
        return StoreFull
    if state.startswith(("08", "57P")):  # connection exception, shutdown, cannot connect now
        return StoreUnavailable
    if isinstance(cause, OSError):
        return StoreFull if cause.errno == errno.ENOSPC else StoreUnavailable
    if "connection is closed" in str(cause) or "connection was closed" in str(cause):
        return StoreUnavailable
    return None


@asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """Raise a driver's busy / full / unreachable error as StoreBusy / StoreFull /
    StoreUnavailable (chained); every other exception passes unchanged."""
    try:
        yield
    except StoreError:
        raise
    except Exception as error:
        kind = classify(error)
        if kind is None:
            raise
        raise kind(first_line(error)) from error


def first_line(error: BaseException) -> str:
    """The first line of what the driver said (SQLAlchemy's wrapper looked through)."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines and lines[0] else type(error).__name__
