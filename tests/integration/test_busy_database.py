"""Concurrent voters and a database locked by another process: no "locked" reaches a user,
reads never queue behind a blocked write, nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from dikkat.bot.types import ButtonPress, Request


def hold_write_lock(path, locked: threading.Event, release: threading.Event) -> None:
    """Another process's long write transaction."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    release.wait(30)
    conn.execute("COMMIT")
    conn.close()


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
    rows = await bot.store._all("SELECT COUNT(*) AS n FROM feedback")
    assert rows[0]["n"] == 1000
    kept = await bot.store._all(
        "SELECT COUNT(DISTINCT p.text) AS n FROM features f JOIN predictions p "
        "ON f.text_hash = p.text_hash AND f.encoder = ? WHERE p.text LIKE 'metin %'",
        (bot.service.feature_key,),
    )
    assert kept[0]["n"] == 5  # stored with the votes, in the same transaction


async def test_reads_answer_while_another_process_holds_the_write_lock(bot) -> None:
    (pid,) = await predictions(bot, 1)
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(bot.settings.db_path, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        vote = asyncio.create_task(
            bot.router.handle_button(ButtonPress("telegram", "v", "c", f"fb:{pid}:negative"))
        )
        await asyncio.sleep(0.1)
        # the vote waits for the lock; these must not wait behind it (guard: 8 s < busy timeout)
        help_reply = await asyncio.wait_for(
            bot.router.handle(Request("telegram", "r", "c", "help", "")), 8
        )
        sort_reply = await asyncio.wait_for(
            bot.router.handle(Request("telegram", "r", "c", "sort", "CBABBC")), 8
        )
        assert await asyncio.wait_for(bot.store.ping(), 8)
        assert "/sort" in help_reply.text and "ABBBCC" in sort_reply.text
        assert not vote.done()
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 30)
    assert "Teşekkürler" in (await vote).text


async def test_a_vote_that_cannot_be_written_in_time_is_answered_politely(bot) -> None:
    first, second = await predictions(bot, 2)
    stored = await bot.router.handle_button(
        ButtonPress("telegram", "v", "c", f"fb:{first}:negative")
    )
    assert "Teşekkürler" in stored.text
    await bot.store._conn.execute("PRAGMA busy_timeout = 200")
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(bot.settings.db_path, locked, release))
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 10)
        reply = await bot.router.handle_button(
            ButtonPress("telegram", "v", "c", f"fb:{second}:positive")
        )
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 30)
    assert "tekrar deneyin" in reply.text and "ters gitti" not in reply.text
    votes = await bot.store._all("SELECT prediction_id, label FROM feedback ORDER BY id")
    assert [(v["prediction_id"], v["label"]) for v in votes] == [(first, "negative")]
    again = await bot.router.handle_button(
        ButtonPress("telegram", "v", "c", f"fb:{second}:positive")
    )
    assert "Teşekkürler" in again.text
