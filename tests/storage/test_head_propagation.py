"""Head propagation to inference processes: NOTIFY on PostgreSQL, polling everywhere; requests
keep succeeding while heads swap."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from dikkat.app import App
from dikkat.models.checksum import file_sha256

TRIALS = 10
HANG_S = 60.0  # per swap: only a hang takes this long (normally well under a second / a poll)


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


async def _swap_under_traffic(replicas: list[App]) -> tuple[list[float], list[BaseException]]:
    """Activate the two versions in turn while requests go to every replica; after each swap,
    wait until every replica serves the new version and has answered a request with it.
    Returns the seconds each swap took to reach every replica (for the log) and the failures."""
    first, second = await _second_version(replicas[0])
    failures: list[BaseException] = []
    answered: list[set[int | None]] = [set() for _ in replicas]  # versions each one answered with
    stop = asyncio.Event()

    async def traffic(index: int) -> None:  # one request after another, to one replica
        replica, i = replicas[index], 0
        while not stop.is_set():
            try:
                result = await replica.service.sentiment(f"Ürün {i} beklediğim gibi geldi")
            except Exception as error:
                failures.append(error)
            else:
                answered[index].add(result.head_version)
            i += 1
            await asyncio.sleep(0.02)  # pacing only: every check below waits for its event

    async def wait_until(condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(HANG_S):
                while not condition():
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"hung: {what} after {HANG_S} s") from None

    senders = [asyncio.create_task(traffic(i)) for i in range(len(replicas))]
    times = []
    try:
        for trial in range(TRIALS):
            target = second if trial % 2 == 0 else first
            for versions in answered:
                versions.clear()
            started = time.monotonic()
            await replicas[0].store.activate_version(target)
            await wait_until(
                lambda t=target: all(r.service.head_version == t for r in replicas),
                f"head #{target} not served by every replica",
            )
            times.append(time.monotonic() - started)
            # requests keep being answered across the swap, and the new head answers them
            await wait_until(
                lambda t=target: all(t in versions for versions in answered),
                f"no replica answer with head #{target}",
            )
            assert not failures, failures
    finally:
        stop.set()
        await asyncio.gather(*senders)
    return times, failures


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "poll-only"])
async def test_activation_reaches_every_replica_with_no_failed_request(
    notify: bool, pg_url: str, sqlite_url: str, settings, minilm_encoder, seed_features_db: Path
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    # With NOTIFY the watchers never poll (head_poll_s 0): only the notification can swap heads.
    poll_s = 0.0 if notify else 1.0
    url = pg_url if notify else sqlite_url
    shared = settings.model_copy(
        update={"database_url": SecretStr(url), "role": "inference", "head_poll_s": poll_s}
    )
    async with App(shared, encoder=minilm_encoder) as a, App(shared, encoder=minilm_encoder) as b:
        if notify:
            assert a.notifications is not None and b.notifications is not None
        times, failures = await _swap_under_traffic([a, b])
    p95 = float(np.percentile(times, 95))
    print(f"propagation p50 {np.median(times):.3f} s, p95 {p95:.3f} s")  # timing: benchmarks
    assert failures == [] and len(times) == TRIALS
