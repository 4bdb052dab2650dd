"""Length groups: a padded batch cut into runs of similar length, one run per parallel worker.

A runtime that pads every text to the longest (CTranslate2) wastes the least when texts of
similar length share a forward; cutting a batch into groups of neighbouring lengths, one per
worker, both parallelises it and pads each group only to its own longest.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["group_by_length", "grouped_tokens"]


def group_by_length(costs: Sequence[int], groups: int) -> list[list[int]]:
    """Item indices in at most `groups` runs of neighbouring lengths (shortest run first), cut
    so the costliest run (its longest x its size) is as cheap as it can be."""
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    order = sorted(range(len(costs)), key=lambda i: (costs[i], i))
    if len(order) <= 1 or groups == 1:
        return [order] if order else []
    sorted_costs = [costs[i] for i in order]
    low, high = sorted_costs[-1], sorted_costs[-1] * len(order)  # one item; all in one run
    while low < high:  # the least makespan that `groups` runs can reach
        middle = (low + high) // 2
        if len(_runs(sorted_costs, middle)) <= groups:
            high = middle
        else:
            low = middle + 1
    return [order[start:end] for start, end in _runs(sorted_costs, low)]


def grouped_tokens(costs: Sequence[int], groups: int) -> int:
    """Tokens a grouped forward computes: each run padded to its own longest."""
    return sum(max(costs[i] for i in run) * len(run) for run in group_by_length(costs, groups))


def _runs(sorted_costs: Sequence[int], makespan: int) -> list[tuple[int, int]]:
    """Greedy runs over ascending costs, each as long as it stays within `makespan`."""
    runs, start = [], 0
    for end, cost in enumerate(sorted_costs):
        if cost * (end - start + 1) > makespan:
            runs.append((start, end))
            start = end
    runs.append((start, len(sorted_costs)))
    return runs
