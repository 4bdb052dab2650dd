"""Test helper: know when a retrain held by the `held_retrain` fixture has reached its hold."""

from __future__ import annotations

import asyncio

import pytest

from dikkat.training import retrain as retrain_module


def signal_when_held(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Under `held_retrain`: an event set once a run reaches its held training step (after it
    has read the active head it is judged against), from the training thread."""
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()
    held = retrain_module.train_candidate  # held_retrain's stand-in, waiting for its release

    def signalling(*args, **kwargs):
        loop.call_soon_threadsafe(reached.set)
        return held(*args, **kwargs)

    monkeypatch.setattr(retrain_module, "train_candidate", signalling)
    return reached
