"""Alembic migrations: SQLite files of every released schema are adopted with every row,
`dikkat db upgrade` is safe from two processes at once, and the tables match the migrations."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest
from pg_cluster import PgCluster
from typer.testing import CliRunner

from dikkat.cli.db import db_app
from dikkat.hashing import text_hash
from dikkat.storage.legacy_schema import MIGRATIONS, PRAGMAS
from dikkat.storage.migrate import head_revision, upgrade
from dikkat.storage.records import DatabaseOpenError, SlotTaken
from dikkat.storage.store import Store

TABLES_V2 = ("users", "predictions", "feedback", "features", "model_versions", "retrain_runs")
TABLES = (*TABLES_V2, "audit")
SHARED_WORK_TABLES = ("telegram_updates", "retrain_requests")
# A database as the last aiosqlite Store (schema version 6, commit 2d3dbc0) left it.
RELEASED_FILE = Path(__file__).parent / "files" / "schema6-aiosqlite-store.db"
REPO = Path(__file__).resolve().parents[2]
BARRIER_HANG_S = 120  # only a hang takes this long (starting interpreters takes seconds)


def counts(path: Path, tables: Iterable[str] = TABLES) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def make_old_file(path: Path, version: int) -> None:
    """A file as Dikkat with schema `version` (2 or later) left it, rows in every table."""
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:version]) + f"\nPRAGMA user_version = {version};")
    for i in range(3):
        conn.execute("INSERT INTO users VALUES ('telegram', ?, 'tr', 0)", (str(i),))
        conn.execute(
            "INSERT INTO predictions (platform, user_id, chat_id, text, text_hash, label, "
            "probabilities, created_at) VALUES ('telegram', ?, 'c', ?, ?, 'neutral', '{}', 0)",
            (str(i), f"t{i}", f"h{i}"),
        )
        conn.execute(
            "INSERT INTO feedback (prediction_id, platform, user_id, label, created_at, "
            "updated_at) VALUES (?, 'telegram', ?, 'positive', 0, 0)",
            (i + 1, str(i)),
        )
        conn.execute("INSERT INTO features VALUES (?, 'enc', 1, x'0000803f', 0)", (f"h{i}",))
    conn.execute(
        "INSERT INTO model_versions (encoder, dim, path, status, created_at) "
        "VALUES ('enc', 1, 'a.pt', 'active', 0)"
    )
    conn.execute(
        "INSERT INTO retrain_runs (trigger, status, started_at) VALUES ('cron', 'promoted', 0)"
    )
    conn.execute(
        "INSERT INTO audit (platform, user_id, action, created_at) VALUES ('t', '1', 'x', 0)"
    )
    conn.commit()
    conn.close()


async def test_a_file_of_the_last_aiosqlite_release_is_adopted_with_every_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dikkat.db"
    shutil.copyfile(RELEASED_FILE, path)
    before = counts(path, (*TABLES, *SHARED_WORK_TABLES))
    assert all(before.values()), before
    store = await Store.open(path)
    try:
        assert await store.schema_version() == int(head_revision())
        assert counts(path, before) == before
        assert (await store.stats())["predictions"] == 5
        assert len(await store.feedback_rows()) == 4
        assert (await store.active_version("enc")).metrics == {"macro_f1": 0.5}
        assert await store.get_language("telegram", "u3") == "en"
        assert (await store.last_run()).status == "running"
        assert await store.get_features("enc", [text_hash("örnek metin 1")]) != {}
        assert not await store.record_telegram_update(0)  # finished: a duplicate
        assert await store.record_telegram_update(1)  # unfinished, its process gone: taken
        assert await store.take_retrain_request() is not None
        assert await store.take_retrain_request() is None
        with pytest.raises(SlotTaken):
            await store.start_run("cron", None, slot="slot-1")
        newest = await store.log_prediction(
            platform="telegram",
            user_id="w",
            chat_id="c",
            text="yeni",
            label="neutral",
            probabilities={"neutral": 1.0},
            head_version=None,
        )
        assert newest == 7  # id 6 was freed by a forget before the upgrade: never reused
    finally:
        await store.close()


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
async def test_an_older_sqlite_file_migrates_with_equal_row_counts(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / f"v{version}.db"
    if version >= 2:
        make_old_file(path, version)
        before = counts(path)
        assert all(before.values()), before
    else:
        conn = sqlite3.connect(path)
        conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        conn.execute("INSERT INTO users VALUES ('telegram', '1', 'tr', 0)")
        conn.commit()
        conn.close()
        before = {"users": 1}
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        assert await store.schema_version() == int(head_revision())
        assert await store.get_language("telegram", "1") == "tr"
        await store.add_model_version(
            encoder="enc", dim=1, path="b.pt", metrics={}, status="active", source="run", blob=b"w"
        )
    finally:
        await store.close()
    after = counts(path)
    assert {table: after[table] for table in before} == {
        t: n + (t == "model_versions") for t, n in before.items()
    }
    conn = sqlite3.connect(path)
    query = "SELECT sql FROM sqlite_master WHERE name = 'predictions'"
    (table_sql,) = conn.execute(query).fetchone()
    conn.close()
    assert "AUTOINCREMENT" in table_sql  # revision 0007: ids never reused


def upgrade_in_two_processes(*urls: str) -> list[subprocess.CompletedProcess]:
    """`dikkat db upgrade --url URL` in two processes per URL, all released together: each
    signs in at a barrier (a folder) once it has imported everything, then waits for the rest."""
    code = (
        "import os, sys, time\n"
        "from dikkat.cli.db import db_app; import dikkat.storage.migrate\n"
        "barrier, parties = sys.argv.pop(1), int(sys.argv.pop(1))\n"
        "open(os.path.join(barrier, str(os.getpid())), 'x').close()\n"
        f"deadline = time.monotonic() + {BARRIER_HANG_S}\n"
        "while len(os.listdir(barrier)) < parties:\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit('hung: the other processes never came to the barrier')\n"
        "    time.sleep(0.001)\n"
        "db_app()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parties = 2 * len(urls)
    with tempfile.TemporaryDirectory() as barrier:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, barrier, str(parties), "upgrade", "--url", url],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for url in urls
            for _ in range(2)
        ]
        done = []
        try:
            for proc in procs:
                out, err = proc.communicate(timeout=2 * BARRIER_HANG_S)
                done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        finally:
            for proc in procs:
                if proc.poll() is None:  # hung: leave no process behind
                    proc.kill()
                    proc.communicate()
    return done


def test_two_concurrent_upgrades_both_succeed_on_sqlite(tmp_path: Path) -> None:
    fresh, legacy = tmp_path / "fresh.db", tmp_path / "legacy.db"
    make_old_file(legacy, 2)
    before = counts(legacy)
    urls = [f"sqlite+aiosqlite:///{path}" for path in (fresh, legacy)]
    for done in upgrade_in_two_processes(*urls):
        assert done.returncode == 0, done.stderr.decode()
        assert f"revision {head_revision()}" in done.stdout.decode()
    assert counts(legacy) == before


def test_two_concurrent_upgrades_both_succeed_on_postgres(
    pg_server: PgCluster, pg_url: str
) -> None:
    for done in upgrade_in_two_processes(pg_url):
        assert done.returncode == 0, done.stderr.decode()
    database = pg_url.rsplit("/", 1)[1]
    assert pg_server.psql("SELECT version_num FROM alembic_version", database).strip() == (
        head_revision()
    )
    indexes = pg_server.psql("SELECT indexname FROM pg_indexes ORDER BY 1", database).split()
    assert {"one_running_run", "one_active_head_per_encoder"} <= set(indexes)


def test_the_cli_finds_the_database_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("DIKKAT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    monkeypatch.setenv("DIKKAT_DB_PATH", str(tmp_path / "from_path.db"))
    result = runner.invoke(db_app, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from_path.db").exists()
    monkeypatch.setenv("DIKKAT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'from_url.db'}")
    assert runner.invoke(db_app, ["upgrade"]).exit_code == 0
    assert (tmp_path / "from_url.db").exists()
    (tmp_path / "broken.db").write_bytes(b"no" * 1000)
    result = runner.invoke(db_app, ["upgrade", "--url", f"sqlite:///{tmp_path / 'broken.db'}"])
    assert result.exit_code == 1 and "cannot upgrade" in result.output


async def test_postgres_tables_match_the_declared_metadata(pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from dikkat.storage.tables import metadata

    await upgrade(pg_url)
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


READ_ONLY_SQL = re.compile(r"(SELECT\b|PRAGMA [\w.]+(\(.*\))?$|BEGIN\b|COMMIT\b|ROLLBACK\b)", re.S)


def test_an_upgrade_with_nothing_to_do_runs_no_migration_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps a no-op upgrade (every process start) cheap: no Alembic command runs, and the
    only SQL on the file is reads (plus the connection PRAGMAs)."""
    from alembic import command

    from dikkat.storage import migrate

    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(statements.append)  # every statement, aiosqlite's included
        return conn

    commands: list[str] = []

    def recorded(name: str):  # noqa: ANN202
        def run(*args: object, **kwargs: object) -> object:
            commands.append(name)
            return getattr(command, name)(*args, **kwargs)

        return run

    monkeypatch.setattr(sqlite3, "connect", traced)
    monkeypatch.setattr(
        migrate, "command", SimpleNamespace(upgrade=recorded("upgrade"), stamp=recorded("stamp"))
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'quick.db'}"
    assert asyncio.run(upgrade(url)) == head_revision()
    assert "upgrade" in commands  # the first time the migrations run, and we see them
    assert any(statement.strip().startswith("CREATE TABLE") for statement in statements)
    commands.clear()
    statements.clear()
    assert asyncio.run(upgrade(url)) == head_revision()
    assert commands == []
    assert statements  # the trace still sees the connections
    writes = [s for s in statements if s not in PRAGMAS and not READ_ONLY_SQL.match(s.strip())]
    assert writes == []


async def test_a_path_opens_a_sqlite_file_in_a_new_folder(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "new" / "folder" / "d.db")  # like Store.open(path)
    try:
        assert store.path == tmp_path / "new" / "folder" / "d.db"
        assert await store.schema_version() == int(head_revision())
    finally:
        await store.close()


async def test_without_upgrade_an_old_schema_is_one_clear_error(db_url: str) -> None:
    with pytest.raises(DatabaseOpenError, match="dikkat db upgrade"):
        await Store.open(db_url, upgrade=False)


async def test_a_sqlite_file_newer_than_todays_scripts_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await Store.open(path)
