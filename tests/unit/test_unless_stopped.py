"""aio.unless_stopped: work or a stop signal, whichever comes first, and nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dikkat.aio import unless_stopped


async def test_finished_work_counts_and_its_error_propagates() -> None:
    async def done() -> int:
        return 1

    async def broken() -> None:
        raise ValueError("boom")

    assert await unless_stopped(done(), asyncio.Event()) is True
    with pytest.raises(ValueError, match="boom"):
        await unless_stopped(broken(), asyncio.Event())


async def test_a_stop_cancels_the_work() -> None:
    stop, entered, cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    waiting = asyncio.create_task(unless_stopped(forever(), stop))
    await asyncio.wait_for(entered.wait(), 10)
    stop.set()
    assert await waiting is False and cancelled.is_set()


async def test_a_timeout_around_it_leaves_no_task_behind() -> None:
    """The trainer polls leadership this way every 2 s for as long as the bot runs."""
    before = len(asyncio.all_tasks())
    for _ in range(50):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0):
                await unless_stopped(asyncio.Event().wait(), asyncio.Event())
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before
