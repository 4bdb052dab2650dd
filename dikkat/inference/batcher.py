"""Generic dynamic batcher: groups concurrent requests into batches run on worker threads."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from types import EllipsisType
from typing import Generic, TypeVar

from dikkat.inference.batch_cut import Pending, cut_batch, fail_all, longest_times_count
from dikkat.inference.batch_runner import BatcherStats, BatchRunner
from dikkat.inference.metrics import BatcherMetrics

__all__ = [
    "BatcherStopped",
    "DynamicBatcher",
    "Overloaded",
    "RequestTimedOut",
    "last_batch_size",
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


last_batch_size: ContextVar[int] = ContextVar("last_batch_size", default=0)
"""Size of the batch that produced the caller's latest `submit` result (for request logs)."""


class DynamicBatcher(Generic[T, R]):
    """Groups items from concurrent `submit` calls into batches for `run_batch`.

    `padded_tokens(costs)` is the model's cost of one batch (default: every item padded to the
    longest); the token budget, the padding test and the padding statistics all use it. The batch
    is cut by `cut_batch` and run by a `BatchRunner`, `parallel_batches` batches at a time (one
    per worker the model runs side by side; 1 for a model that spreads one batch over the cores).
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
        parallel_batches: int = 1,
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
        if parallel_batches < 1:
            raise ValueError(f"parallel_batches must be >= 1, got {parallel_batches}")
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
        self._padded_tokens = padded_tokens or longest_times_count
        self._metrics = BatcherMetrics.for_model(name)
        self._runner: BatchRunner[T, R] = BatchRunner(
            run_batch,
            name=name,
            max_batch_size=max_batch_size,
            parallel=parallel_batches,
            inference_mode=inference_mode,
            padded_tokens=self._padded_tokens,
            metrics=self._metrics,
        )
        self._queue: dict[int, Pending[T, R]] = {}  # insertion order is arrival order
        self._inflight: dict[int, list[Pending[T, R]]] = {}  # worker -> its running batch
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._accepting = False
        self._closing = False
        self._stop_done: asyncio.Event | None = None
        self._last_done: float | None = None

    @property
    def effective_max_batch_size(self) -> int:
        """Current batch size cap; lowered after out-of-memory errors."""
        return self._runner.effective_max

    @property
    def parallel_batches(self) -> int:
        """How many batches run side by side."""
        return self._runner.parallel

    @property
    def queue_depth(self) -> int:
        """Items waiting to be batched (excludes the running batches)."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        """True between `start` and the beginning of `stop`."""
        return self._accepting

    @property
    def stats(self) -> BatcherStats:
        """A snapshot of the in-process counters."""
        return dataclasses.replace(self._runner.stats)

    async def start(self) -> None:
        """Start the worker tasks and their executor threads; no-op if already running."""
        if self._stop_done is not None:
            raise RuntimeError(f"batcher {self.name!r} was stopped and cannot restart")
        if self._workers:
            return
        self._runner.start()
        self._accepting = True
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(worker), name=f"batcher-{self.name}-{worker}")
            for worker in range(self.parallel_batches)
        ]

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
            stuck = False
            if self._workers:
                self._wakeup.set()
                _, pending = await asyncio.wait(self._workers, timeout=timeout)
                if pending:
                    log.warning("batcher %s: stop timed out after %.1fs", self.name, timeout)
                    inflight = [p for batch in self._inflight.values() for p in batch]
                    stuck = True
                    for worker in pending:
                        worker.cancel()
                    await asyncio.wait(pending)
                    fail_all(inflight, self._stopped_error)
            self._fail_queued()
            # A run_batch still stuck in the thread must not block the event loop.
            self._runner.shutdown(wait=not stuck)
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
        pending = Pending(item, cost, next(self._seq), time.monotonic(), future)
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

    async def _work(self, worker: int) -> None:
        while (batch := await self._next_batch()) is not None:
            self._inflight[worker] = batch
            try:
                await self._runner.run(batch)
            except Exception as exc:
                log.exception("batcher %s: unexpected worker error", self.name)
                msg = f"batcher {self.name!r} failed: {exc!r}"
                fail_all(batch, functools.partial(RuntimeError, msg))
            finally:
                del self._inflight[worker]
                self._last_done = time.monotonic()

    async def _next_batch(self) -> list[Pending[T, R]] | None:
        while True:
            self._prune()
            if not self._queue:
                if self._closing:
                    return None
                await self._wait_wakeup(None)
                continue
            batch, full = cut_batch(
                self._queue.values(),
                limit=self._runner.effective_max,
                max_batch_tokens=self.max_batch_tokens,
                min_padding_efficiency=self.min_padding_efficiency,
                padded_tokens=self._padded_tokens,
            )
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

    def _wait_remaining(self, oldest: Pending[T, R]) -> float:
        """Seconds to hold a partial batch for company.

        Only an item that queued behind a running batch (load: work was left behind) is held,
        at most `max_wait` from its arrival; one that arrives at an idle worker runs at once.
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
        fail_all(queued, self._stopped_error)

    def _stopped_error(self) -> BatcherStopped:
        return BatcherStopped(f"batcher {self.name!r} stopped before running the request")
