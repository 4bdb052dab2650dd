"""Running a DynamicBatcher's batches: `run_batch` on the batcher's worker threads, a failing batch
split in halves until only the bad items fail, out-of-memory answered with smaller batches."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from dikkat.inference.batch_cut import Pending, fail_all
from dikkat.inference.metrics import BatcherMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class BatchRunner(Generic[T, R]):
    """Runs batches on its own threads (`parallel` at a time) and hands each result to its
    item's future.

    `effective_max` starts at `max_batch_size` and is halved below a batch that ran out of memory.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        name: str,
        max_batch_size: int,
        parallel: int,
        inference_mode: bool,
        padded_tokens: Callable[[Sequence[int]], int],
        metrics: BatcherMetrics,
    ) -> None:
        self.name = name
        self.effective_max = max_batch_size
        self.parallel = parallel
        self.stats = BatcherStats()
        self._run_batch = run_batch
        self._inference_mode = inference_mode
        self._padded_tokens = padded_tokens
        self._metrics = metrics
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker threads."""
        self._executor = ThreadPoolExecutor(
            max_workers=self.parallel, thread_name_prefix=f"batcher-{self.name}"
        )

    def shutdown(self, *, wait: bool) -> None:
        """Stop the worker threads; `wait=False` leaves a run_batch stuck in one behind."""
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)

    async def run(self, group: list[Pending[T, R]]) -> None:
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
                self.effective_max = min(self.effective_max, max(1, len(group) // 2))
                log.warning(
                    "batcher %s: out of memory on %d items; max batch size now %d",
                    self.name,
                    len(group),
                    self.effective_max,
                )
            mid = len(group) // 2
            await self.run(group[:mid])
            await self.run(group[mid:])
            return
        if len(results) != len(group):
            self._metrics.batch_errors.inc()
            msg = f"run_batch returned {len(results)} results for {len(group)} items"
            fail_all(group, functools.partial(RuntimeError, msg))
            return
        for p, result in zip(group, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)
                self.stats.items += 1

    async def _call(self, group: list[Pending[T, R]]) -> list[R]:
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
            s = self.stats
            s.batches += 1
            s.batch_items += n
            s.real_tokens += real
            s.computed_tokens += computed

    def _call_sync(self, items: list[T]) -> list[R]:
        if not self._inference_mode:
            return list(self._run_batch(items))
        with torch.inference_mode():
            return list(self._run_batch(items))
