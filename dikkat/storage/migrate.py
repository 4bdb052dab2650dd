"""Schema upgrades with Alembic, one at a time per database (a PostgreSQL advisory lock, a file
lock next to a SQLite file); files of the aiosqlite Store are adopted first (legacy_schema)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, make_url, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from dikkat.storage.legacy_schema import BUSY_TIMEOUT_MS, adopt, too_new

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "dikkat.storage:migrations"
FIRST_REVISION = "0004"  # legacy user_version 4: adoption runs the scripts up to it, stamps it
MIGRATION_LOCK_KEY = 0x64696B6D  # "dikm": one schema upgrade at a time per database


def alembic_config() -> Config:
    """An in-memory Alembic config (no alembic.ini) pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision this Dikkat knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def shown_url(url: str) -> str:
    """A database URL for people and logs: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path.resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, None for other databases; in-memory SQLite is refused."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared: give a file path")
    return Path(parsed.database)


def asyncpg_dsn(url: str) -> str:
    """A postgresql+asyncpg URL as asyncpg itself takes it (LISTEN, leadership lock)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision (None: not managed by Alembic yet)."""
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(url: str) -> str:
    """Bring the database at `url` to the newest revision (returned), one process at a time."""
    path = sqlite_path(url)
    options = {"timeout": BUSY_TIMEOUT_MS / 1000} if path is not None else {}
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=options)
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
                await asyncio.to_thread(adopt, path, int(FIRST_REVISION))
                async with engine.connect() as conn:
                    return await conn.run_sync(_run_alembic)
            finally:
                os.close(lock)  # releases the flock
        # a session lock, released when this unpooled connection closes
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()
            return await conn.run_sync(_run_alembic)
    finally:
        await engine.dispose()


def _run_alembic(conn: Connection) -> str:
    """Stamp an adopted SQLite file at the first revision, then upgrade to head."""
    config = alembic_config()
    config.attributes["connection"] = conn
    current = current_revision(conn)
    if current is not None and current != head_revision():
        try:
            ScriptDirectory.from_config(config).get_revision(current)
        except CommandError as error:
            raise too_new("revision", current, head_revision()) from error
    if conn.in_transaction():
        conn.commit()
    if current is None and conn.dialect.name == "sqlite":
        command.stamp(config, FIRST_REVISION)
    if current != head_revision():
        command.upgrade(config, "head")
    if conn.in_transaction():
        conn.commit()
    upgraded = current_revision(conn) or ""
    if upgraded != current:
        log.info("database schema upgraded: %s -> %s", current or "new", upgraded)
    return upgraded
