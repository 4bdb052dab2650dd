"""Sequence packing: several texts share one row of a forward, each attending only to itself.

Padding every text of a mixed batch to the longest wastes most of the compute (a 10-token tweet
next to a 128-token review); packing fills the rows instead, so a batch of any mix costs about
its real tokens.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Packing", "pack", "packed_tokens"]


@dataclass(frozen=True)
class Packing:
    """Which items share each row (indices into the batch, in row order) and the row width."""

    rows: tuple[tuple[int, ...], ...]
    width: int

    @property
    def computed_tokens(self) -> int:
        """Tokens the forward computes: rows x width."""
        return len(self.rows) * self.width

    @property
    def shares_rows(self) -> bool:
        """True when some row holds more than one item (otherwise it is plain padding)."""
        return len(self.rows) < sum(len(row) for row in self.rows)

    def tensors(
        self, ids: Sequence[Sequence[int]], pad_id: int, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """input_ids, position_ids, the additive (rows, 1, W, W) attention mask and segment ids.

        Position ids restart at 0 for each item; `segments` holds the item index of every
        position (-1 for padding). Padding positions attend only to themselves.
        """
        n_rows, width = len(self.rows), self.width
        lengths = np.fromiter((len(item_ids) for item_ids in ids), dtype=np.int64, count=len(ids))
        starts = np.zeros(len(ids), dtype=np.int64)  # each item's first slot in the flat rows
        for r, row in enumerate(self.rows):
            offset = r * width
            for item in row:
                starts[item] = offset
                offset += lengths[item]
        item_of_token = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
        positions_flat = np.arange(len(item_of_token), dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        slots = torch.from_numpy(starts[item_of_token] + positions_flat)
        input_ids = torch.full((n_rows * width,), pad_id, dtype=torch.long)
        input_ids[slots] = torch.from_numpy(
            np.fromiter(itertools.chain.from_iterable(ids), np.int64)
        )
        positions = torch.zeros(n_rows * width, dtype=torch.long)
        positions[slots] = torch.from_numpy(positions_flat)
        segments = torch.full((n_rows * width,), -1, dtype=torch.long)
        segments[slots] = torch.from_numpy(item_of_token)
        input_ids, positions, segments = (
            t.view(n_rows, width) for t in (input_ids, positions, segments)
        )
        same = segments.unsqueeze(2) == segments.unsqueeze(1)  # (R, W, W)
        padding = segments < 0
        same &= ~padding.unsqueeze(2) & ~padding.unsqueeze(1)
        same |= torch.eye(width, dtype=torch.bool)
        mask = torch.zeros((n_rows, 1, width, width), dtype=dtype)
        mask.masked_fill_(~same.unsqueeze(1), torch.finfo(dtype).min)
        return input_ids, positions, mask, segments


def pack(costs: Sequence[int], width: int | None = None) -> Packing:
    """First-fit decreasing into rows of `width` tokens (default: the longest item)."""
    if not costs:
        return Packing((), 0)
    width = max(costs) if width is None else width
    if max(costs) > width:
        raise ValueError(f"an item of {max(costs)} tokens does not fit a row of {width}")
    rows: list[list[int]] = []
    free: list[int] = []
    for item in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        for r, room in enumerate(free):
            if costs[item] <= room:
                rows[r].append(item)
                free[r] -= costs[item]
                break
        else:
            rows.append([item])
            free.append(width - costs[item])
    return Packing(tuple(tuple(row) for row in rows), width)


def packed_tokens(costs: Sequence[int]) -> int:
    """Tokens a packed forward computes for items of these costs (never more than padding)."""
    return pack(costs).computed_tokens
