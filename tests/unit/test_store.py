"""The Store: migrations, feedback votes, privacy, model versions, runs, concurrency, backup."""

import asyncio
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dikkat.storage.features import FeatureCache, text_hash
from dikkat.storage.schema import MIGRATIONS, SCHEMA_VERSION
from dikkat.storage.store import RunInProgress, Store
from dikkat.training.votes import resolve_votes


@pytest.fixture
async def store(tmp_path: Path):
    opened = await Store.open(tmp_path / "s.db")
    yield opened
    await opened.close()


async def predict(store: Store, text: str, user: str = "u1", label: str = "positive") -> int:
    return await store.log_prediction(
        platform="telegram",
        user_id=user,
        chat_id="c",
        text=text,
        label=label,
        probabilities={"negative": 0.1, "neutral": 0.1, "positive": 0.8},
        head_version=1,
    )


async def test_new_database_is_at_the_latest_schema_in_wal_mode(store: Store) -> None:
    assert await store.schema_version() == SCHEMA_VERSION
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_an_older_database_is_migrated_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO predictions (platform, user_id, chat_id, text, text_hash, label, "
        "probabilities, head_version, created_at) VALUES ('telegram', '1', '1', 'eski', 'h', "
        "'positive', '{}', NULL, 0)"
    )
    conn.commit()
    conn.close()
    store = await Store.open(path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert (await store.stats())["predictions"] == 1
        assert await store.add_feedback(1, "telegram", "2", "negative") == "created"
        assert await store.list_versions() == []
    finally:
        await store.close()


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        await Store.open(path)


async def test_feedback_created_changed_unchanged_missing(store: Store) -> None:
    pid = await predict(store, "güzel")
    assert await store.add_feedback(pid, "telegram", "u2", "positive") == "created"
    assert await store.add_feedback(pid, "telegram", "u2", "positive") == "unchanged"
    assert await store.add_feedback(pid, "telegram", "u2", "negative") == "changed"
    assert await store.add_feedback(9999, "telegram", "u2", "negative") == "missing"
    assert [row["label"] for row in await store.feedback_rows()] == ["negative"]
    with pytest.raises(ValueError):
        await store.add_feedback(pid, "telegram", "u2", "great")


async def test_a_prediction_id_is_never_reused_after_forget(store: Store) -> None:
    first = await predict(store, "ilk", "a")
    newest = await predict(store, "A'nın son metni", "a")
    await store.forget_user("telegram", "a")
    assert await predict(store, "B'nin metni", "b") > newest > first
    assert await store.add_feedback(newest, "telegram", "a", "negative", chat_id="c") == "missing"
    assert await store.feedback_rows() == []


async def test_a_vote_from_another_chat_or_platform_is_refused(store: Store) -> None:
    pid = await predict(store, "güzel")  # made in chat "c" on telegram
    assert await store.add_feedback(pid, "telegram", "u2", "positive", chat_id="x") == "missing"
    assert await store.add_feedback(pid, "discord", "u2", "positive", chat_id="c") == "missing"
    assert await store.add_feedback(pid, "telegram", "u2", "positive", chat_id="c") == "created"


async def test_version_5_file_gets_ids_never_reused_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript("".join(MIGRATIONS[:5]) + "\nPRAGMA user_version = 5;")
    for pid in (1, 2, 3):
        conn.execute(
            "INSERT INTO predictions (id, platform, user_id, chat_id, text, text_hash, label, "
            "probabilities, head_version, created_at) VALUES (?, 'telegram', 'u', 'c', ?, 'h', "
            "'positive', '{}', NULL, 0)",
            (pid, f"metin {pid}"),
        )
        conn.execute(
            "INSERT INTO feedback (prediction_id, platform, user_id, label, created_at, "
            "updated_at) VALUES (?, 'telegram', 'v', 'negative', 0, 0)",
            (pid,),
        )
    conn.execute("DELETE FROM predictions WHERE id = 3")  # cascades to its vote
    conn.close()
    store = await Store.open(path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        assert [row["prediction_id"] for row in await store.feedback_rows()] == [1, 2]
        await store.forget_user("telegram", "u")
        assert await predict(store, "yeni") == 3  # ids freed before the upgrade: not known
        await store.forget_user("telegram", "u1")
        assert await predict(store, "daha yeni") == 4
        check = sqlite3.connect(path).execute("PRAGMA foreign_key_check").fetchall()
        assert check == []
    finally:
        await store.close()


async def test_majority_vote_ties_dropped_and_one_vote_per_user_per_text(store: Store) -> None:
    for user, label in [("a", "positive"), ("b", "positive"), ("c", "negative")]:
        await store.add_feedback(await predict(store, "çok iyi", user), "telegram", user, label)
    for user, label in [("a", "negative"), ("b", "positive")]:
        await store.add_feedback(await predict(store, "idare eder", user), "telegram", user, label)
    for _ in range(5):  # one user sending the same text again and again counts once
        await store.add_feedback(await predict(store, "berbat", "d"), "telegram", "d", "positive")
    await store.add_feedback(await predict(store, "berbat", "e"), "telegram", "e", "negative")
    await store.add_feedback(await predict(store, "berbat", "f"), "telegram", "f", "negative")
    resolved = dict(resolve_votes(await store.feedback_votes(), max_per_user=100))
    assert resolved == {"çok iyi": "positive", "berbat": "negative"}


async def test_cap_per_user_keeps_only_their_newest_votes(store: Store) -> None:
    for i in range(10):
        pid = await predict(store, f"metin {i}", "spammer")
        await store.add_feedback(pid, "telegram", "spammer", "negative")
    resolved = resolve_votes(await store.feedback_votes(), max_per_user=3)
    assert sorted(text for text, _ in resolved) == ["metin 7", "metin 8", "metin 9"]


async def test_forget_deletes_only_that_users_data(store: Store, tmp_path: Path) -> None:
    mine = await predict(store, "benim metnim", "me")
    theirs = await predict(store, "onların metni", "them")
    await store.add_feedback(mine, "telegram", "me", "neutral")
    await store.add_feedback(theirs, "telegram", "me", "positive")
    await store.add_feedback(theirs, "telegram", "them", "positive")
    await store.set_language("telegram", "me", "en")
    cache = FeatureCache(store.path, "enc")
    import numpy as np

    cache.put_many({text_hash("benim metnim"): np.ones(4), text_hash("onların metni"): np.ones(4)})
    result = await store.forget_user("telegram", "me")
    assert (result.predictions, result.feedback, result.features) == (1, 2, 1)
    assert await store.get_language("telegram", "me") is None
    rows = await store.feedback_rows()
    assert [(r["user_id"], r["text"]) for r in rows] == [("them", "onların metni")]
    assert set(cache.get_many([text_hash("onların metni"), text_hash("benim metnim")])) == {
        text_hash("onların metni")
    }
    cache.close()


async def test_model_versions_one_active_per_encoder(store: Store) -> None:
    first = await store.add_model_version(
        encoder="e", dim=4, path="a.pt", metrics={"macro_f1": 0.5}, status="active", source="seed"
    )
    second = await store.add_model_version(
        encoder="e", dim=4, path="b.pt", metrics={"macro_f1": 0.6}, status="active", source="run"
    )
    assert (await store.active_version("e")).id == second
    assert (await store.get_version(first)).status == "retired"
    await store.activate_version(first)
    assert (await store.active_version("e")).id == first
    assert [v.id for v in await store.list_versions("e")] == [second, first]
    with pytest.raises(KeyError):
        await store.activate_version(999)


def dead_owner() -> str:
    """The owner string of a process on this host that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


async def test_runs_are_recorded_and_a_crashed_owners_run_is_marked_failed(store: Store) -> None:
    run = await store.start_run("admin", "telegram:1")
    await store.finish_run(run, status="promoted", n_feedback=3, metrics_after={"macro_f1": 0.7})
    stuck = await store.start_run("cron", None)
    await store._conn.execute(
        "UPDATE retrain_runs SET owner = ? WHERE id = ?", (dead_owner(), stuck)
    )
    assert await store.fail_unfinished_runs() == 1
    assert (await store.get_run(stuck)).status == "failed"
    finished = await store.get_run(run)
    assert finished.status == "promoted" and finished.metrics_after == {"macro_f1": 0.7}


async def test_a_live_run_survives_other_processes_until_its_lease_expires(
    store: Store, tmp_path: Path
) -> None:
    live = await store.start_run("admin", "telegram:1")
    other = await Store.open(store.path)  # e.g. `dikkat ask` starting while the bot retrains
    try:
        assert await other.fail_unfinished_runs() == 0
        with pytest.raises(RunInProgress):
            await other.start_run("cli", "cli")
        assert (await other.get_run(live)).status == "running"
        await store.renew_lease(live)
        await store._conn.execute("UPDATE retrain_runs SET lease_until = 0 WHERE id = ?", (live,))
        reclaimed_by_new_run = await other.start_run("cli", "cli")
        assert (await other.get_run(live)).status == "failed"
        assert (await other.get_run(reclaimed_by_new_run)).status == "running"
    finally:
        await other.close()


async def test_concurrent_writers_never_see_database_locked(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    stores = [await Store.open(path) for _ in range(3)]
    try:

        async def writer(store: Store, n: int) -> None:
            for i in range(40):
                pid = await predict(store, f"t{n}-{i}", f"u{n}")
                await store.add_feedback(pid, "telegram", f"u{n}", "positive")

        await asyncio.gather(*(writer(stores[i % 3], i) for i in range(9)))
        assert (await stores[0].stats())["predictions"] == 360
        assert await stores[0].feedback_count() == 360
    finally:
        for store in stores:
            await store.close()


async def test_online_backup(store: Store, tmp_path: Path) -> None:
    await predict(store, "yedek")
    await store.backup(tmp_path / "backup" / "copy.db")
    copy = sqlite3.connect(tmp_path / "backup" / "copy.db")
    assert copy.execute("SELECT text FROM predictions").fetchall() == [("yedek",)]


async def test_audit_log(store: Store) -> None:
    await store.audit("discord", "42", "rollback", "version 3")
    assert (await store.audit_log())[0]["action"] == "rollback"


async def test_only_one_run_may_be_running_across_connections(tmp_path: Path) -> None:
    from dikkat.storage.store import RunInProgress

    first, second = await Store.open(tmp_path / "r.db"), await Store.open(tmp_path / "r.db")
    try:
        run = await first.start_run("admin", "telegram:1")
        with pytest.raises(RunInProgress, match=f"#{run}"):
            await second.start_run("cli", "cli")
        await first.finish_run(run, status="rejected")
        assert await second.start_run("cli", "cli") == run + 1
    finally:
        await first.close()
        await second.close()


# schema 5: work shared by several processes


async def test_a_telegram_update_is_claimed_once(store: Store) -> None:
    assert await store.record_telegram_update(10) is True
    assert await store.record_telegram_update(10) is False  # re-sent while processing
    assert not await store.telegram_update_done(10)
    await store.finish_telegram_update(10)
    assert await store.telegram_update_done(10)
    assert await store.record_telegram_update(10, claim_s=0) is False  # done is done
    assert await store.record_telegram_update(11)
    await store.release_telegram_update(11)  # processing failed: the re-send is processed
    assert await store.record_telegram_update(11)
    await store._conn.execute(
        "UPDATE telegram_updates SET owner = ? WHERE update_id = 11", (dead_owner(),)
    )
    assert await store.record_telegram_update(11)  # its process died: taken over
    await store._conn.execute("UPDATE telegram_updates SET owner = 'other:1' WHERE update_id = 11")
    assert not await store.record_telegram_update(11)  # another host's live claim
    assert await store.record_telegram_update(11, claim_s=-1)  # ... until it is too old
    await store._conn.execute("UPDATE telegram_updates SET received_at = 0 WHERE update_id = 10")
    assert await store.prune_telegram_updates(3600) == 1
    assert await store.record_telegram_update(10)


async def test_concurrent_deliveries_on_several_connections_claim_each_update_once(
    tmp_path: Path,
) -> None:
    stores = [await Store.open(tmp_path / "u.db") for _ in range(3)]
    try:
        attempts = [(stores[i % 3], i % 50) for i in range(150)]  # each id delivered 3 times
        results = await asyncio.gather(*(s.record_telegram_update(u) for s, u in attempts))
        claimed = [u for (_, u), won in zip(attempts, results, strict=True) if won]
        assert sorted(claimed) == list(range(50))  # each update id exactly once
    finally:
        for store in stores:
            await store.close()


async def test_a_cron_slot_starts_at_most_one_run(store: Store) -> None:
    from dikkat.storage.store import SlotTaken

    run = await store.start_run("cron", None, slot="03:00")
    assert (await store.get_run(run)).slot == "03:00"
    with pytest.raises(SlotTaken, match=f"#{run}"):
        await store.start_run("cron", None, slot="03:00")
    with pytest.raises(RunInProgress):
        await store.start_run("cron", None, slot="04:00")
    await store.finish_run(run, status="failed")
    with pytest.raises(SlotTaken):  # any status
        await store.start_run("cron", None, slot="03:00")
    with pytest.raises(sqlite3.IntegrityError):  # the index itself refuses a second one
        await store._conn.execute(
            "INSERT INTO retrain_runs (trigger, status, started_at, slot) "
            "VALUES ('cron', 'failed', 0, '03:00')"
        )
    later = await store.start_run("cron", None, slot="04:00")
    await store.finish_run(later, status="skipped")
    assert (await store.get_run(await store.start_run("admin", "telegram:1"))).slot is None


async def test_retrain_requests_are_taken_once_oldest_first(tmp_path: Path) -> None:
    stores = [await Store.open(tmp_path / "q.db") for _ in range(2)]
    try:
        first = await stores[0].request_retrain("telegram:1")
        assert await stores[1].take_retrain_request() == (first, "telegram:1")
        run = await stores[1].start_run("admin", "telegram:1")
        await stores[1].attach_request_run(first, run)
        row = await stores[0]._one("SELECT run_id, taken_at FROM retrain_requests")
        assert row["run_id"] == run and row["taken_at"] is not None
        assert await stores[0].take_retrain_request() is None
        made = [await stores[0].request_retrain(f"u{i}") for i in range(60)]

        async def taker(store: Store) -> list[int]:
            taken = []
            while (request := await store.take_retrain_request()) is not None:
                taken.append(request[0])
            return taken

        results = await asyncio.gather(*(taker(stores[i % 2]) for i in range(8)))
        assert sorted(i for taken in results for i in taken) == made  # none twice, none left
    finally:
        for store in stores:
            await store.close()
