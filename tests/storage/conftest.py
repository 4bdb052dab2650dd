"""Fixtures for the SQL store: one throw-away PostgreSQL cluster per session, a fresh database
per test, and `db_url` / `store` parametrized over SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pg_cluster import PgCluster, pg_cluster, pg_unavailable_reason

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgCluster]:
    """A PostgreSQL 15 cluster for the whole session (skipped when it cannot start here)."""
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_server: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster (postgresql+asyncpg URL)."""
    name = "t_" + uuid.uuid4().hex[:12]
    pg_server.create_database(name)
    yield pg_server.sqlalchemy_url_for(name)
    pg_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet (sqlite+aiosqlite URL)."""
    return f"sqlite+aiosqlite:///{tmp_path / 's.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator:
    """An opened, upgraded Store."""
    from dikkat.storage.store import Store

    opened = await Store.open(db_url)
    yield opened
    await opened.close()
