"""Generic dynamic batcher: groups concurrent requests into batches run on one worker thread."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from types import EllipsisType
from typing import Generic, TypeVar

import torch

from dikkat.inference.metrics import BatcherMetrics

__all__ = [
    "BatcherStats",
    "BatcherStopped",
    "DynamicBatcher",
    "Overloaded",
    "RequestTimedOut",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """Queue full: the caller should answer 'busy'."""


class BatcherStopped(Exception):
    """The batcher is stopping/stopped; request not run."""


class RequestTimedOut(TimeoutError):
    """This request's deadline passed before its result."""


@dataclass
class BatcherStats:
    """In-process counters for benchmarks; one batch is one run_batch call."""

    batches: int = 0
    items: int = 0
    batch_items: int = 0
    real_tokens: int = 0
    computed_tokens: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Mean items per run_batch call (0 before the first batch)."""
        return self.batch_items / self.batches if self.batches else 0.0

    @property
    def padding_efficiency(self) -> float:
        """Real tokens / computed (padded) tokens over all batches."""
        return self.real_tokens / self.computed_tokens if self.computed_tokens else 1.0


@dataclass(eq=False)
class _Pending(Generic[T, R]):
    item: T
    cost: int
    seq: int
    enqueued: float
    future: asyncio.Future[R]
    batch_size: int = 0


last_batch_size: ContextVar[int] = ContextVar("last_batch_size", default=0)
"""Size of the batch that produced the caller's latest `submit` result (for request logs)."""


def _longest_times_count(costs: Sequence[int]) -> int:
    """Tokens a padded forward computes: every item padded to the longest."""
    return max(costs) * len(costs)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class DynamicBatcher(Generic[T, R]):
    """Groups items from concurrent `submit` calls into batches for `run_batch`.

    `padded_tokens(costs)` is the model's cost of one batch (default: every item padded to the
    longest); the token budget, the padding test and the padding statistics all use it.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        name: str,
        max_batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        default_timeout: float | None = 30.0,
        inference_mode: bool = True,
        min_padding_efficiency: float = 0.0,
        padded_tokens: Callable[[Sequence[int]], int] | None = None,
    ) -> None:
        if not callable(run_batch):
            raise TypeError("run_batch must be callable")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if not (0 <= max_wait_ms < math.inf):
            raise ValueError(f"max_wait_ms must be finite and >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if not 0.0 <= min_padding_efficiency <= 1.0:
            raise ValueError(
                f"min_padding_efficiency must be in [0, 1], got {min_padding_efficiency}"
            )
        if default_timeout is not None and not default_timeout > 0:
            raise ValueError(f"default_timeout must be > 0 or None, got {default_timeout}")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.default_timeout = default_timeout
        self.inference_mode = inference_mode
        self.min_padding_efficiency = min_padding_efficiency
        self._padded_tokens = padded_tokens or _longest_times_count
        self._run_batch = run_batch
        self._effective_max = max_batch_size
        self._metrics = BatcherMetrics.for_model(name)
        self._stats = BatcherStats()
        self._queue: dict[int, _Pending[T, R]] = {}  # insertion order is arrival order
        self._inflight: list[_Pending[T, R]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self._closing = False
        self._stop_done: asyncio.Event | None = None
        self._last_done: float | None = None

    @property
    def effective_max_batch_size(self) -> int:
        """Current batch size cap; lowered after out-of-memory errors."""
        return self._effective_max

    @property
    def queue_depth(self) -> int:
        """Items waiting to be batched (excludes the running batch)."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        """True between `start` and the beginning of `stop`."""
        return self._accepting

    @property
    def stats(self) -> BatcherStats:
        """A snapshot of the in-process counters."""
        return dataclasses.replace(self._stats)

    async def start(self) -> None:
        """Start the worker task and its executor thread; no-op if already running."""
        if self._stop_done is not None:
            raise RuntimeError(f"batcher {self.name!r} was stopped and cannot restart")
        if self._worker is not None:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"batcher-{self.name}"
        )
        self._accepting = True
        self._worker = asyncio.get_running_loop().create_task(
            self._work(), name=f"batcher-{self.name}"
        )

    async def stop(self, *, drain: bool = True, timeout: float = 10.0) -> None:
        """Stop accepting; finish queued items if `drain` (up to `timeout` s), fail the rest."""
        if self._stop_done is not None:
            await self._stop_done.wait()
            return
        self._stop_done = asyncio.Event()
        self._accepting = False
        self._closing = True
        try:
            if not drain:
                self._fail_queued()
            worker, stuck = self._worker, False
            if worker is not None:
                self._wakeup.set()
                _, pending = await asyncio.wait({worker}, timeout=timeout)
                if pending:
                    log.warning("batcher %s: stop timed out after %.1fs", self.name, timeout)
                    inflight, stuck = self._inflight, True
                    worker.cancel()
                    await asyncio.wait({worker})
                    self._fail(inflight, self._stopped_error)
            self._fail_queued()
            if self._executor is not None:
                # A run_batch still stuck in the thread must not block the event loop.
                self._executor.shutdown(wait=not stuck, cancel_futures=True)
        finally:
            self._stop_done.set()

    async def submit(
        self, item: T, *, cost: int = 1, timeout: float | None | EllipsisType = ...
    ) -> R:
        """Queue `item` and await its result; `timeout=None` waits forever, `...` = default."""
        if cost < 1:
            raise ValueError(f"cost must be >= 1, got {cost}")
        if not self._accepting:
            if self._stop_done is None:
                raise RuntimeError(f"batcher {self.name!r} is not started")
            raise BatcherStopped(f"batcher {self.name!r} is stopping")
        self.check_capacity()
        deadline = self.default_timeout if timeout is ... else timeout
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        pending = _Pending(item, cost, next(self._seq), time.monotonic(), future)
        self._queue[pending.seq] = pending
        self._metrics.queue_depth.set(len(self._queue))
        self._wakeup.set()
        try:
            async with asyncio.timeout(deadline) as scope:
                result = await future
            last_batch_size.set(pending.batch_size)
            return result
        except TimeoutError:
            if not scope.expired():
                raise
            self._metrics.timed_out.inc()
            raise RequestTimedOut(f"no result within {deadline}s") from None
        finally:
            if not future.done():
                future.cancel()
            if self._queue.pop(pending.seq, None) is not None:
                self._metrics.queue_depth.set(len(self._queue))

    def check_capacity(self) -> None:
        """Raise Overloaded now if a submit would be refused (call before costly preparation)."""
        if len(self._queue) >= self.max_queue:
            self._metrics.rejected.inc()
            raise Overloaded(f"batcher {self.name!r} queue is full ({self.max_queue})")

    async def _work(self) -> None:
        while (batch := await self._next_batch()) is not None:
            self._inflight = batch
            try:
                await self._run_group(batch)
            except Exception as exc:
                log.exception("batcher %s: unexpected worker error", self.name)
                msg = f"batcher {self.name!r} failed: {exc!r}"
                self._fail(batch, functools.partial(RuntimeError, msg))
            finally:
                self._inflight = []
                self._last_done = time.monotonic()

    async def _next_batch(self) -> list[_Pending[T, R]] | None:
        while True:
            self._prune()
            if not self._queue:
                if self._closing:
                    return None
                await self._wait_wakeup(None)
                continue
            batch, full = self._cut()
            if not full and not self._closing:
                remaining = self._wait_remaining(batch[0])
                if remaining > 0:
                    await self._wait_wakeup(remaining)
                    continue
            now = time.monotonic()
            for p in batch:
                del self._queue[p.seq]
                self._metrics.queue_wait.observe(now - p.enqueued)
            self._metrics.queue_depth.set(len(self._queue))
            return batch

    def _cut(self) -> tuple[list[_Pending[T, R]], bool]:
        """Oldest item plus the closest-cost others that fit; also says if the batch is full."""
        waiting = iter(self._queue.values())
        oldest = next(waiting)
        batch, costs = [oldest], [oldest.cost]
        limit = self._effective_max
        nearest = heapq.nsmallest(
            limit - 1, waiting, key=lambda p: (abs(p.cost - oldest.cost), p.seq)
        )
        for p in nearest:
            new_costs = [*costs, p.cost]
            real = sum(new_costs)
            padded = max(new_costs) * len(new_costs)  # padding bounds every cost model from above
            if padded > self.max_batch_tokens or real / padded < self.min_padding_efficiency:
                padded = self._padded_tokens(new_costs)  # the bound is not enough: ask the model
            if padded > self.max_batch_tokens:
                break
            if real / padded < self.min_padding_efficiency:
                continue  # too much padding: it goes into a later batch of its own length
            batch.append(p)
            costs = new_costs
        full = len(batch) >= limit or self._padded_tokens([*costs, 1]) > self.max_batch_tokens
        return batch, full or len(batch) < len(self._queue)

    def _wait_remaining(self, oldest: _Pending[T, R]) -> float:
        """Seconds to hold a partial batch for company.

        Only an item that queued behind a running batch (load: work was left behind) is held,
        at most `max_wait` from its arrival; one that arrives at an idle model runs at once.
        """
        if self._last_done is None or oldest.enqueued >= self._last_done:
            return 0.0
        return oldest.enqueued + self.max_wait - time.monotonic()

    async def _wait_wakeup(self, timeout: float | None) -> None:
        self._wakeup.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    async def _run_group(self, group: list[_Pending[T, R]]) -> None:
        """Run one batch; on error split it in halves and retry so only bad items fail."""
        group = [p for p in group if not p.future.done()]
        if not group:
            return
        try:
            results = await self._call(group)
        except Exception as exc:
            self._metrics.batch_errors.inc()
            if len(group) == 1:
                if not group[0].future.done():
                    group[0].future.set_exception(exc)
                return
            if _is_oom(exc):
                self._effective_max = min(self._effective_max, max(1, len(group) // 2))
                log.warning(
                    "batcher %s: out of memory on %d items; max batch size now %d",
                    self.name,
                    len(group),
                    self._effective_max,
                )
            mid = len(group) // 2
            await self._run_group(group[:mid])
            await self._run_group(group[mid:])
            return
        if len(results) != len(group):
            self._metrics.batch_errors.inc()
            msg = f"run_batch returned {len(results)} results for {len(group)} items"
            self._fail(group, functools.partial(RuntimeError, msg))
            return
        for p, result in zip(group, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)
                self._stats.items += 1

    async def _call(self, group: list[_Pending[T, R]]) -> list[R]:
        assert self._executor is not None
        n = len(group)
        real = sum(p.cost for p in group)
        computed = self._padded_tokens([p.cost for p in group])
        items = [p.item for p in group]
        for p in group:
            p.batch_size = n
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self._executor, self._call_sync, items)
        finally:
            self._metrics.batch_compute.observe(time.perf_counter() - started)
            self._metrics.batch_size.observe(n)
            self._metrics.padding_efficiency.observe(real / computed)
            s = self._stats
            s.batches += 1
            s.batch_items += n
            s.real_tokens += real
            s.computed_tokens += computed

    def _call_sync(self, items: list[T]) -> list[R]:
        if not self.inference_mode:
            return list(self._run_batch(items))
        with torch.inference_mode():
            return list(self._run_batch(items))

    def _prune(self) -> None:
        """Drop queued items whose caller already gave up."""
        gone = [seq for seq, p in self._queue.items() if p.future.done()]
        for seq in gone:
            del self._queue[seq]
        if gone:
            self._metrics.queue_depth.set(len(self._queue))

    def _fail_queued(self) -> None:
        queued = list(self._queue.values())
        self._queue.clear()
        self._metrics.queue_depth.set(0)
        self._fail(queued, self._stopped_error)

    def _stopped_error(self) -> BatcherStopped:
        return BatcherStopped(f"batcher {self.name!r} stopped before running the request")

    @staticmethod
    def _fail(group: list[_Pending[T, R]], make_error: Callable[[], BaseException]) -> None:
        """Fail every still-waiting item, each with its own exception instance."""
        for p in group:
            if not p.future.done():
                p.future.set_exception(make_error())
