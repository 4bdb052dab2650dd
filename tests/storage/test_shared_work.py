"""Work shared by several processes (schema 5 / revision 0006), on SQLite and PostgreSQL:
Telegram updates claimed once, one run per cron slot, retrain requests taken once; and a file
at revision 0005 that already has script 5 upgraded to 0006."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_store import dead_owner

from dikkat.storage import coordination
from dikkat.storage.legacy_schema import MIGRATIONS, SCHEMA_VERSION, migration_script
from dikkat.storage.migrate import head_revision
from dikkat.storage.records import RunInProgress, SlotTaken
from dikkat.storage.store import Store

WORKER = Path(__file__).with_name("shared_work_worker.py")
REPO = Path(__file__).resolve().parents[2]


# telegram_updates


async def test_an_update_is_claimed_once_and_a_finished_one_stays_a_duplicate(
    store: Store,
) -> None:
    assert await store.record_telegram_update(7001) is True
    assert await store.record_telegram_update(7001) is False  # re-sent while processing
    assert await store.telegram_update_done(7001) is False
    await store.finish_telegram_update(7001)
    assert await store.telegram_update_done(7001) is True
    assert await store.record_telegram_update(7001) is False
    assert await store.record_telegram_update(7001, claim_s=0) is False  # done is done
    assert await store.record_telegram_update(2**40) is True  # ids beyond 32 bits


async def test_a_released_or_abandoned_claim_is_taken_again(store: Store) -> None:
    assert await store.record_telegram_update(1)
    await store.release_telegram_update(1)  # processing failed: the re-sent update runs
    assert await store.record_telegram_update(1)
    assert await store.record_telegram_update(2)
    await store._write(
        "UPDATE telegram_updates SET owner = :owner WHERE update_id = 2", {"owner": dead_owner()}
    )
    assert await store.record_telegram_update(2)  # its process died on this host
    assert not await store.record_telegram_update(2)  # now ours, still processing
    assert await store.record_telegram_update(3)
    await store._write("UPDATE telegram_updates SET owner = 'elsewhere:1' WHERE update_id = 3")
    assert not await store.record_telegram_update(3)  # another host's live claim
    assert await store.record_telegram_update(3, claim_s=-1)  # ... until it is too old
    await store._write("UPDATE telegram_updates SET owner = 'elsewhere:1' WHERE update_id = 1")
    await store.release_telegram_update(1)  # only our own claim is released
    assert not await store.record_telegram_update(1)


async def test_old_updates_are_pruned(store: Store) -> None:
    for update_id in (1, 2, 3):
        assert await store.record_telegram_update(update_id)
        await store.finish_telegram_update(update_id)
    await store._write(
        "UPDATE telegram_updates SET received_at = :t WHERE update_id < 3",
        {"t": time.time() - 7200},
    )
    assert await store.prune_telegram_updates(3600) == 2
    assert await store.prune_telegram_updates(3600) == 0
    assert await store.record_telegram_update(1)  # forgotten: a very late re-send runs again
    assert not await store.record_telegram_update(3)


# cron slots


async def test_a_cron_slot_starts_at_most_one_run(store: Store) -> None:
    run = await store.start_run("cron", None, slot="2026-01-01T03:00")
    assert (await store.get_run(run)).slot == "2026-01-01T03:00"
    with pytest.raises(SlotTaken, match=f"#{run}"):  # the other trainer, same firing
        await store.start_run("cron", None, slot="2026-01-01T03:00")
    with pytest.raises(RunInProgress):  # another slot while it runs
        await store.start_run("cron", None, slot="2026-01-01T04:00")
    await store.finish_run(run, status="failed", error="boom")
    with pytest.raises(SlotTaken):  # whatever the first run's status
        await store.start_run("cron", None, slot="2026-01-01T03:00")
    second = await store.start_run("cron", None, slot="2026-01-01T04:00")
    await store.finish_run(second, status="skipped")
    unslotted = await store.start_run("admin", "telegram:1")  # RunInProgress rules unchanged
    assert (await store.get_run(unslotted)).slot is None
    with pytest.raises(RunInProgress):
        await store.start_run("admin", "telegram:1")
    await store.finish_run(unslotted, status="rejected")
    assert await store.start_run("admin", "telegram:1") > unslotted


async def test_the_database_refuses_a_second_run_of_a_slot(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await store.start_run("cron", None, slot="s")
    await store.finish_run(run, status="promoted")

    original = coordination._refusal
    calls = []

    async def misses_once(db, slot):  # the race: both checked before either inserted
        calls.append(slot)
        return None if len(calls) == 1 else await original(db, slot)

    monkeypatch.setattr(coordination, "_refusal", misses_once)
    with pytest.raises(SlotTaken, match=f"#{run}"):  # the unique index refused the insert
        await store.start_run("cron", None, slot="s")
    assert len(calls) == 2
    rows = await store._read("SELECT id FROM retrain_runs WHERE slot = 's'")
    assert [row.id for row in rows] == [run]


# retrain requests


async def test_requests_are_taken_oldest_first_and_once(store: Store) -> None:
    assert await store.take_retrain_request() is None
    first = await store.request_retrain("telegram:1")
    second = await store.request_retrain("discord:2")
    assert await store.take_retrain_request() == (first, "telegram:1")
    run = await store.start_run("admin", "telegram:1")
    await store.attach_request_run(first, run)
    assert await store.take_retrain_request() == (second, "discord:2")
    assert await store.take_retrain_request() is None
    rows = await store._read("SELECT id, run_id, taken_at FROM retrain_requests ORDER BY id")
    assert [(r.id, r.run_id) for r in rows] == [(first, run), (second, None)]
    assert all(r.taken_at is not None for r in rows)


# races between processes


def race(url: str, mode: str, n: int) -> list[list[int]]:
    """Two worker processes released at one instant; what each claimed."""
    start_at = str(time.time() + 2.0)  # after both interpreters have connected
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, start_at, mode, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [worker.communicate(timeout=90) for worker in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outcomes]
    return [json.loads(out)["claimed"] for out, _ in outcomes]


async def test_concurrent_deliveries_from_two_processes_claim_each_update_once(
    db_url: str,
) -> None:
    store = await Store.open(db_url)  # the schema before the race
    try:
        claimed = race(db_url, "updates", 400)
        everything = sorted(claimed[0] + claimed[1])
        assert everything == list(range(400)), [len(c) for c in claimed]  # none twice
        done = await store._read("SELECT COUNT(*) FROM telegram_updates WHERE done_at IS NOT NULL")
        assert done[0][0] == 400
    finally:
        await store.close()


async def test_concurrent_takers_from_two_processes_never_share_a_request(db_url: str) -> None:
    store = await Store.open(db_url)
    try:
        made = [await store.request_retrain(f"telegram:{i}") for i in range(100)]
        claimed = race(db_url, "requests", 10)
        assert sorted(claimed[0] + claimed[1]) == made  # each exactly once, none left
    finally:
        await store.close()


async def test_a_file_at_0005_with_script_5_applied_then_upgrades_to_0006(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from dikkat.storage.legacy_schema import adopt
    from dikkat.storage.migrate import alembic_config

    path = tmp_path / "r5.db"
    adopt(path, 4)  # schema 4 ...
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.stamp(config, "0004")
            command.upgrade(config, "0005")  # ... then what the Store of revision 0005 made
            conn.commit()
    finally:
        engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)  # as the aiosqlite Store added version 5
    conn.executescript(migration_script(5, MIGRATIONS[4]))
    conn.execute("INSERT INTO retrain_requests (requested_by, created_at) VALUES ('telegram:1', 0)")
    conn.close()
    store = await Store.open(path)  # 0006 finds its tables there and only records that
    try:
        assert await store.schema_version() == int(head_revision())
        assert await store.take_retrain_request() == (1, "telegram:1")
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
