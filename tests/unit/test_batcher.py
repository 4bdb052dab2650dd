"""Tests for the dynamic batcher; timing is controlled with gates, never asserted."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import torch
from prometheus_client import REGISTRY

from dikkat.inference.batcher import (
    BatcherStopped,
    DynamicBatcher,
    Overloaded,
    RequestTimedOut,
)
from dikkat.models.packing import packed_tokens

GUARD_S = 30.0  # only a broken batcher takes this long: it fails instead of hanging


class Model:
    """Fake run_batch that records batches; optionally blocks its first call on a gate."""

    def __init__(
        self, fn: Callable[[int], object] = lambda x: x * 2, *, block_first: bool = False
    ) -> None:
        self.fn = fn
        self.block_first = block_first
        self.batches: list[list[int]] = []
        self.threads: list[str] = []
        self.inference_flags: list[bool] = []
        self.gate = threading.Event()
        self.calls = itertools.count()

    def __call__(self, items: list[int]) -> list[object]:
        self.batches.append(list(items))
        self.threads.append(threading.current_thread().name)
        self.inference_flags.append(torch.is_inference_mode_enabled())
        if self.block_first and next(self.calls) == 0:
            assert self.gate.wait(GUARD_S)
        return [self.fn(x) for x in items]


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def sample(metric: str, name: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"model": name})


async def eventually(cond: Callable[[], bool]) -> None:
    """Yield to the loop until `cond()` holds (or fail after GUARD_S)."""
    async with asyncio.timeout(GUARD_S):
        while not cond():
            await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def running(batcher: DynamicBatcher, model: Model | None = None) -> AsyncIterator[None]:
    await batcher.start()
    try:
        yield
    finally:
        if model is not None:
            model.gate.set()
        await batcher.stop(timeout=GUARD_S)


async def block_worker(batcher: DynamicBatcher, model: Model) -> asyncio.Task:
    """Submit item -1 and wait until its batch is stuck on the model's gate."""
    task = asyncio.create_task(batcher.submit(-1))
    await eventually(lambda: len(model.batches) == 1)
    return task


async def run_costs_behind_a_blocked_batch(
    batcher: DynamicBatcher, model: Model, costs: list[int]
) -> None:
    """Queue items of these costs while item -1 blocks the worker, release it, check results."""
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(c, cost=c)) for c in costs]
        await eventually(lambda: batcher.queue_depth == len(costs))
        model.gate.set()
        assert await asyncio.gather(*tasks) == [2 * c for c in costs]
        await first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"max_batch_size": 0},
        {"max_batch_tokens": 0},
        {"max_wait_ms": -1},
        {"max_wait_ms": float("inf")},
        {"max_queue": 0},
        {"default_timeout": 0},
        {"parallel_batches": 0},
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict) -> None:
    args = {"name": "x"} | kwargs
    with pytest.raises(ValueError):
        DynamicBatcher(Model(), **args)


async def test_submit_before_start_and_bad_cost() -> None:
    batcher = DynamicBatcher(Model(), name=unique_name())
    with pytest.raises(RuntimeError):
        await batcher.submit(1)
    async with running(batcher):
        assert batcher.running
        with pytest.raises(ValueError):
            await batcher.submit(1, cost=0)


async def test_results_match_items_and_run_in_dedicated_thread() -> None:
    name = unique_name()
    model = Model(lambda x: {"value": x, "head": "v1"}, block_first=True)
    batcher = DynamicBatcher(model, name=name, max_wait_ms=0)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
        await eventually(lambda: batcher.queue_depth == 10)
        model.gate.set()
        results = await asyncio.gather(first, *tasks)
    assert results == [{"value": i, "head": "v1"} for i in range(-1, 10)]
    assert model.batches == [[-1], list(range(10))]
    assert all(t.startswith(f"batcher-{name}") for t in model.threads)
    assert model.inference_flags == [True, True]


async def test_inference_mode_can_be_disabled() -> None:
    model = Model()
    batcher = DynamicBatcher(model, name=unique_name(), inference_mode=False)
    async with running(batcher):
        assert await batcher.submit(3) == 6
    assert model.inference_flags == [False]


async def test_event_loop_stays_responsive_while_batch_runs() -> None:
    running_batch, loop_answered = threading.Event(), threading.Event()

    def waits_for_the_loop(items: list[int]) -> list[int]:
        running_batch.set()
        # only the event loop sets this: a batch run on the loop's thread would never see it
        if not loop_answered.wait(GUARD_S):
            raise AssertionError("the event loop did not run while the batch did")
        return items

    batcher = DynamicBatcher(waits_for_the_loop, name=unique_name())
    async with running(batcher):
        answer = asyncio.create_task(batcher.submit(7))
        await eventually(running_batch.is_set)
        loop_answered.set()
        assert await answer == 7


async def test_lone_request_on_idle_batcher_runs_at_once() -> None:
    model = Model()
    batcher = DynamicBatcher(model, name=unique_name(), max_wait_ms=60_000)
    async with running(batcher):
        async with asyncio.timeout(GUARD_S):  # waiting max_wait_ms would blow this
            assert await batcher.submit(1) == 2
    assert model.batches == [[1]]


async def test_request_right_after_a_batch_runs_at_once_when_nothing_queued_behind_it() -> None:
    model = Model()
    batcher = DynamicBatcher(model, name=unique_name(), max_wait_ms=60_000)
    async with running(batcher):
        async with asyncio.timeout(GUARD_S):  # a 60 s hold for company would blow this
            for item in (1, 2, 3):  # a closed loop of one client: each arrives at an idle model
                assert await batcher.submit(item) == 2 * item
    assert model.batches == [[1], [2], [3]]


async def test_busy_batcher_waits_until_batch_is_full() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_batch_size=3, max_wait_ms=60_000)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        b = asyncio.create_task(batcher.submit(1))
        await eventually(lambda: batcher.queue_depth == 1)
        model.gate.set()
        await first
        # Item 1 arrived while the worker was busy, so it waits for company.
        c = asyncio.create_task(batcher.submit(2))
        await eventually(lambda: batcher.queue_depth == 2)
        assert len(model.batches) == 1
        d = asyncio.create_task(batcher.submit(3))
        async with asyncio.timeout(GUARD_S):
            assert await asyncio.gather(b, c, d) == [2, 4, 6]
    assert model.batches == [[-1], [1, 2, 3]]


async def test_partial_batch_runs_at_oldest_deadline() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_batch_size=8, max_wait_ms=50)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        b = asyncio.create_task(batcher.submit(1))  # queued behind a running batch: held
        await eventually(lambda: batcher.queue_depth == 1)
        model.gate.set()
        await first
        async with asyncio.timeout(GUARD_S):  # no company comes: the deadline lets it run
            assert await b == 2
    assert model.batches == [[-1], [1]]


async def test_batch_cut_groups_similar_costs_within_token_budget() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(
        model, name=unique_name(), max_batch_size=3, max_batch_tokens=250, max_wait_ms=0
    )
    costs = [10, 100, 12, 95, 11, 9]
    await run_costs_behind_a_blocked_batch(batcher, model, costs)
    # Oldest (10) + nearest costs (11 and 9 tie, 11 arrived first); then 100 + 95 fill
    # the budget (100 * 3 > 250); 12 runs last.
    assert model.batches == [[-1], [10, 11, 9], [100, 95], [12]]


async def test_oversized_oldest_item_runs_alone_and_rest_keep_arrival_order() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(
        model, name=unique_name(), max_batch_size=2, max_batch_tokens=100, max_wait_ms=0
    )
    items = [(500, 500), (1, 5), (2, 5), (3, 5), (4, 5)]
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(i, cost=c)) for i, c in items]
        await eventually(lambda: batcher.queue_depth == len(items))
        model.gate.set()
        await asyncio.gather(first, *tasks)
    assert model.batches == [[-1], [500], [1, 2], [3, 4]]


async def test_queue_full_raises_overloaded_and_counts() -> None:
    name = unique_name()
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=name, max_queue=3, max_wait_ms=0)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
        await eventually(lambda: batcher.queue_depth == 3)
        assert sample("dikkat_queue_depth", name) == 3
        with pytest.raises(Overloaded):
            await batcher.submit(99)
        assert sample("dikkat_rejected_total", name) == 1
        model.gate.set()
        assert await asyncio.gather(first, *tasks) == [-2, 0, 2, 4]
    assert sample("dikkat_queue_depth", name) == 0


async def test_queued_request_timeout_only_affects_that_caller() -> None:
    name = unique_name()
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=name, max_wait_ms=0)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        patient = asyncio.create_task(batcher.submit(1, timeout=None))
        with pytest.raises(RequestTimedOut):
            await batcher.submit(2, timeout=0.05)
        assert batcher.queue_depth == 1
        model.gate.set()
        assert await asyncio.gather(first, patient) == [-2, 2]
    assert model.batches == [[-1], [1]]
    assert sample("dikkat_timed_out_total", name) == 1


async def test_timeout_inside_running_batch_discards_result() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), default_timeout=0.05)
    async with running(batcher, model):
        with pytest.raises(RequestTimedOut):
            await batcher.submit(1)
        await eventually(lambda: len(model.batches) == 1)
        model.gate.set()
        assert await batcher.submit(2) == 4
    assert model.batches == [[1], [2]]


async def test_cancelled_requests_never_reach_run_batch() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_batch_size=16, max_wait_ms=0)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(200)]
        await eventually(lambda: batcher.queue_depth == 200)
        for task in tasks[1::2]:
            task.cancel()
        model.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await first
    assert results[0::2] == [2 * i for i in range(0, 200, 2)]
    assert all(isinstance(r, asyncio.CancelledError) for r in results[1::2])
    seen = [x for batch in model.batches[1:] for x in batch]
    assert seen == list(range(0, 200, 2))


async def test_cancel_inside_running_batch_keeps_worker_alive() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name())
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        model.gate.set()
        assert await batcher.submit(5) == 10


async def test_poisoned_item_fails_alone() -> None:
    name = unique_name()

    def fn(x: int) -> int:
        if x == 13:
            raise KeyError("poison")
        return x * 2

    model = Model(fn, block_first=True)
    batcher = DynamicBatcher(model, name=name, max_batch_size=32, max_wait_ms=0)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(32)]
        await eventually(lambda: batcher.queue_depth == 32)
        model.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await first
    assert len(model.batches[1]) == 32
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], KeyError)
    assert isinstance(results[13], KeyError)
    assert [r for i, r in enumerate(results) if i != 13] == [2 * i for i in range(32) if i != 13]
    assert batcher.effective_max_batch_size == 32
    assert sample("dikkat_batch_errors_total", name) == 6  # sizes 32, 16, 8, 4, 2, 1


async def test_length_mismatch_fails_that_batch_only() -> None:
    calls = 0

    def run(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        return items[:-1] if calls == 1 else items

    batcher = DynamicBatcher(run, name=unique_name())
    async with running(batcher):
        with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
            await batcher.submit(1)
        assert await batcher.submit(2) == 2


@pytest.mark.parametrize(
    "error",
    [
        lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
        lambda: RuntimeError("CUDA error: out of memory"),
    ],
)
async def test_out_of_memory_splits_and_lowers_batch_size(
    error: Callable[[], Exception], caplog: pytest.LogCaptureFixture
) -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(sizes) == 1:
            assert gate.wait(GUARD_S)
        if len(items) > 8:
            raise error()
        return [x + 1 for x in items]

    batcher = DynamicBatcher(run, name=unique_name(), max_batch_size=32, max_wait_ms=0)
    await batcher.start()
    try:
        first = asyncio.create_task(batcher.submit(-1))
        await eventually(lambda: len(sizes) == 1)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(48)]
        await eventually(lambda: batcher.queue_depth == 48)
        gate.set()
        assert await asyncio.gather(*tasks) == [i + 1 for i in range(48)]
        assert await first == 0
    finally:
        gate.set()
        await batcher.stop()
    assert batcher.effective_max_batch_size == 8
    # 32 -> OOM, halves of 16 -> OOM, quarters of 8 succeed; the last 16 are cut at 8.
    assert sizes == [1, 32, 16, 8, 8, 16, 8, 8, 8, 8]
    assert "out of memory" in caplog.text


async def test_stop_drains_queue_and_cleans_up() -> None:
    name = unique_name()
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=name, max_batch_size=4, max_wait_ms=0)
    before = asyncio.all_tasks()
    await batcher.start()
    first = await block_worker(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
    await eventually(lambda: batcher.queue_depth == 10)
    stopper = asyncio.create_task(batcher.stop(drain=True))
    await asyncio.sleep(0)
    assert not batcher.running
    with pytest.raises(BatcherStopped):
        await batcher.submit(99)
    model.gate.set()
    assert await asyncio.gather(first, *tasks) == [2 * i for i in range(-1, 10)]
    await stopper
    assert asyncio.all_tasks() == before
    assert not any(t.name.startswith(f"batcher-{name}") for t in threading.enumerate())


async def test_stop_drain_timeout_fails_pending_requests() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_wait_ms=0)
    await batcher.start()
    first = await block_worker(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await eventually(lambda: batcher.queue_depth == 3)
    try:
        await batcher.stop(drain=True, timeout=0.05)
    finally:
        model.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert all(isinstance(r, BatcherStopped) for r in results)


async def test_stop_without_drain_fails_queued_at_once() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_wait_ms=0)
    await batcher.start()
    first = await block_worker(batcher, model)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await eventually(lambda: batcher.queue_depth == 3)
    stopper = asyncio.create_task(batcher.stop(drain=False))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, BatcherStopped) for r in results)
    assert not stopper.done()  # still waiting for the running batch
    model.gate.set()
    assert await first == -2
    await stopper
    assert model.batches == [[-1]]


async def test_parallel_batches_run_side_by_side_on_their_own_threads() -> None:
    name = unique_name()
    both_running = threading.Barrier(2, timeout=GUARD_S)  # one batch alone never passes it
    threads: list[str] = []

    def meets_the_other_batch(items: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        both_running.wait()
        return [2 * x for x in items]

    batcher = DynamicBatcher(meets_the_other_batch, name=name, parallel_batches=2)
    async with running(batcher):
        first = asyncio.create_task(batcher.submit(1))
        await eventually(lambda: len(threads) == 1)  # its batch runs (and waits at the barrier)
        assert await asyncio.gather(first, batcher.submit(2)) == [2, 4]
    assert len(set(threads)) == 2
    assert all(t.startswith(f"batcher-{name}") for t in threads)


async def test_stop_waits_for_every_running_batch_or_fails_them_all() -> None:
    gate = threading.Event()
    started: list[list[int]] = []

    def held(items: list[int]) -> list[int]:
        started.append(items)
        assert gate.wait(GUARD_S)
        return [2 * x for x in items]

    for drain_s, expect_results in ((GUARD_S, True), (0.05, False)):
        gate.clear()
        started.clear()
        batcher = DynamicBatcher(held, name=unique_name(), max_wait_ms=0, parallel_batches=2)
        await batcher.start()
        running_two = []
        for item in (1, 2):  # each arrives at an idle worker: two batches of one
            running_two.append(asyncio.create_task(batcher.submit(item)))
            await eventually(lambda: len(started) == item)  # noqa: B023
        queued = asyncio.create_task(batcher.submit(3))
        await eventually(lambda: batcher.queue_depth == 1)  # noqa: B023
        stopper = asyncio.create_task(batcher.stop(timeout=drain_s))
        if expect_results:
            gate.set()
            assert await asyncio.gather(*running_two, queued) == [2, 4, 6]
            await stopper
        else:
            await stopper  # two stuck batches: the stop gives up on both
            gate.set()
            results = await asyncio.gather(*running_two, queued, return_exceptions=True)
            assert all(isinstance(r, BatcherStopped) for r in results)


async def test_stop_is_idempotent() -> None:
    batcher = DynamicBatcher(Model(), name=unique_name())
    await batcher.start()
    assert await batcher.submit(1) == 2
    await asyncio.gather(batcher.stop(), batcher.stop())
    await batcher.stop(drain=False)
    with pytest.raises(BatcherStopped):
        await batcher.submit(1)
    with pytest.raises(RuntimeError):
        await batcher.start()


async def test_metrics_and_stats() -> None:
    name = unique_name()
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=name, max_wait_ms=0)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(i, cost=c)) for i, c in enumerate([4, 2, 2])]
        await eventually(lambda: batcher.queue_depth == 3)
        model.gate.set()
        await asyncio.gather(first, *tasks)
    assert sample("dikkat_batch_size_count", name) == 2
    assert sample("dikkat_batch_size_sum", name) == 4
    assert sample("dikkat_queue_wait_seconds_count", name) == 4
    assert sample("dikkat_batch_compute_seconds_count", name) == 2
    # Batch [-1]: 1/1; batch [4, 2, 2]: 8 / (4 * 3).
    assert sample("dikkat_padding_efficiency_sum", name) == pytest.approx(1 + 8 / 12)
    assert sample("dikkat_queue_depth", name) == 0
    stats = batcher.stats
    assert (stats.batches, stats.items, stats.batch_items) == (2, 4, 4)
    assert (stats.real_tokens, stats.computed_tokens) == (9, 13)
    assert stats.mean_batch_size == 2
    assert stats.padding_efficiency == pytest.approx(9 / 13)


async def test_each_caller_learns_the_size_of_the_batch_that_served_it() -> None:
    from dikkat.inference.batcher import last_batch_size

    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_batch_size=3, max_wait_ms=60_000)

    async def call(item: int) -> int:
        await batcher.submit(item)
        return last_batch_size.get()

    async with running(batcher, model):
        first = asyncio.create_task(call(-1))
        await eventually(lambda: len(model.batches) == 1)
        rest = [asyncio.create_task(call(i)) for i in (1, 2, 3)]
        await eventually(lambda: batcher.queue_depth == 3)
        model.gate.set()
        async with asyncio.timeout(GUARD_S):
            assert await first == 1
            assert await asyncio.gather(*rest) == [3, 3, 3]


async def test_padding_aware_cut_keeps_short_and_long_items_apart() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(
        model, name=unique_name(), max_batch_size=8, max_wait_ms=0, min_padding_efficiency=0.8
    )
    costs = [10, 120, 12, 100, 11, 110, 9]
    await run_costs_behind_a_blocked_batch(batcher, model, costs)
    assert model.batches == [[-1], [10, 11, 9, 12], [120, 110, 100]]
    assert batcher.stats.padding_efficiency > 0.8


async def test_the_cost_model_sets_the_token_budget_and_the_padding_figures() -> None:
    model = Model(block_first=True)
    costs = [10, 120, 12, 100, 11, 110, 9]
    budget = packed_tokens(costs)  # far below the 7 x 120 that padding would compute
    batcher = DynamicBatcher(
        model,
        name=unique_name(),
        max_batch_size=8,
        max_batch_tokens=budget,
        max_wait_ms=0,
        padded_tokens=packed_tokens,
    )
    await run_costs_behind_a_blocked_batch(batcher, model, costs)
    assert len(model.batches) == 2 and sorted(model.batches[1]) == sorted(costs)
    stats = batcher.stats
    assert stats.computed_tokens == packed_tokens([1]) + budget
    assert stats.padding_efficiency == (1 + sum(costs)) / stats.computed_tokens


async def test_capacity_check_refuses_before_any_work() -> None:
    model = Model(block_first=True)
    batcher = DynamicBatcher(model, name=unique_name(), max_batch_size=1, max_queue=1)
    async with running(batcher, model):
        first = await block_worker(batcher, model)
        batcher.check_capacity()
        queued = asyncio.create_task(batcher.submit(1))
        await eventually(lambda: batcher.queue_depth == 1)
        with pytest.raises(Overloaded):
            batcher.check_capacity()
        model.gate.set()
        assert await queued == 2
        await first
