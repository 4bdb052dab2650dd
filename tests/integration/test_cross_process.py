"""Another process changes the active head: the bot follows it, and a retrain never undoes it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from held_retrain import signal_when_held

from dikkat.bot.types import Reply, Request
from dikkat.models.checksum import file_sha256
from dikkat.storage.store import Store
from dikkat.training.head_sync import ActiveHeadWatcher

DEADLINE_S = 60  # only catches a hang: every wait here ends in seconds even on a busy machine


async def register_copy(bot, name: str, status: str = "retired") -> int:
    original = await bot.store.get_version(1)
    path = Path(bot.settings.model_dir) / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(original.path, path)
    return await bot.store.add_model_version(
        encoder=bot.service.feature_key, dim=384, path=str(path), metrics={}, status=status,
        source=name, sha256=file_sha256(path),
    )  # fmt: skip


async def test_the_bot_serves_a_head_that_another_process_activated(bot) -> None:
    watcher = ActiveHeadWatcher(bot.store, bot.service, bot.retrainer.encoder, poll_s=0.05)
    second = await register_copy(bot, "from-cli")
    other = await Store.open(bot.settings.db_path)  # `dikkat retrain` in another process
    try:
        await other.activate_version(second)
    finally:
        await other.close()
    watcher.start()
    try:
        async with asyncio.timeout(DEADLINE_S):
            while bot.service.head_version != second:
                await asyncio.sleep(0.05)
    finally:
        await watcher.stop()
    assert bot.service.head_version == second
    reply = await bot.router.handle(Request("telegram", "5", "chat", "sentiment", "güzel"))
    prediction = int(reply.buttons[0].data.split(":")[1])
    query = "SELECT head_version FROM predictions WHERE id = :id"
    rows = await bot.store._read(query, {"id": prediction})
    assert rows[0].head_version == second


async def test_an_unservable_active_head_is_not_swapped_in(bot) -> None:
    broken = await register_copy(bot, "broken", status="active")
    Path((await bot.store.get_version(broken)).path).write_bytes(b"garbage")
    watcher = ActiveHeadWatcher(bot.store, bot.service, bot.retrainer.encoder, poll_s=0)
    assert await watcher.check() is False and await watcher.check() is False
    assert bot.service.head_version == 1


async def test_a_rollback_during_a_retrain_is_not_undone(
    bot, held_retrain, cast_vote, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cast_vote(bot.store)
    bot.settings.retrain_tolerance = 1.0  # the candidate would be promoted
    older = await register_copy(bot, "older")
    release = held_retrain
    reached_hold = signal_when_held(monkeypatch)
    posted: list[Reply] = []
    result_posted = asyncio.Event()

    async def notifier(chat_id: str, reply: Reply) -> None:
        posted.append(reply)
        result_posted.set()

    bot.router.set_notifier("telegram", notifier)
    await bot.router.handle(Request("telegram", "1", "chat", "retrain", ""))
    # the run has read the active head (#1) and is training against it when the rollback comes
    await asyncio.wait_for(reached_hold.wait(), DEADLINE_S)
    assert (await bot.store.get_run(1)).status == "running"
    rolled = await bot.router.handle(Request("telegram", "1", "chat", "rollback", str(older)))
    assert f"#{older}" in rolled.text and bot.service.head_version == older
    release.set()
    await asyncio.wait_for(result_posted.wait(), DEADLINE_S)
    run = await bot.store.get_run(1)
    assert run.status == "superseded" and "judged against #1" in run.error
    assert bot.service.head_version == older
    assert (await bot.store.active_version(bot.service.feature_key)).id == older
    assert (await bot.store.get_version(run.candidate_version)).status == "rejected"
    assert "etkin model değişti" in posted[0].text
