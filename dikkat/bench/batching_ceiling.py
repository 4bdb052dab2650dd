"""The batching ceiling: the raw pipeline on pre-formed, length-sorted batches (throughput only)."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from dikkat.bench.batching_load import Pipeline, Prepared, Window, row

__all__ = ["Ceiling", "spread_order", "tokens_per_s"]


class Ceiling:
    """Pre-formed batches of the already tokenized texts, as many at a time as the batcher runs
    side by side (`parallel_batches`, one worker thread each), so the modes differ only in
    batching. A measurement is short and is taken in turn with the product's (`window`), so
    drifting machine load hits the ceiling and the batcher alike.
    """

    def __init__(self, pipeline: Pipeline, prepared: Prepared) -> None:
        self._pipeline = pipeline
        self._items = prepared.items
        self._costs = prepared.costs
        self._order = sorted(range(len(self._costs)), key=self._costs.__getitem__)
        self._mean_tokens = sum(self._costs) / len(self._costs)
        self._streams = pipeline.encoder.parallel_batches
        self._executor = ThreadPoolExecutor(
            max_workers=self._streams, thread_name_prefix="bench-ceiling"
        )

    def warm_up(self) -> None:
        """One batch of mixed lengths, not reported."""
        spread = self._order[:: max(1, len(self._order) // 8)]
        self._executor.submit(self._run, [spread], 0.0).result()

    def window(self, size: int, budget_s: float) -> Window:
        """Sorted batches of `size`, back to back until budget_s has passed, in an order whose
        every prefix spans all lengths (blocks until done).

        The same batches in the same order each time, so repeated windows do the same work; the
        window's time is that of the whole batches it ran. With several streams, each runs every
        n-th batch and the window lasts as long as the slowest stream.
        """
        chunks = [self._order[i : i + size] for i in range(0, len(self._order), size)]
        chunks = [chunks[j] for j in spread_order(len(chunks))]
        streams = [
            self._executor.submit(self._run, chunks[k :: self._streams] or chunks, budget_s)
            for k in range(self._streams)
        ]
        windows = [stream.result() for stream in streams]
        total = functools.reduce(Window.__add__, windows)
        total.compute_s = max(w.compute_s for w in windows)
        return total

    def row(self, window: Window, size: int, concurrency: int | None) -> dict[str, Any]:
        """The report row of one window, or of several added up."""
        s = window.stats
        extra = {
            "cost_ms": None,
            "queue_wait_ms": None,
            "batch_size": size,
            "batches": s.batches,
            "measured_rps": round(s.batch_items / window.compute_s, 3),
        }
        return row("ceiling", concurrency, self.throughput(window), [], window, **extra)

    def throughput(self, window: Window) -> float:
        """Texts per second at the load's mean length: a few batches, whichever lengths they
        hold, rated by their real tokens per second."""
        return tokens_per_s(window) / self._mean_tokens

    def sweep(self, sizes: Sequence[int], budget_s: float) -> list[dict[str, Any]]:
        """A row per batch size: two windows each, the sizes in one order then the reverse, so
        a steady drift in machine speed weighs on every size alike."""
        windows = {size: Window() for size in sizes}
        for size in [*sizes, *reversed(sizes)]:
            windows[size] = windows[size] + self.window(size, budget_s)
        return [self.row(windows[size], size, None) for size in sizes]

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _run(self, chunks: list[list[int]], budget_s: float) -> Window:
        window, started = Window(), time.perf_counter()
        with torch.inference_mode():
            for chunk in itertools.cycle(chunks):
                self._pipeline.predict_batch([self._items[i] for i in chunk])
                costs = [self._costs[i] for i in chunk]
                window.add_batch(costs, 0.0, self._pipeline.encoder.padded_tokens(costs))
                if time.perf_counter() - started >= budget_s:
                    break
        window.compute_s = time.perf_counter() - started  # back to back: the whole run
        return window


def spread_order(n: int) -> list[int]:
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


def tokens_per_s(window: Window) -> float:
    """Real tokens per second of compute in a ceiling window."""
    return window.stats.real_tokens / window.compute_s if window.compute_s else 0.0
