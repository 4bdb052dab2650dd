"""Test helper: wait for a condition; the deadline only catches a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

HANG_S = 10  # how long a test waits for something that takes milliseconds: only a hang


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (polling) until `condition()` holds; the deadline only catches a hang."""
    deadline = asyncio.get_running_loop().time() + HANG_S
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still waiting after {HANG_S} s for {what}")
        await asyncio.sleep(0.001)
