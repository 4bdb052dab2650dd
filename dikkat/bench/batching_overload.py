"""The overload test: open-loop arrivals above capacity into the service; rejections and memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from dikkat.bench.batching_load import sentiment_batcher
from dikkat.bench.common import memory_mb, ms, percentiles
from dikkat.inference.batcher import BatcherStopped, Overloaded
from dikkat.inference.service import InferenceService

__all__ = ["MEMORY_SLACK", "overload"]

# Peak RSS may grow this much in the overload test (the allocator alone moves RSS by ~10% between
# phases); the real bound is structural: queue depth and accepted requests in flight.
MEMORY_SLACK = 0.25


async def overload(
    service: InferenceService,
    texts: Sequence[str],
    *,
    rate: float,
    factor: float,
    duration_s: float,
    max_batch_size: int,
) -> dict[str, Any]:
    """Arrivals at `rate` req/s through InferenceService.sentiment, whose queue is small (its
    Settings.max_queue); measure rejections, queue depth, requests in flight and memory."""
    batcher = sentiment_batcher(service)
    max_queue = batcher.max_queue
    rejected_s: list[float] = []  # scheduled arrival -> Overloaded (includes event-loop lag)
    rejected_call_s: list[float] = []  # sentiment() call -> Overloaded
    counts = {"accepted": 0, "completed": 0, "unfinished": 0, "pending": 0, "max_pending": 0}
    samples: list[tuple[float, float]] = []  # (t, rss_mb)
    lags: dict[str, list[float]] = {"idle": [], "load": []}
    phase = ["idle"]
    max_depth = 0

    async def arrive(i: int, scheduled: float) -> None:
        called = time.perf_counter()
        try:
            counts["pending"] += 1
            await service.sentiment(texts[i % len(texts)])
        except Overloaded:
            now = time.perf_counter()
            rejected_s.append(now - scheduled)
            rejected_call_s.append(now - called)
            return
        except BatcherStopped:
            counts["unfinished"] += 1
        else:
            counts["completed"] += 1
        finally:
            counts["pending"] -= 1
        counts["accepted"] += 1

    async def sampler(interval: float = 0.01) -> None:
        nonlocal max_depth
        while True:
            due = time.perf_counter() + interval
            await asyncio.sleep(interval)
            now = time.perf_counter()
            lags[phase[0]].append(max(0.0, now - due))
            max_depth = max(max_depth, batcher.queue_depth)
            counts["max_pending"] = max(counts["max_pending"], counts["pending"])
            samples.append((now, memory_mb()["rss_mb"]))

    monitor = asyncio.create_task(sampler())
    await asyncio.sleep(min(0.5, duration_s / 4))  # loop lag baseline, idle
    phase[0] = "load"
    memory_before = memory_mb()
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(duration_s * rate)
    sent = 0
    while sent < total:
        due = min(int((time.perf_counter() - start) * rate) + 1, total)
        while sent < due:
            task = asyncio.create_task(arrive(sent, start + sent / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    await asyncio.sleep(0)  # let the last arrivals reach submit before stopping
    await batcher.stop(drain=False)  # queued requests fail with BatcherStopped
    await asyncio.gather(*tasks, return_exceptions=True)
    monitor.cancel()
    await asyncio.gather(monitor, return_exceptions=True)
    memory_after = memory_mb()

    half = start + duration_s / 2
    first = [rss for t, rss in samples if start <= t < half] or [memory_before["rss_mb"]]
    second = [rss for t, rss in samples if t >= half] or [memory_after["rss_mb"]]
    peak_growth = memory_after["peak_rss_mb"] - memory_before["peak_rss_mb"]
    p50, p99 = percentiles(rejected_s)
    call_p50, call_p99 = percentiles(rejected_call_s)
    _, idle_lag_p99 = percentiles(lags["idle"])
    _, lag_p99 = percentiles(lags["load"])
    in_flight_bound = max_queue + batcher.parallel_batches * max_batch_size  # queue + running
    bounded = (
        max_depth <= max_queue
        and counts["max_pending"] <= in_flight_bound
        and peak_growth <= MEMORY_SLACK * memory_before["peak_rss_mb"]
    )
    return {
        "factor": factor,
        "rate_rps": round(rate, 3),
        "duration_s": duration_s,
        "max_queue": max_queue,
        "max_batch_size": max_batch_size,
        "arrivals": sent,
        "accepted": counts["accepted"],
        "rejected": len(rejected_s),
        "completed": counts["completed"],
        "unfinished_at_stop": counts["unfinished"],
        "reject_p50_ms": ms(p50),
        "reject_p99_ms": ms(p99),
        "reject_call_p50_ms": ms(call_p50),
        "reject_call_p99_ms": ms(call_p99),
        "loop_lag_idle_p99_ms": ms(idle_lag_p99),
        "loop_lag_p99_ms": ms(lag_p99),
        "max_queue_depth_seen": max_depth,
        "max_accepted_in_flight": counts["max_pending"],
        "in_flight_bound": in_flight_bound,
        "rss_before_mb": round(memory_before["rss_mb"], 1),
        "rss_after_mb": round(memory_after["rss_mb"], 1),
        "peak_rss_before_mb": round(memory_before["peak_rss_mb"], 1),
        "peak_rss_after_mb": round(memory_after["peak_rss_mb"], 1),
        "peak_rss_growth_mb": round(peak_growth, 1),
        "rss_max_first_half_mb": round(max(first), 1),
        "rss_max_second_half_mb": round(max(second), 1),
        "memory_bounded": bool(bounded),
    }
