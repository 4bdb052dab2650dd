"""Cross-process locks for migrations: a PostgreSQL advisory lock or an fcntl file lock."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATION_LOCK_KEY = 0x64696B6D  # "dikm": one schema upgrade at a time per database


@asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive fcntl lock on `path` (created if needed); waits in a thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@asynccontextmanager
async def advisory_lock(
    conn: AsyncConnection, key: int = MIGRATION_LOCK_KEY
) -> AsyncIterator[None]:
    """Hold a session-level pg_advisory_lock on this connection (outside any transaction)."""
    await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
    await conn.commit()
    try:
        yield
    finally:
        await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        await conn.commit()


def sqlite_lock_path(db_path: Path) -> Path:
    """The lock file next to a SQLite database."""
    return db_path.with_name(db_path.name + ".migrate.lock")
