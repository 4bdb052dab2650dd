"""Concurrent voters and a database locked by another process: no "locked" reaches a user,
reads never queue behind a blocked write, nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from sqlalchemy import event

from dikkat.bot.types import ButtonPress, Request

DEADLINE_S = 30  # only catches a hang
HOLD_CAP_S = 4 * DEADLINE_S  # the other process gives its lock up by itself after this


@contextmanager
def signal_write_begins(bot, task_name: str) -> Iterator[asyncio.Event]:
    """An event set when the task named `task_name` sends its transaction's BEGIN to the writer
    connection (before the statement runs, so also while it waits for the lock)."""
    begins = asyncio.Event()

    def spy(_conn, _cursor, statement: str, *_args) -> None:
        task = asyncio.current_task()
        if statement.startswith("BEGIN") and task is not None and task.get_name() == task_name:
            begins.set()

    engine = bot.store._writer.sync_engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        yield begins
    finally:
        event.remove(engine, "before_cursor_execute", spy)


def hold_write_lock(path, locked: threading.Event, release: threading.Event) -> None:
    """Another process's long write transaction."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    release.wait(HOLD_CAP_S)
    conn.execute("COMMIT")
    conn.close()


@asynccontextmanager
async def write_locked_elsewhere(bot, wait_ms: int = 200) -> AsyncIterator[None]:
    """Another process holds the write lock for the block; the bot waits `wait_ms` for it."""
    await bot.store.sqlite_pragma(f"PRAGMA busy_timeout = {wait_ms}")
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(bot.settings.db_path, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, DEADLINE_S)
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join, HOLD_CAP_S)


async def predictions(bot, n: int) -> list[int]:
    ids = []
    for i in range(n):
        ids.append(
            await bot.store.log_prediction(
                platform="telegram",
                user_id="p",
                chat_id="c",
                text=f"metin {i}",
                label="neutral",
                probabilities={"negative": 0.3, "neutral": 0.4, "positive": 0.3},
                head_version=1,
            )  # fmt: skip
        )
    return ids


async def test_a_thousand_votes_from_fifty_users_at_once_are_all_stored(bot) -> None:
    ids = await predictions(bot, 20)
    for i in range(5):  # a few voted texts were just classified: their features go with the vote
        await bot.router.handle(Request("telegram", "p", "c", "sentiment", f"metin {i}"))
    presses = [
        ButtonPress("telegram", f"user{u}", "c", f"fb:{pid}:positive")
        for u in range(50)
        for pid in ids
    ]
    replies = await asyncio.gather(*(bot.router.handle_button(p) for p in presses))
    assert all("Teşekkürler" in r.text for r in replies), {r.text for r in replies}
    rows = await bot.store._read("SELECT COUNT(*) AS n FROM feedback")
    assert rows[0].n == 1000
    kept = await bot.store._read(
        "SELECT COUNT(DISTINCT p.text) AS n FROM features f JOIN predictions p "
        "ON f.text_hash = p.text_hash AND f.encoder = :key WHERE p.text LIKE 'metin %'",
        {"key": bot.service.feature_key},
    )
    assert kept[0].n == 5  # stored with the votes, in the same transaction


async def test_reads_answer_while_another_process_holds_the_write_lock(bot) -> None:
    (pid,) = await predictions(bot, 1)
    # the vote waits for the lock as long as it is held, however slow this machine is
    await bot.store.sqlite_pragma(f"PRAGMA busy_timeout = {HOLD_CAP_S * 1000}")
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(bot.settings.db_path, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, DEADLINE_S)
        with signal_write_begins(bot, "vote") as write_begins:
            vote = asyncio.create_task(
                bot.router.handle_button(ButtonPress("telegram", "v", "c", f"fb:{pid}:negative")),
                name="vote",
            )
            await asyncio.wait_for(write_begins.wait(), DEADLINE_S)
        # the vote's transaction is on the writer connection, waiting for the lock
        # these must not wait behind it: they answer while the vote is still waiting
        # (the guard only ends a hang: the lock is held, and the vote waits, far longer)
        help_reply = await asyncio.wait_for(
            bot.router.handle(Request("telegram", "r", "c", "help", "")), DEADLINE_S
        )
        sort_reply = await asyncio.wait_for(
            bot.router.handle(Request("telegram", "r", "c", "sort", "CBABBC")), DEADLINE_S
        )
        assert await asyncio.wait_for(bot.store.ping(), DEADLINE_S)
        assert "/sort" in help_reply.text and "ABBBCC" in sort_reply.text
        assert not vote.done()
    finally:
        release.set()
        await asyncio.to_thread(holder.join, HOLD_CAP_S)
    assert "Teşekkürler" in (await asyncio.wait_for(vote, DEADLINE_S)).text


async def test_a_vote_that_cannot_be_written_in_time_is_answered_politely(bot) -> None:
    first, second = await predictions(bot, 2)
    stored = await bot.router.handle_button(
        ButtonPress("telegram", "v", "c", f"fb:{first}:negative")
    )
    assert "Teşekkürler" in stored.text
    async with write_locked_elsewhere(bot):
        reply = await bot.router.handle_button(
            ButtonPress("telegram", "v", "c", f"fb:{second}:positive")
        )
    assert "tekrar deneyin" in reply.text and "ters gitti" not in reply.text
    votes = await bot.store._read("SELECT prediction_id, label FROM feedback ORDER BY id")
    assert [tuple(v) for v in votes] == [(first, "negative")]
    again = await bot.router.handle_button(
        ButtonPress("telegram", "v", "c", f"fb:{second}:positive")
    )
    assert "Teşekkürler" in again.text


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.exc_info]


@pytest.mark.parametrize(
    ("command", "args"), [("lang", "en"), ("sentiment", "Güzel bir gün"), ("forget", "")]
)
async def test_a_command_that_writes_under_a_held_lock_is_answered_politely(
    bot, caplog: pytest.LogCaptureFixture, command: str, args: str
) -> None:
    async with write_locked_elsewhere(bot):
        reply = await bot.router.handle(Request("telegram", "w", "c", command, args))
    assert "meşgul" in reply.text and "tekrar deneyin" in reply.text
    assert "ters gitti" not in reply.text and tracebacks(caplog) == []
    again = await bot.router.handle(Request("telegram", "w", "c", command, args))
    assert "meşgul" not in again.text


async def test_a_full_disk_is_named_in_the_answer_and_nothing_stored_is_lost(
    bot, caplog: pytest.LogCaptureFixture
) -> None:
    (pid,) = await predictions(bot, 1)
    await bot.router.handle_button(ButtonPress("telegram", "v", "c", f"fb:{pid}:negative"))
    pages = await bot.store.sqlite_pragma("PRAGMA page_count")
    await bot.store.sqlite_pragma(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    long_text = "Uzun ve ayrıntılı bir yorum, " * 100
    for _ in range(100):  # a page or two may still have room: fill them
        reply = await bot.router.handle(Request("telegram", "w", "c", "sentiment", long_text))
        if "diski dolu" in reply.text:
            break
    assert "diski dolu" in reply.text and tracebacks(caplog) == []
    await bot.store.sqlite_pragma("PRAGMA max_page_count = 1073741823")  # space again
    votes = await bot.store.feedback_rows()
    assert [(v["prediction_id"], v["label"]) for v in votes] == [(pid, "negative")]
    after = await bot.router.handle(Request("telegram", "w", "c", "sentiment", long_text))
    assert len(after.buttons) == 3
