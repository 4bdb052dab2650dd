"""Length groups: every item in one run of neighbouring lengths, the costliest run as cheap as any
cut into that many runs can make it."""

from __future__ import annotations

import itertools
import random

import pytest

from dikkat.models.length_groups import group_by_length, grouped_tokens


def _makespan(costs: list[int], runs: list[list[int]]) -> int:
    return max(max(costs[i] for i in run) * len(run) for run in runs)


def _best_makespan(costs: list[int], groups: int) -> int:
    """The least makespan over every cut of the sorted items into at most `groups` runs."""
    ordered = sorted(costs)
    best = ordered[-1] * len(ordered)
    for k in range(1, min(groups, len(ordered))):
        for cuts in itertools.combinations(range(1, len(ordered)), k):
            bounds = [0, *cuts, len(ordered)]
            runs = [ordered[a:b] for a, b in itertools.pairwise(bounds)]
            best = min(best, max(run[-1] * len(run) for run in runs))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_runs_cover_every_item_once_and_reach_the_least_makespan(seed: int) -> None:
    rng = random.Random(seed)
    costs = [rng.randint(3, 128) for _ in range(rng.randint(1, 9))]
    groups = rng.randint(1, 4)
    runs = group_by_length(costs, groups)
    assert sorted(i for run in runs for i in run) == list(range(len(costs)))
    assert 1 <= len(runs) <= groups
    flat = [costs[i] for run in runs for i in run]
    assert flat == sorted(flat)  # neighbouring lengths, shortest run first
    assert _makespan(costs, runs) == _best_makespan(costs, groups)


def test_grouped_tokens_pad_each_run_to_its_own_longest() -> None:
    assert group_by_length([3, 7, 5], 2) == [[0, 2], [1]]
    assert grouped_tokens([3, 7, 5], 2) == 5 * 2 + 7
    assert grouped_tokens([3, 7, 5], 1) == 7 * 3  # one run: plain padding
    assert grouped_tokens([4, 4], 8) == 4 + 4
    assert group_by_length([], 2) == []


def test_at_least_one_group() -> None:
    with pytest.raises(ValueError):
        group_by_length([1, 2], 0)
