"""Load on the sentiment path: the servers under test, closed-loop clients, the paired c=1 run.

`batched` is the product itself: `InferenceService.sentiment` of a service built by App, with its
sentiment batcher's `BatcherStats` as the batch counters. `unbatched` is the naive server the
batcher is measured against: one tokenize + forward per request on one worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from prometheus_client import Histogram

from dikkat.bench.common import ms, percentiles, ratio
from dikkat.inference.batch_runner import BatcherStats
from dikkat.inference.batcher import DynamicBatcher
from dikkat.inference.metrics import BATCH_COMPUTE, QUEUE_WAIT
from dikkat.inference.service import InferenceService

__all__ = [
    "SENTIMENT_BATCHER",
    "Answered",
    "Pipeline",
    "Prepared",
    "ServiceOpener",
    "Server",
    "ServiceServer",
    "Unbatched",
    "Window",
    "closed_loop",
    "paired_single",
    "prepare",
    "row",
    "sentiment_batcher",
]

SENTIMENT_BATCHER = "sentiment"  # the service's batcher name, also its metrics label

ServiceOpener = Callable[[Mapping[str, Any]], AbstractAsyncContextManager[InferenceService]]
"""Opens a started InferenceService whose Settings carry the given batcher options."""


class Tokens(Protocol):
    """A tokenized text (dikkat.models.encoder.TokenizedText)."""

    @property
    def cost(self) -> int: ...

    @property
    def truncated(self) -> bool: ...


class Pipeline(Protocol):
    """What unbatched and ceiling call directly: the service's SentimentPipeline."""

    def tokenize(self, text: str) -> Tokens: ...

    def predict_batch(self, items: list[Any]) -> Sequence[object]: ...


@dataclass(frozen=True)
class Prepared:
    """Every text tokenized once before the run, and how long tokenizing took."""

    items: list[Any]
    costs: list[int]
    truncated: list[bool]
    tokenize_s: float  # mean seconds per text, on the event loop's thread

    @property
    def tokenize_ms(self) -> float | None:
        """Mean tokenizing time per text in ms."""
        return ms(self.tokenize_s)


def prepare(pipeline: Pipeline, texts: Sequence[str]) -> Prepared:
    """Tokenize every text as the service does before submitting (timed)."""
    started = time.perf_counter()
    items = [pipeline.tokenize(text) for text in texts]
    seconds = (time.perf_counter() - started) / max(1, len(texts))
    return Prepared(items, [i.cost for i in items], [bool(i.truncated) for i in items], seconds)


@dataclass
class Window:
    """Cumulative counters of one server; their difference over a window gives one row.

    `stats` are BatcherStats: the service batcher's own for `batched`, counted here only for
    the modes that have no batcher (unbatched, ceiling).
    """

    stats: BatcherStats = field(default_factory=BatcherStats)
    wait_s: float = 0.0  # summed time items waited before their forward started
    compute_s: float = 0.0  # summed wall time of the forward calls

    def __sub__(self, other: Window) -> Window:
        names = [f.name for f in dataclasses.fields(BatcherStats)]
        stats = BatcherStats(**{n: getattr(self.stats, n) - getattr(other.stats, n) for n in names})
        return Window(stats, self.wait_s - other.wait_s, self.compute_s - other.compute_s)

    def __add__(self, other: Window) -> Window:
        names = [f.name for f in dataclasses.fields(BatcherStats)]
        stats = BatcherStats(**{n: getattr(self.stats, n) + getattr(other.stats, n) for n in names})
        return Window(stats, self.wait_s + other.wait_s, self.compute_s + other.compute_s)

    def copy(self) -> Window:
        """A snapshot that later counting does not change."""
        return Window(dataclasses.replace(self.stats), self.wait_s, self.compute_s)

    def add_batch(
        self, costs: Sequence[int], seconds: float, computed_tokens: int | None = None
    ) -> None:
        """Count one forward over items of these token costs (modes without a batcher).

        `computed_tokens` is what the forward computed (default: every item padded to the longest).
        """
        s = self.stats
        s.batches += 1
        s.batch_items += len(costs)
        s.items += len(costs)
        s.real_tokens += sum(costs)
        s.computed_tokens += computed_tokens or max(costs) * len(costs)
        self.compute_s += seconds


def row(
    mode: str,
    concurrency: int | None,
    throughput: float,
    latencies: Sequence[float],
    window: Window,
    **extra: object,
) -> dict[str, Any]:
    """One result row of the report."""
    p50, p99 = percentiles(latencies)
    s, n = window.stats, window.stats.batch_items
    return {
        "mode": mode,
        "concurrency": concurrency,
        "throughput_rps": round(throughput, 3),
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "mean_batch_size": round(s.mean_batch_size, 3) if n else None,
        "padding_efficiency": round(s.padding_efficiency, 4) if n else None,
        "padded_tokens_per_request": round(s.computed_tokens / n, 2) if n else None,
        "cost_ms": None,
        "queue_wait_ms": ms(window.wait_s / n) if n else None,
        "forward_ms": ms(window.compute_s / s.batches) if s.batches else None,
        **extra,
    }


class Server(Protocol):
    """A server under test: answers one request, reports its cumulative counters."""

    async def send(self, text: str) -> object: ...

    def snapshot(self) -> Window: ...


class Unbatched:
    """The naive server: tokenize + one forward per request on one plain worker thread."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-unbatched")
        self._window = Window()

    async def send(self, text: str) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._one, text, time.perf_counter())

    def _one(self, text: str, submitted: float) -> object:
        started = time.perf_counter()
        with torch.inference_mode():
            item = self._pipeline.tokenize(text)
            (result,) = self._pipeline.predict_batch([item])
        self._window.wait_s += started - submitted
        self._window.add_batch([item.cost], time.perf_counter() - started)
        return result

    def snapshot(self) -> Window:
        return self._window.copy()

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


def sentiment_batcher(service: InferenceService) -> DynamicBatcher:
    """The service's sentiment batcher (its stats, queue depth and stop)."""
    return next(b for b in service.batchers if b.name == SENTIMENT_BATCHER)


def _metric_sum(histogram: Histogram, name: str) -> float:
    """The `_sum` sample of a labelled prometheus histogram for model `name` (0 if absent)."""
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("model") == name:
                return float(sample.value)
    return 0.0


class ServiceServer:
    """The product path: InferenceService.sentiment (tokenize on the loop, then the batcher)."""

    def __init__(self, service: InferenceService) -> None:
        self._service = service
        self.batcher = sentiment_batcher(service)

    async def send(self, text: str) -> object:
        return await self._service.sentiment(text)

    def snapshot(self) -> Window:
        name = self.batcher.name
        return Window(
            self.batcher.stats,
            wait_s=_metric_sum(QUEUE_WAIT, name),
            compute_s=_metric_sum(BATCH_COMPUTE, name),
        )


@dataclass
class Answered:
    """One closed-loop window: the answers completed in it, for which texts, and the server's
    counters over it."""

    latencies: list[float] = field(default_factory=list)
    texts: list[int] = field(default_factory=list)  # index into the texts, one per answer
    counters: Window = field(default_factory=Window)
    seconds: float = 0.0

    def __add__(self, other: Answered) -> Answered:
        return Answered(
            self.latencies + other.latencies,
            self.texts + other.texts,
            self.counters + other.counters,
            self.seconds + other.seconds,
        )

    @property
    def throughput(self) -> float:
        """Answers per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def tokens_per_s(self, costs: Sequence[int]) -> float:
        """Real tokens of the answered texts per second (costs: each text's token count)."""
        return sum(costs[i] for i in self.texts) / self.seconds if self.seconds else 0.0


async def closed_loop(
    server: Server, texts: Sequence[str], concurrency: int, warmup_s: float, duration_s: float
) -> Answered:
    """`concurrency` clients, each sending its next request when the previous answer arrives;
    texts are sent in order from the first, so windows of one length do comparable work.

    The window opens at the first answer after the warm-up and closes at the first answer
    `duration_s` later, which is left out: it spans whole batch cycles, so a window of a few
    batches counts none of them partly (answers come a batch at a time).
    """
    counter = itertools.count()
    answered = Answered()
    opened: list[float] = []  # the first answer after the warm-up, then the one that closes
    armed, closed = asyncio.Event(), asyncio.Event()
    before = Window()

    async def client() -> None:
        nonlocal before
        while True:
            i = next(counter) % len(texts)
            started = time.perf_counter()
            await server.send(texts[i])
            done = time.perf_counter()
            if not armed.is_set() or closed.is_set():
                continue
            if not opened:
                opened.append(done)
                before = server.snapshot()
            elif done - opened[0] >= duration_s:
                answered.counters = server.snapshot() - before
                answered.seconds = done - opened[0]
                closed.set()
                continue
            answered.latencies.append(done - started)
            answered.texts.append(i)

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    waiter = asyncio.create_task(closed.wait())
    try:
        await asyncio.sleep(warmup_s)
        armed.set()
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*tasks, waiter):
            task.cancel()
        outcomes = await asyncio.gather(*tasks, waiter, return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, Exception)]
    if errors:
        raise errors[0]
    return answered


async def paired_single(
    service: InferenceService, pipeline: Pipeline, texts: Sequence[str], seconds: float
) -> dict[str, Any]:
    """One client alternating the same text through both servers: a c=1 comparison that drift in
    machine load cannot bias (the order within each pair alternates too)."""
    unbatched, batched = Unbatched(pipeline), ServiceServer(service)
    latencies: dict[str, list[float]] = {"unbatched": [], "batched": []}
    end, i = time.perf_counter() + seconds, 0
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
    (u50, _), (b50, _) = percentiles(latencies["unbatched"]), percentiles(latencies["batched"])
    extra = [b - u for u, b in zip(latencies["unbatched"], latencies["batched"], strict=False)]
    return {
        "pairs": i,
        "unbatched_p50_ms": ms(u50),
        "batched_p50_ms": ms(b50),
        "ratio": ratio(b50, u50),
        "median_extra_ms": ms(float(np.median(extra))) if extra else None,
    }
