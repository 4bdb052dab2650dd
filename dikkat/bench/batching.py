"""`dikkat bench batching`: one forward per request vs the DynamicBatcher vs the batched ceiling."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from prometheus_client import Histogram
from tqdm import tqdm

from dikkat.bench.lengths import request_texts
from dikkat.config import Settings
from dikkat.inference.batcher import BatcherStopped, DynamicBatcher, Overloaded
from dikkat.inference.metrics import BATCH_COMPUTE, QUEUE_WAIT

__all__ = [
    "BenchSettings",
    "Pipeline",
    "format_table",
    "run_batching_benchmark",
    "run_benchmark",
    "write_json",
    "write_plot",
]

# Peak RSS may grow this much in the overload test (the allocator alone moves RSS by ~10% between
# phases); the real bound is structural: queue depth and accepted requests in flight.
MEMORY_SLACK = 0.25
_run_ids = itertools.count()


class Pipeline(Protocol):
    """What the benchmark drives: SentimentPipeline, or a fake with the same two methods."""

    def cost(self, text: str) -> tuple[int, bool]: ...

    def predict_batch(self, texts: list[str]) -> Sequence[object]: ...


def product_defaults() -> dict[str, float]:
    """The batcher settings the product ships (dikkat.config.Settings defaults)."""
    keys = (
        "max_batch_size",
        "max_batch_tokens",
        "max_wait_ms",
        "max_queue",
        "min_padding_efficiency",
    )
    return {key: Settings.model_fields[key].default for key in keys}


_DEFAULTS = product_defaults()


@dataclass(frozen=True)
class BenchSettings:
    """Load shape and batcher options of one benchmark run (full-run values by default)."""

    concurrency: tuple[int, ...] = (1, 8, 64, 256)
    warmup_s: float = 2.0
    duration_s: float = 12.0
    sample_size: int = 3000
    seed: int = 0
    max_batch_size: int = int(_DEFAULTS["max_batch_size"])
    max_batch_tokens: int = int(_DEFAULTS["max_batch_tokens"])
    max_wait_ms: float = float(_DEFAULTS["max_wait_ms"])
    max_queue: int = int(_DEFAULTS["max_queue"])
    min_padding_efficiency: float = float(_DEFAULTS["min_padding_efficiency"])
    ceiling_sizes: tuple[int, ...] = (8, 16, 32, 64)
    ceiling_budget_s: float = 4.0
    paired_s: float = 8.0
    overload_factor: float = 4.0
    overload_duration_s: float = 8.0
    overload_max_queue: int = 64
    torch_threads: int = 2

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError("concurrency must be a non-empty tuple of positive ints")
        if self.max_queue < max(self.concurrency):
            raise ValueError("max_queue must hold every closed-loop client (>= max concurrency)")
        if min(self.duration_s, self.paired_s, self.overload_duration_s) <= 0 or self.warmup_s < 0:
            raise ValueError("durations must be positive")
        if self.sample_size < 1 or not self.ceiling_sizes or min(self.ceiling_sizes) < 1:
            raise ValueError("sample_size and ceiling_sizes must be positive")

    @classmethod
    def quick(cls) -> BenchSettings:
        """Every concurrency point kept, shorter windows: under a minute on 2 CPU cores."""
        return cls(
            warmup_s=0.25,
            duration_s=1.75,
            sample_size=600,
            ceiling_sizes=(16, 32),
            ceiling_budget_s=0.5,
            paired_s=1.5,
            overload_duration_s=1.5,
        )


# ---------------------------------------------------------------- servers under test


@dataclass
class Counters:
    """Cumulative counters of one server; their difference over a window gives one row."""

    batches: int = 0
    items: int = 0
    real_tokens: int = 0
    computed_tokens: int = 0
    wait_s: float = 0.0  # summed time items waited before their forward started
    compute_s: float = 0.0  # summed wall time of the forward calls
    cost_s: float = 0.0  # summed time of cost() on the event loop (batched only)

    def __sub__(self, other: Counters) -> Counters:
        names = [f.name for f in dataclasses.fields(self)]
        return Counters(**{n: getattr(self, n) - getattr(other, n) for n in names})

    @property
    def mean_batch_size(self) -> float:
        """Items per forward call."""
        return self.items / self.batches if self.batches else 0.0

    @property
    def padding_efficiency(self) -> float:
        """Real tokens / computed (padded) tokens."""
        return self.real_tokens / self.computed_tokens if self.computed_tokens else 1.0

    def breakdown(self) -> dict[str, float | None]:
        """Padded tokens and time on the loop (cost) and in the queue per request; per forward."""
        per_item = self.items or None
        return {
            "padded_tokens_per_request": (
                round(self.computed_tokens / per_item, 2) if per_item else None
            ),
            "cost_ms": _ms(self.cost_s / per_item) if per_item else None,
            "queue_wait_ms": _ms(self.wait_s / per_item) if per_item else None,
            "forward_ms": _ms(self.compute_s / self.batches) if self.batches else None,
        }


class _Server(Protocol):
    async def send(self, text: str) -> object: ...

    def snapshot(self) -> Counters: ...

    async def close(self) -> None: ...


class _Unbatched:
    """The naive server: one forward per request on one plain worker thread (ThreadPoolExecutor)."""

    def __init__(self, pipeline: Pipeline, costs: Mapping[str, int]) -> None:
        self._pipeline = pipeline
        self._costs = costs  # measured before the run; the naive server never tokenizes twice
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-unbatched")
        self._counters = Counters()

    async def send(self, text: str) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._one, text, time.perf_counter())

    def _one(self, text: str, submitted: float) -> object:
        started = time.perf_counter()
        with torch.inference_mode():
            (result,) = self._pipeline.predict_batch([text])
        c = self._counters
        c.compute_s += time.perf_counter() - started
        c.wait_s += started - submitted
        c.batches += 1
        c.items += 1
        c.real_tokens += self._costs[text]  # one item per forward: no padding at all
        c.computed_tokens += self._costs[text]
        return result

    def snapshot(self) -> Counters:
        return dataclasses.replace(self._counters)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


def _metric_sum(histogram: Histogram, name: str) -> float:
    """The `_sum` sample of a labelled prometheus histogram for model `name` (0 if absent)."""
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("model") == name:
                return float(sample.value)
    return 0.0


class _Batched:
    """The product path of InferenceService.sentiment: cost() on the loop, then batcher.submit."""

    def __init__(self, pipeline: Pipeline, batcher: DynamicBatcher[str, object]) -> None:
        self._pipeline = pipeline
        self.batcher = batcher
        self._cost_s = 0.0

    async def send(self, text: str) -> object:
        started = time.perf_counter()
        cost, _ = self._pipeline.cost(text)
        self._cost_s += time.perf_counter() - started
        return await self.batcher.submit(text, cost=cost)

    def snapshot(self) -> Counters:
        stats, name = self.batcher.stats, self.batcher.name
        return Counters(
            batches=stats.batches,
            items=stats.batch_items,
            real_tokens=stats.real_tokens,
            computed_tokens=stats.computed_tokens,
            wait_s=_metric_sum(QUEUE_WAIT, name),
            compute_s=_metric_sum(BATCH_COMPUTE, name),
            cost_s=self._cost_s,
        )

    async def close(self) -> None:
        await self.batcher.stop(drain=False)


def _batcher(
    pipeline: Pipeline, settings: BenchSettings, name: str, max_queue: int
) -> DynamicBatcher[str, object]:
    return DynamicBatcher(
        pipeline.predict_batch,
        name=name,
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_wait_ms=settings.max_wait_ms,
        max_queue=max_queue,
        default_timeout=None,
        min_padding_efficiency=settings.min_padding_efficiency,
    )


# ---------------------------------------------------------------- measurements


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _percentiles(samples: Sequence[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    p50, p99 = np.percentile(np.asarray(samples), [50, 99])
    return float(p50), float(p99)


def _row(
    mode: str,
    concurrency: int | None,
    throughput: float,
    latencies: Sequence[float],
    counters: Counters,
    **extra: object,
) -> dict[str, Any]:
    p50, p99 = _percentiles(latencies)
    return {
        "mode": mode,
        "concurrency": concurrency,
        "throughput_rps": round(throughput, 3),
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
        "mean_batch_size": round(counters.mean_batch_size, 3) if counters.items else None,
        "padding_efficiency": round(counters.padding_efficiency, 4) if counters.items else None,
        **counters.breakdown(),
        **extra,
    }


async def _closed_loop(
    server: _Server, texts: Sequence[str], concurrency: int, warmup_s: float, duration_s: float
) -> tuple[list[float], Counters]:
    """`concurrency` clients, each sending its next request when the previous answer arrives.

    Latencies are those of requests that complete inside the measurement window (after warm-up).
    """
    counter = itertools.count()
    window = [math.inf, math.inf]
    latencies: list[float] = []

    async def client() -> None:
        while True:
            text = texts[next(counter) % len(texts)]
            started = time.perf_counter()
            await server.send(text)
            done = time.perf_counter()
            if window[0] <= done <= window[1]:
                latencies.append(done - started)

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    try:
        await asyncio.sleep(warmup_s)
        before = server.snapshot()
        window[0] = time.perf_counter()
        window[1] = window[0] + duration_s
        await asyncio.sleep(duration_s)
        counters = server.snapshot() - before
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await server.close()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    if errors:
        raise errors[0]
    return latencies, counters


async def _load_points(
    pipeline: Pipeline,
    texts: Sequence[str],
    costs: Sequence[int],
    settings: BenchSettings,
    run_id: int,
    ceiling: tuple[_Ceiling, int],
    step: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Unbatched, batched and the ceiling at every concurrency, interleaved against drift."""
    rows, cost_of = [], dict(zip(texts, costs, strict=True))
    runner, best_size = ceiling
    for c in settings.concurrency:
        for mode in ("unbatched", "batched"):
            step(f"{mode} c={c}")
            server: _Server
            if mode == "unbatched":
                server = _Unbatched(pipeline, cost_of)
            else:
                batcher = _batcher(
                    pipeline, settings, f"bench{run_id}-batched-c{c}", settings.max_queue
                )
                await batcher.start()
                server = _Batched(pipeline, batcher)
            latencies, counters = await _closed_loop(
                server, texts, c, settings.warmup_s, settings.duration_s
            )
            throughput = len(latencies) / settings.duration_s
            rows.append(_row(mode, c, throughput, latencies, counters, requests=len(latencies)))
        step(f"ceiling c={c}")
        rows.append(
            await asyncio.to_thread(runner.measure, best_size, settings.ceiling_budget_s, c)
        )
    return rows


class _Ceiling:
    """The raw pipeline on pre-formed, length-sorted batches (throughput only).

    Runs on one worker thread like the batcher's forward calls, so the modes differ only in
    batching; `measure` is called next to each concurrency point so slow drift in machine load
    hits the ceiling and the batcher alike.
    """

    def __init__(self, pipeline: Pipeline, texts: Sequence[str], costs: Sequence[int]) -> None:
        self._pipeline = pipeline
        self._texts = texts
        self._costs = costs
        self._order = sorted(range(len(texts)), key=costs.__getitem__)
        self._mean_tokens = sum(costs) / len(costs)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-ceiling")

    def warm_up(self) -> None:
        """One batch of mixed lengths, not reported."""
        spread = self._order[:: max(1, len(self._order) // 8)]
        self._executor.submit(self._run, [spread], 0.0).result()

    def measure(self, size: int, budget_s: float, concurrency: int | None) -> dict[str, Any]:
        """Sorted batches of `size` for budget_s, in an order whose every prefix spans all lengths.

        The same batches in the same order each time, so repeated measurements do the same work.
        """
        chunks = [self._order[i : i + size] for i in range(0, len(self._order), size)]
        chunks = [chunks[j] for j in _spread_order(len(chunks))]
        c = self._executor.submit(self._run, chunks, budget_s).result()
        # A short budget runs a few batches: rate their real tokens/s at the load's mean length.
        throughput = c.real_tokens / c.compute_s / self._mean_tokens
        extra = {
            "cost_ms": None,
            "queue_wait_ms": None,
            "batch_size": size,
            "batches": c.batches,
            "measured_rps": round(c.items / c.compute_s, 3),
        }
        return _row("ceiling", concurrency, throughput, [], c, **extra)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _run(self, chunks: list[list[int]], budget_s: float) -> Counters:
        costs, c, started = self._costs, Counters(), time.perf_counter()
        with torch.inference_mode():
            for chunk in itertools.cycle(chunks):
                self._pipeline.predict_batch([self._texts[i] for i in chunk])
                c.batches += 1
                c.items += len(chunk)
                c.real_tokens += sum(costs[i] for i in chunk)
                c.computed_tokens += max(costs[i] for i in chunk) * len(chunk)
                if time.perf_counter() - started >= budget_s:
                    break
        c.compute_s = time.perf_counter() - started
        return c


def _spread_order(n: int) -> list[int]:
    """0..n-1 as n/2, n/4, 3n/4, n/8, ... (van der Corput): every prefix spans the range evenly."""
    order: list[int] = []
    seen: set[int] = set()
    k = 1
    while len(order) < n:
        x, base, j = 0.0, 0.5, k
        while j:
            x, base, j = x + base * (j & 1), base / 2, j >> 1
        index = min(n - 1, int(x * n))
        if index not in seen:
            seen.add(index)
            order.append(index)
        k += 1
        if k > 4 * n:  # the remaining few (rounding collisions) in order
            order += [i for i in range(n) if i not in seen]
    return order


def _memory_mb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process in MiB."""
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return {"rss_mb": values.get("VmRSS", peak), "peak_rss_mb": values.get("VmHWM", peak)}


async def _paired_single(
    pipeline: Pipeline,
    texts: Sequence[str],
    costs: Sequence[int],
    settings: BenchSettings,
    run_id: int,
) -> dict[str, Any]:
    """One client alternating the same text through both servers: a c=1 comparison that drift in
    machine load cannot bias (the order within each pair alternates too)."""
    batcher = _batcher(pipeline, settings, f"bench{run_id}-paired", settings.max_queue)
    await batcher.start()
    unbatched = _Unbatched(pipeline, dict(zip(texts, costs, strict=True)))
    batched = _Batched(pipeline, batcher)
    latencies: dict[str, list[float]] = {"unbatched": [], "batched": []}
    end, i = time.perf_counter() + settings.paired_s, 0
    try:
        while time.perf_counter() < end:
            text, pair = texts[i % len(texts)], [("unbatched", unbatched), ("batched", batched)]
            for mode, server in pair if i % 2 == 0 else pair[::-1]:
                started = time.perf_counter()
                await server.send(text)
                latencies[mode].append(time.perf_counter() - started)
            i += 1
    finally:
        await unbatched.close()
        await batched.close()
    (u50, _), (b50, _) = _percentiles(latencies["unbatched"]), _percentiles(latencies["batched"])
    extra = [b - u for u, b in zip(latencies["unbatched"], latencies["batched"], strict=False)]
    return {
        "pairs": i,
        "unbatched_p50_ms": _ms(u50),
        "batched_p50_ms": _ms(b50),
        "ratio": _ratio(b50, u50),
        "median_extra_ms": _ms(float(np.median(extra))) if extra else None,
    }


async def _overload(
    pipeline: Pipeline,
    texts: Sequence[str],
    settings: BenchSettings,
    rate: float,
    run_id: int,
) -> dict[str, Any]:
    """Open-loop arrivals at `rate` req/s into a batcher with a small queue; measure rejections."""
    batcher = _batcher(pipeline, settings, f"bench{run_id}-overload", settings.overload_max_queue)
    await batcher.start()
    rejected_s: list[float] = []  # scheduled arrival -> Overloaded (includes event-loop lag)
    rejected_call_s: list[float] = []  # submit() call -> Overloaded
    counts = {"accepted": 0, "completed": 0, "unfinished": 0, "pending": 0, "max_pending": 0}
    samples: list[tuple[float, float]] = []  # (t, rss_mb)
    lags: dict[str, list[float]] = {"idle": [], "load": []}
    phase = ["idle"]
    max_depth = 0

    async def arrive(i: int, scheduled: float) -> None:
        text = texts[i % len(texts)]
        cost, _ = pipeline.cost(text)  # as InferenceService.sentiment: before submit
        called = time.perf_counter()
        try:
            counts["pending"] += 1
            await batcher.submit(text, cost=cost)
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
            samples.append((now, _memory_mb()["rss_mb"]))

    monitor = asyncio.create_task(sampler())
    await asyncio.sleep(min(0.5, settings.overload_duration_s / 4))  # loop lag baseline, idle
    phase[0] = "load"
    memory_before = _memory_mb()
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(settings.overload_duration_s * rate)
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
    await batcher.stop(drain=False)
    await asyncio.gather(*tasks, return_exceptions=True)
    monitor.cancel()
    await asyncio.gather(monitor, return_exceptions=True)
    memory_after = _memory_mb()

    half = start + settings.overload_duration_s / 2
    first = [rss for t, rss in samples if start <= t < half] or [memory_before["rss_mb"]]
    second = [rss for t, rss in samples if t >= half] or [memory_after["rss_mb"]]
    peak_growth = memory_after["peak_rss_mb"] - memory_before["peak_rss_mb"]
    p50, p99 = _percentiles(rejected_s)
    call_p50, call_p99 = _percentiles(rejected_call_s)
    _, idle_lag_p99 = _percentiles(lags["idle"])
    _, lag_p99 = _percentiles(lags["load"])
    bounded = (
        max_depth <= settings.overload_max_queue
        and counts["max_pending"] <= settings.overload_max_queue + settings.max_batch_size
        and peak_growth <= MEMORY_SLACK * memory_before["peak_rss_mb"]
    )
    return {
        "factor": settings.overload_factor,
        "rate_rps": round(rate, 3),
        "duration_s": settings.overload_duration_s,
        "max_queue": settings.overload_max_queue,
        "max_batch_size": settings.max_batch_size,
        "arrivals": sent,
        "accepted": counts["accepted"],
        "rejected": len(rejected_s),
        "completed": counts["completed"],
        "unfinished_at_stop": counts["unfinished"],
        "reject_p50_ms": _ms(p50),
        "reject_p99_ms": _ms(p99),
        "reject_call_p50_ms": _ms(call_p50),
        "reject_call_p99_ms": _ms(call_p99),
        "loop_lag_idle_p99_ms": _ms(idle_lag_p99),
        "loop_lag_p99_ms": _ms(lag_p99),
        "max_queue_depth_seen": max_depth,
        "max_accepted_in_flight": counts["max_pending"],
        "rss_before_mb": round(memory_before["rss_mb"], 1),
        "rss_after_mb": round(memory_after["rss_mb"], 1),
        "peak_rss_before_mb": round(memory_before["peak_rss_mb"], 1),
        "peak_rss_after_mb": round(memory_after["peak_rss_mb"], 1),
        "peak_rss_growth_mb": round(peak_growth, 1),
        "rss_max_first_half_mb": round(max(first), 1),
        "rss_max_second_half_mb": round(max(second), 1),
        "memory_bounded": bool(bounded),
    }


# ---------------------------------------------------------------- report


def _find(rows: Sequence[dict[str, Any]], mode: str, concurrency: int | None) -> dict | None:
    for row in rows:
        if row["mode"] == mode and row["concurrency"] == concurrency:
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's CPU targets, each with its figure and whether it is met (None: not measured)."""
    rows, overload = report["results"], report["overload"]
    ceiling = _find(rows, "ceiling", 64) or {}
    b64, u64 = _find(rows, "batched", 64) or {}, _find(rows, "unbatched", 64) or {}
    b1, u1 = _find(rows, "batched", 1) or {}, _find(rows, "unbatched", 1) or {}

    def target(name: str, value: float | None, limit: float, higher: bool) -> dict[str, Any]:
        met = None if value is None else (value >= limit if higher else value <= limit)
        return {"target": name, "value": value, "limit": limit, "met": met}

    bounded = overload.get("memory_bounded")
    return [
        target(
            "c=64 batched/ceiling throughput >= 0.90",
            _ratio(b64.get("throughput_rps"), ceiling.get("throughput_rps")),
            0.90,
            True,
        ),
        target(
            "c=1 batched p50 / unbatched p50 <= 1.15 (paired run)",
            report.get("paired_c1", {}).get("ratio"),
            1.15,
            False,
        ),
        {
            "target": "c=1 batched p50 / unbatched p50, separate windows (reported)",
            "value": _ratio(b1.get("p50_ms"), u1.get("p50_ms")),
            "limit": 1.15,
            "met": None,
        },
        target(
            "c=64 batched padding efficiency >= 0.80", b64.get("padding_efficiency"), 0.80, True
        ),
        target("overload rejection p99 <= 5 ms", overload.get("reject_p99_ms"), 5.0, False),
        {
            "target": "overload memory bounded (queue, in-flight bounded; peak RSS +<= 25%), MiB",
            "value": overload.get("peak_rss_growth_mb"),
            "limit": None,
            "met": bounded,
        },
        {
            "target": "c=64 batched/unbatched throughput (reported, not targeted)",
            "value": _ratio(b64.get("throughput_rps"), u64.get("throughput_rps")),
            "limit": None,
            "met": None,
        },
    ]


def _machine(info: dict[str, Any] | None) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        **(info or {}),
    }


def run_benchmark(
    pipeline: Pipeline,
    texts: Sequence[str],
    settings: BenchSettings,
    *,
    progress: bool = True,
    info: dict[str, Any] | None = None,
    source: str = "given",
) -> dict[str, Any]:
    """Run every mode, concurrency and the overload test on `pipeline`; return the JSON report."""
    run_id = next(_run_ids)
    machine = _machine(info)
    measured = [pipeline.cost(t) for t in texts]
    costs = [n for n, _ in measured]
    phases = len(settings.ceiling_sizes) + 3 * len(settings.concurrency) + 2
    ceiling = _Ceiling(pipeline, texts, costs)
    with tqdm(total=phases, desc="bench batching", file=sys.stderr, disable=not progress) as bar:
        started = [False]

        def step(label: str) -> None:
            if started[0]:
                bar.update(1)
            started[0] = True
            bar.set_postfix_str(label)

        try:
            ceiling.warm_up()
            sizes = []
            for size in settings.ceiling_sizes:
                step(f"ceiling sweep b={size}")
                sizes.append(ceiling.measure(size, settings.ceiling_budget_s, None))
            best = max(sizes, key=lambda r: r["throughput_rps"])["batch_size"]
            rows = asyncio.run(
                _load_points(pipeline, texts, costs, settings, run_id, (ceiling, best), step)
            )
        finally:
            ceiling.close()
        step("paired c=1")
        paired = asyncio.run(_paired_single(pipeline, texts, costs, settings, run_id))
        best_batched = max(r["throughput_rps"] for r in rows if r["mode"] == "batched")
        step("overload")
        rate = settings.overload_factor * max(best_batched, 1.0)
        overload = asyncio.run(_overload(pipeline, texts, settings, rate, run_id))
        bar.update(1)

    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    mean_cost = float(np.mean(costs))
    report: dict[str, Any] = {
        "results": rows,
        "ceiling": {"best_batch_size": best, "sweep": sizes},
        "paired_c1": paired,
        "overload": overload,
        "machine": machine,
        "settings": {
            **dataclasses.asdict(settings),
            "product_defaults": product_defaults(),
            "unbatched_server": "one forward per request on a single-thread ThreadPoolExecutor",
            "batched_server": "cost() on the event loop, then DynamicBatcher.submit (product path)",
            "texts": source,
            "sampled_texts": len(texts),
            "mean_tokens": round(mean_cost, 2),
            "median_tokens": float(np.median(costs)),
            "truncated_share": round(float(np.mean([t for _, t in measured])), 4),
        },
    }
    report["targets"] = evaluate_targets(report)
    return report


# ---------------------------------------------------------------- output


def _fmt(value: object, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def format_table(report: dict[str, Any]) -> str:
    """The results as a plain-text table, then the ceiling sizes, the overload test and targets."""
    header = (
        "mode",
        "clients",
        "req/s",
        "p50 ms",
        "p99 ms",
        "mean batch",
        "padding eff",
        "tok/req",
        "cost ms",
        "wait ms",
        "forward ms",
    )
    lines = []
    for r in report["results"]:
        lines.append(
            (
                r["mode"] + (f" b={r['batch_size']}" if r["mode"] == "ceiling" else ""),
                _fmt(r["concurrency"]),
                _fmt(r["throughput_rps"]),
                _fmt(r["p50_ms"]),
                _fmt(r["p99_ms"]),
                _fmt(r["mean_batch_size"], ".2f"),
                _fmt(r["padding_efficiency"], ".3f"),
                _fmt(r.get("padded_tokens_per_request")),
                _fmt(r.get("cost_ms"), ".2f"),
                _fmt(r.get("queue_wait_ms")),
                _fmt(r.get("forward_ms")),
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def render(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    out = [render(header), render(["-" * w for w in widths]), *(render(line) for line in lines)]
    out.append(
        "tok/req: padded tokens computed per request; cost ms: cost() tokenization on the event"
        " loop per request; wait ms: queue time per request; forward ms: one forward call"
    )
    out.append("")
    sweep = (
        f"{s['batch_size']}: {s['throughput_rps']:.1f} req/s (pad {s['padding_efficiency']:.3f})"
        for s in report["ceiling"]["sweep"]
    )
    out.append(
        "ceiling sweep by batch size: "
        + ", ".join(sweep)
        + f"; best {report['ceiling']['best_batch_size']}, re-measured at each concurrency"
    )
    pc = report["paired_c1"]
    out.append(
        f"c=1 paired ({pc['pairs']} pairs, same text through both, alternating order): p50"
        f" unbatched {_fmt(pc['unbatched_p50_ms'])} ms, batched {_fmt(pc['batched_p50_ms'])} ms;"
        f" median per-pair extra {_fmt(pc['median_extra_ms'])} ms"
    )
    o = report["overload"]
    out += [
        f"overload: {o['factor']:g}x = {o['rate_rps']:.0f} req/s, open loop, {o['duration_s']:g} s"
        f" into max_queue {o['max_queue']}: {o['accepted']} accepted, {o['rejected']} rejected",
        f"  rejection p50/p99 {_fmt(o['reject_p50_ms'], '.2f')}/{_fmt(o['reject_p99_ms'], '.2f')}"
        f" ms from arrival (submit call alone p99 {_fmt(o['reject_call_p99_ms'], '.3f')} ms;"
        f" event-loop lag p99 {_fmt(o['loop_lag_p99_ms'], '.1f')} ms, idle"
        f" {_fmt(o['loop_lag_idle_p99_ms'], '.1f')} ms)",
        f"  queue depth max {o['max_queue_depth_seen']}, accepted in flight max"
        f" {o['max_accepted_in_flight']}; RSS {o['rss_before_mb']:.0f} -> {o['rss_after_mb']:.0f}"
        f" MiB (max {o['rss_max_first_half_mb']:.0f} in the first half,"
        f" {o['rss_max_second_half_mb']:.0f} in the second), peak {o['peak_rss_before_mb']:.0f} ->"
        f" {o['peak_rss_after_mb']:.0f} MiB",
    ]
    m = report["machine"]
    out.append(
        f"machine: {m['cpu_cores']} cores, torch {m['torch']} with {m['torch_threads']} threads"
        f" (OMP_WAIT_POLICY={m['env']['OMP_WAIT_POLICY'] or 'unset'}),"
        f" load average {m['loadavg_start'][0]:.1f} -> {m.get('loadavg_end', ['?'])[0]}"
    )
    out.append("targets:")
    for t in report["targets"]:
        mark = {True: "met   ", False: "MISSED", None: "info  "}[t["met"]]
        out.append(f"  [{mark}] {t['target']}: {_fmt(t['value'], '.3f')}")
    return "\n".join(out)


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write the report as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_plot(report: dict[str, Any], path: Path) -> Path:
    """PNG: throughput vs concurrency per mode (ceiling as a line) and p99 latency."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax_tp, ax_lat = fig.subplots(1, 2)
    rows = report["results"]
    ceiling = sorted(
        ((r["concurrency"], r["throughput_rps"]) for r in rows if r["mode"] == "ceiling"),
        key=lambda point: point[0],
    )
    if ceiling:
        best = report["ceiling"]["best_batch_size"]
        ax_tp.plot(
            [c for c, _ in ceiling],
            [v for _, v in ceiling],
            color="black",
            linestyle="--",
            label=f"ceiling (sorted batches of {best})",
        )
    for mode, marker in (("unbatched", "o"), ("batched", "s")):
        points = sorted(
            ((r["concurrency"], r) for r in rows if r["mode"] == mode), key=lambda p: p[0]
        )
        cs = [c for c, _ in points]
        ax_tp.plot(cs, [r["throughput_rps"] for _, r in points], marker=marker, label=mode)
        for key, style in (("p99_ms", "-"), ("p50_ms", ":")):
            lat = [(c, r[key]) for c, r in points if r[key] is not None]
            ax_lat.plot(
                [c for c, _ in lat],
                [v for _, v in lat],
                marker=marker,
                linestyle=style,
                color=ax_tp.lines[-1].get_color(),
                label=f"{mode} {key[:3]}",
            )
    ticks = sorted({r["concurrency"] for r in rows if r["concurrency"] is not None})
    for ax in (ax_tp, ax_lat):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrent clients (closed loop)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax_tp.set_ylabel("throughput (req/s)")
    ax_tp.set_ylim(bottom=0)
    ax_lat.set_ylabel("latency (ms), p99 solid, p50 dotted")
    ax_lat.set_yscale("log")
    m = report["machine"]
    fig.suptitle(
        f"Dynamic batching on {m['cpu_cores']} CPU cores, torch threads {m['torch_threads']}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path


# ---------------------------------------------------------------- entry point


def _real_pipeline() -> tuple[Any, dict[str, Any]]:
    """The product's sentiment path on the packaged offline encoder (shipped head if present)."""
    from dikkat.config import Settings
    from dikkat.inference.sentiment import SentimentPipeline
    from dikkat.models.encoder import load_encoder
    from dikkat.models.head import SentimentHead, default_head_path, load_head

    encoder = load_encoder(
        "offline", max_length=128, pooling="mean", device="auto", model_dir=Settings().model_dir
    )
    path = default_head_path(encoder.encoder_id, encoder.pooling)
    if path is not None:
        head, _ = load_head(path, encoder_id=encoder.encoder_id, dim=encoder.dim)
        head_note = f"shipped head {path.name}"
    else:
        head, head_note = SentimentHead(encoder.dim), "untrained head (timing only)"
    info = {
        "device": str(encoder.device),
        "encoder": encoder.encoder_id,
        "max_length": encoder.max_length,
        "head": head_note,
    }
    return SentimentPipeline(encoder, head, None), info


def run_batching_benchmark(
    *, quick: bool, json_path: Path | None, plot_path: Path | None, progress: bool = True
) -> dict[str, Any]:
    """`dikkat bench batching` on the offline encoder; writes json/plot when asked.

    Sets torch's intra-op threads for the process (a CLI command owns its process).
    """
    settings = BenchSettings.quick() if quick else BenchSettings()
    torch.set_num_threads(settings.torch_threads)
    pipeline, info = _real_pipeline()
    tokenizer = pipeline.encoder.tokenizer

    def word_tokens(word: str) -> int:
        return len(tokenizer(word, add_special_tokens=False)["input_ids"])

    texts, source = request_texts(settings.sample_size, settings.seed, word_tokens)
    report = run_benchmark(pipeline, texts, settings, progress=progress, info=info, source=source)
    report["settings"]["quick"] = quick
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        write_plot(report, plot_path)
    return report
