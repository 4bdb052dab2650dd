"""The Store's behaviour, on SQLite and on PostgreSQL: predictions and votes, forgetting, head
versions and their blobs, retrain runs, backup, audit, NOTIFY on activation."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dikkat.hashing import text_hash
from dikkat.storage import coordination
from dikkat.storage.feature_cache import FeatureCache
from dikkat.storage.legacy_schema import MIGRATIONS
from dikkat.storage.migrate import head_revision
from dikkat.storage.records import DatabaseOpenError, RunInProgress, Superseded
from dikkat.storage.store import Store
from dikkat.training.votes import resolve_votes


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


def dead_owner() -> str:
    """The owner string of a process on this host that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


async def test_new_database_is_at_the_newest_revision(store: Store) -> None:
    assert await store.schema_version() == int(head_revision())
    assert await store.ping()
    if store.path is not None:
        conn = sqlite3.connect(store.path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


async def test_an_unknown_newer_revision_is_refused(store: Store, db_url: str) -> None:
    await store._write("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(RuntimeError, match="newer"):
        await Store.open(db_url)


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


async def test_feedback_created_changed_unchanged_missing(store: Store) -> None:
    pid = await predict(store, "güzel")
    assert await store.add_feedback(pid, "telegram", "u2", "positive") == "created"
    assert await store.add_feedback(pid, "telegram", "u2", "positive") == "unchanged"
    assert await store.add_feedback(pid, "telegram", "u2", "negative") == "changed"
    assert await store.add_feedback(9999, "telegram", "u2", "negative") == "missing"
    assert [(r["text"], r["label"]) for r in await store.feedback_rows()] == [("güzel", "negative")]
    assert await store.feedback_count() == 1
    with pytest.raises(ValueError):
        await store.add_feedback(pid, "telegram", "u2", "great")


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
        assert await store.schema_version() == int(head_revision())
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


async def test_forget_deletes_only_that_users_data(store: Store) -> None:
    mine = await predict(store, "benim metnim", "me")
    theirs = await predict(store, "onların metni", "them")

    def vector(_text_hash: str) -> tuple[str, np.ndarray]:
        return "enc", np.ones(4, np.float32)

    await store.add_feedback(mine, "telegram", "me", "neutral", vector)
    await store.add_feedback(theirs, "telegram", "me", "positive", vector)
    await store.add_feedback(theirs, "telegram", "them", "positive", vector)
    await store.set_language("telegram", "me", "en")
    assert await store.get_language("telegram", "me") == "en"
    result = await store.forget_user("telegram", "me")
    assert (result.predictions, result.feedback, result.features) == (1, 2, 1)
    assert await store.get_language("telegram", "me") is None
    rows = await store.feedback_rows()
    assert [(r["user_id"], r["text"]) for r in rows] == [("them", "onların metni")]
    kept = await store._read("SELECT text_hash, dim, vector FROM features")
    assert [(r.text_hash, r.dim) for r in kept] == [(text_hash("onların metni"), 4)]
    assert np.frombuffer(kept[0].vector, np.float32).tolist() == [1.0] * 4


async def test_language_is_upserted(store: Store) -> None:
    await store.set_language("discord", "7", "tr")
    await store.set_language("discord", "7", "en")
    fresh = await Store.open(store.url)
    try:
        assert await fresh.get_language("discord", "7") == "en"
        assert await fresh.get_language("discord", "8") is None
    finally:
        await fresh.close()


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
    assert [v.id for v in await store.list_versions()] == [second, first]
    with pytest.raises(KeyError):
        await store.activate_version(999)
    with pytest.raises(Superseded, match=f"#{first}"):
        await store.activate_version(second, expected_active=second)
    await store.activate_version(second, expected_active=first)
    await store.set_version_status(first, "rejected")
    await store.mark_unloadable(second, "bad checksum")
    unloadable = await store.get_version(second)
    assert (unloadable.status, unloadable.problem) == ("retired", "bad checksum")
    assert await store.active_version("e") is None


async def test_head_weights_live_in_the_database(store: Store) -> None:
    blob = bytes(range(256)) * 40
    version = await store.add_model_version(
        encoder="e", dim=4, path="db:", metrics={}, status="candidate", source="run", blob=blob
    )
    assert await store.get_head_blob(version) == blob
    stored = await store.get_version(version)
    import hashlib

    assert stored.sha256 == hashlib.sha256(blob).hexdigest()
    other = await store.add_model_version(
        encoder="e", dim=4, path="x.pt", metrics={}, status="candidate", source="seed"
    )
    assert await store.get_head_blob(other) is None
    assert await store.put_head_blob(other, b"v1") == hashlib.sha256(b"v1").hexdigest()
    await store.put_head_blob(other, b"v2")
    assert await store.get_head_blob(other) == b"v2"
    with pytest.raises(KeyError):
        await store.put_head_blob(999, b"x")


async def test_runs_are_recorded_and_a_crashed_owners_run_is_marked_failed(
    store: Store,
) -> None:
    run = await store.start_run("admin", "telegram:1")
    await store.finish_run(run, status="promoted", n_feedback=3, metrics_after={"macro_f1": 0.7})
    stuck = await store.start_run("cron", None)
    await store._write(
        "UPDATE retrain_runs SET owner = :owner WHERE id = :id",
        {"owner": dead_owner(), "id": stuck},
    )
    assert await store.fail_unfinished_runs() == 1
    assert (await store.get_run(stuck)).status == "failed"
    finished = await store.get_run(run)
    assert finished.status == "promoted" and finished.metrics_after == {"macro_f1": 0.7}
    assert (await store.last_run(finished=True)).id == stuck
    assert (await store.stats())["last_run"].id == stuck


async def test_a_live_run_survives_other_processes_until_its_lease_expires(
    store: Store,
) -> None:
    live = await store.start_run("admin", "telegram:1")
    other = await Store.open(store.url)  # e.g. `dikkat ask` starting while the bot retrains
    try:
        assert await other.fail_unfinished_runs() == 0
        with pytest.raises(RunInProgress):
            await other.start_run("cli", "cli")
        assert (await other.get_run(live)).status == "running"
        await store.renew_lease(live)
        await store._write("UPDATE retrain_runs SET lease_until = 0 WHERE id = :id", {"id": live})
        reclaimed_by_new_run = await other.start_run("cli", "cli")
        assert (await other.get_run(live)).status == "failed"
        assert (await other.get_run(reclaimed_by_new_run)).status == "running"
    finally:
        await other.close()


async def test_only_one_run_may_be_running_across_connections(db_url: str) -> None:
    first, second = await Store.open(db_url), await Store.open(db_url)
    try:
        run = await first.start_run("admin", "telegram:1")
        with pytest.raises(RunInProgress, match=f"#{run}"):
            await second.start_run("cli", "cli")
        await first.finish_run(run, status="rejected")
        assert await second.start_run("cli", "cli") == run + 1
    finally:
        await first.close()
        await second.close()


async def test_the_database_refuses_a_second_running_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await store.start_run("admin", "telegram:1")

    async def sees_nothing(db, slot) -> None:  # the race: both checked before either inserted
        return None

    monkeypatch.setattr(coordination, "_refusal", sees_nothing)
    with pytest.raises(RunInProgress):
        await store.start_run("cli", "cli")
    monkeypatch.undo()
    rows = await store._read("SELECT id FROM retrain_runs WHERE status = 'running'")
    assert [row.id for row in rows] == [run]


async def test_concurrent_writers_never_see_database_locked(db_url: str) -> None:
    stores = [await Store.open(db_url) for _ in range(3)]
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
    if store.path is None:
        with pytest.raises(NotImplementedError, match="pg_dump"):
            await store.backup(tmp_path / "copy.db")
        return
    await store.backup(tmp_path / "backup" / "copy.db")
    copy = sqlite3.connect(tmp_path / "backup" / "copy.db")
    assert copy.execute("SELECT text FROM predictions").fetchall() == [("yedek",)]
    copy.close()


async def test_audit_log(store: Store) -> None:
    await store.audit("discord", "42", "rollback", "version 3")
    await store.audit("discord", "42", "retrain")
    assert [e["action"] for e in await store.audit_log()] == ["retrain", "rollback"]
    assert len(await store.audit_log(limit=1)) == 1


async def test_an_unusable_database_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseOpenError, match="bad.db"):
        await Store.open(f"sqlite+aiosqlite:///{bad}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DatabaseOpenError, match=r"\*\*\*"):  # the password is not shown
        await Store.open(f"postgresql+asyncpg://u:secret@127.0.0.1:{port}/x")


async def test_activation_notifies_listeners_on_postgres(pg_url: str) -> None:
    import asyncpg

    store = await Store.open(pg_url)
    listener = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener("dikkat_head", lambda *args: heard.put_nowait(args[-1]))
        first = await store.add_model_version(
            encoder="e", dim=4, path="a", metrics={}, status="active", source="seed"
        )
        second = await store.add_model_version(
            encoder="e", dim=4, path="b", metrics={}, status="candidate", source="run"
        )
        await store.activate_version(second)
        assert await asyncio.wait_for(heard.get(), 60) == f"e {first}"
        assert await asyncio.wait_for(heard.get(), 60) == f"e {second}"
    finally:
        await listener.close()
        await store.close()


async def test_features_are_replaced_per_encoder_and_reachable_from_a_worker_thread(
    store: Store,
) -> None:
    vector = np.arange(4, dtype=np.float32)
    await store.put_features("enc", {"h1": vector})
    await store.put_features("enc", {"h1": vector + 1})
    assert np.array_equal((await store.get_features("enc", ["h1", "h2"]))["h1"], vector + 1)
    assert await store.get_features("other", ["h1"]) == {}
    cache = FeatureCache.of(store, "enc")
    await asyncio.to_thread(cache.put_many, {"h2": vector})
    assert set(await asyncio.to_thread(cache.get_many, ["h1", "h2", "h3"])) == {"h1", "h2"}
    assert await store.count_features("enc") == 2
    with pytest.raises(RuntimeError, match="worker thread"):
        cache.get_many(["h1"])  # on the Store's own loop it would wait for itself
