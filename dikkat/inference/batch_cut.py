"""The requests waiting in a DynamicBatcher, and the rule that cuts the next batch from them."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class Pending(Generic[T, R]):
    """One submitted item, waiting for its result on `future`."""

    item: T
    cost: int
    seq: int
    enqueued: float
    future: asyncio.Future[R]
    batch_size: int = 0


def longest_times_count(costs: Sequence[int]) -> int:
    """Tokens a padded forward computes: every item padded to the longest."""
    return max(costs) * len(costs)


def cut_batch(
    waiting: Collection[Pending[T, R]],
    *,
    limit: int,
    max_batch_tokens: int,
    min_padding_efficiency: float,
    padded_tokens: Callable[[Sequence[int]], int],
) -> tuple[list[Pending[T, R]], bool]:
    """Oldest item plus the closest-cost others that fit; also says if the batch is full.

    `waiting` is in arrival order and not empty; `limit` caps the items, `max_batch_tokens` the
    model's cost of the batch as `padded_tokens` counts it. The flag is True when waiting longer
    cannot grow the batch: it reached `limit` or the token budget, or an item was left out of it.
    """
    queued = iter(waiting)
    oldest = next(queued)
    batch, costs = [oldest], [oldest.cost]
    nearest = heapq.nsmallest(limit - 1, queued, key=lambda p: (abs(p.cost - oldest.cost), p.seq))
    for p in nearest:
        new_costs = [*costs, p.cost]
        real = sum(new_costs)
        padded = max(new_costs) * len(new_costs)  # padding bounds every cost model from above
        if padded > max_batch_tokens or real / padded < min_padding_efficiency:
            padded = padded_tokens(new_costs)  # the bound is not enough: ask the model
        if padded > max_batch_tokens:
            break
        if real / padded < min_padding_efficiency:
            continue  # too much padding: it goes into a later batch of its own length
        batch.append(p)
        costs = new_costs
    full = len(batch) >= limit or padded_tokens([*costs, 1]) > max_batch_tokens
    return batch, full or len(batch) < len(waiting)


def fail_all(group: Sequence[Pending[T, R]], make_error: Callable[[], BaseException]) -> None:
    """Fail every still-waiting item, each with its own exception instance."""
    for p in group:
        if not p.future.done():
            p.future.set_exception(make_error())
