"""Shared fixtures: isolated settings and a running inference service with the shipped models."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dikkat.config import Settings
from dikkat.inference.service import InferenceService


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings that write only under tmp_path and ignore the developer's environment."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("DIKKAT_"):
            monkeypatch.delenv(key)
    return Settings(db_path=tmp_path / "dikkat.db", model_dir=tmp_path / "models", device="cpu")


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[InferenceService]:
    """A started InferenceService; stopped after the test."""
    svc = InferenceService.from_settings(settings)
    await svc.start()
    yield svc
    await svc.stop()
