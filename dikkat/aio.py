"""asyncio helpers that every layer may use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import Any


async def unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first, then cancel it; True when `work` finished
    (its exception, if any, propagates)."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this wait is itself cancelled (a timeout around it): leave no task behind
        stopping.cancel()
        if not working.done():
            working.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await working
    if working.cancelled():
        return False
    working.result()
    return True


class Backoff:
    """Pauses between tries: `first_s`, doubling up to `max_s`; `reset` after a success."""

    def __init__(self, first_s: float = 0.5, max_s: float = 30.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.pause = 0.0

    def next(self) -> float:
        """The seconds to wait before the next try."""
        self.pause = min(max(2 * self.pause, self.first_s), self.max_s)
        return self.pause

    def reset(self) -> None:
        """A try succeeded: the next failure starts again from `first_s`."""
        self.pause = 0.0


class InFlight:
    """Work being answered, counted while it runs; `drain` marks a stop (new work is to be
    turned away: see `draining`) and waits until the work in flight is done."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the block as work in flight."""
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def drain(self, timeout: float) -> int:
        """Mark the stop and wait for the work in flight, at most `timeout` seconds; how much
        is still in flight then."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self.count
