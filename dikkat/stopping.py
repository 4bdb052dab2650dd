"""Stop signals for `dikkat run`: SIGTERM and SIGINT are caught from the command's first line,
so a stop that comes while modules and models load is a clean exit (0), never a kill (143)."""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested = threading.Event()


def catch_early() -> None:
    """Remember SIGTERM/SIGINT until an event loop takes them over (`stop_on_signals`)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _remember)


def _remember(signum: int, frame: FrameType | None) -> None:
    _requested.set()


def stop_on_signals(stop: asyncio.Event) -> None:
    """From now on SIGTERM/SIGINT set `stop`; one that came earlier sets it at once."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if _requested.is_set():
        stop.set()


def interrupt_as_usual() -> None:
    """Ctrl-C raises KeyboardInterrupt again (the console); SIGTERM still sets the stop."""
    asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
