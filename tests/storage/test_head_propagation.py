"""Head propagation to inference processes: NOTIFY on PostgreSQL, polling everywhere; requests
keep succeeding while heads swap."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from dikkat.app import App
from dikkat.models.checksum import file_sha256

TRIALS = 10


async def _second_version(app: App) -> tuple[int, int]:
    """(the active version, a second version of the same head file, not active)."""
    active = await app.store.active_version(app.service.feature_key)
    copy = Path(active.path).with_name("copy.pt")
    shutil.copy(active.path, copy)
    shutil.copy(Path(active.path).with_suffix(".json"), copy.with_suffix(".json"))
    other = await app.store.add_model_version(
        encoder=active.encoder, dim=active.dim, path=str(copy), metrics=active.metrics,
        status="candidate", source="test copy", sha256=file_sha256(copy),
    )  # fmt: skip
    return active.id, other


async def _propagation_times(replicas: list[App], load: bool) -> tuple[list[float], int, int]:
    """Activate the two versions in turn; seconds until every replica serves the new one."""
    first, second = await _second_version(replicas[0])
    failures = answered = 0
    stop = asyncio.Event()

    async def traffic() -> None:  # 20 requests per second over both replicas
        nonlocal failures, answered
        i = 0
        while not stop.is_set():
            try:
                await replicas[i % 2].service.sentiment(f"Ürün {i} beklediğim gibi geldi")
                answered += 1
            except Exception:
                failures += 1
            i += 1
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(traffic()) if load else None
    times = []
    for trial in range(TRIALS):
        target = second if trial % 2 == 0 else first
        started = time.monotonic()
        await replicas[0].store.activate_version(target)
        while any(r.service.head_version != target for r in replicas):
            await asyncio.sleep(0.01)
        times.append(time.monotonic() - started)
        await asyncio.sleep(0.3)  # requests keep coming between swaps
    stop.set()
    if sender is not None:
        await sender
    return times, failures, answered


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "poll-only"])
async def test_activation_reaches_every_replica_fast_with_no_failed_request(
    notify: bool, pg_url: str, sqlite_url: str, settings, minilm_encoder, seed_features_db: Path
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    poll_s = 30.0 if notify else 1.0  # with NOTIFY the poll is only the safety net
    url = pg_url if notify else sqlite_url
    shared = settings.model_copy(
        update={"database_url": SecretStr(url), "role": "inference", "head_poll_s": poll_s}
    )
    async with App(shared, encoder=minilm_encoder) as a, App(shared, encoder=minilm_encoder) as b:
        times, failures, answered = await _propagation_times([a, b], load=True)
    p95 = float(np.percentile(times, 95))
    print(f"propagation p50 {np.median(times):.3f} s, p95 {p95:.3f} s, {answered} answered")
    assert failures == 0 and answered >= 40
    assert p95 <= (2.0 if notify else poll_s + 2.0), times
