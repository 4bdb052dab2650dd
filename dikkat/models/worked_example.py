"""The classic 3-token self-attention worked example, computed with torch, step by step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

INPUTS = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]
W_KEY = [[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]]
W_QUERY = [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]]
W_VALUE = [[0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]]
# The softmax as the well-known illustration rounds it (one decimal, rows still sum to 1).
ROUNDED_SOFTMAX = [[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.9, 0.1]]


@dataclass(frozen=True)
class AttentionResult:
    """Scores, softmax weights, per-value contributions and outputs of one attention variant."""

    scores: torch.Tensor  # (T, T) query i against key j
    weights: torch.Tensor  # (T, T) softmax over j; rows sum to 1
    weighted: torch.Tensor  # (T, T, d) weights[i, j] * values[j]
    outputs: torch.Tensor  # (T, d) sum over j of weighted[i, j]


@dataclass(frozen=True)
class WorkedExample:
    """Every intermediate: the exact, the rounded and the 1/sqrt(d) scaled variant."""

    inputs: torch.Tensor  # (T, d_in) = (3, 4)
    w_key: torch.Tensor  # (d_in, d) = (4, 3)
    w_query: torch.Tensor  # (d_in, d)
    w_value: torch.Tensor  # (d_in, d)
    keys: torch.Tensor  # (T, d)
    queries: torch.Tensor  # (T, d)
    values: torch.Tensor  # (T, d)
    exact: AttentionResult  # softmax(Q·Kᵀ)
    rounded: AttentionResult  # the illustration's rounded softmax
    scaled: AttentionResult  # softmax(Q·Kᵀ / sqrt(d)), as real transformers do
    scale: float  # sqrt(d)

    @property
    def scores(self) -> torch.Tensor:
        """Q·Kᵀ, shared by the exact and the rounded variant."""
        return self.exact.scores


def _attend(scores: torch.Tensor, weights: torch.Tensor, values: torch.Tensor) -> AttentionResult:
    weighted = weights.unsqueeze(-1) * values.unsqueeze(0)  # (T, T, d)
    return AttentionResult(scores, weights, weighted, weighted.sum(dim=1))  # outputs (T, d)


def worked_example(dtype: torch.dtype = torch.float64) -> WorkedExample:
    """Compute keys, queries, values, scores, softmax, weighted values and outputs."""
    x = torch.tensor(INPUTS, dtype=dtype)  # (3, 4)
    w_key = torch.tensor(W_KEY, dtype=dtype)  # (4, 3)
    w_query = torch.tensor(W_QUERY, dtype=dtype)  # (4, 3)
    w_value = torch.tensor(W_VALUE, dtype=dtype)  # (4, 3)
    keys = x @ w_key  # (3, 3)
    queries = x @ w_query  # (3, 3)
    values = x @ w_value  # (3, 3)
    scores = queries @ keys.T  # (3, 3)
    scale = math.sqrt(keys.size(-1))
    scaled_scores = scores / scale  # (3, 3)
    return WorkedExample(
        inputs=x,
        w_key=w_key,
        w_query=w_query,
        w_value=w_value,
        keys=keys,
        queries=queries,
        values=values,
        exact=_attend(scores, torch.softmax(scores, dim=-1), values),
        rounded=_attend(scores, torch.tensor(ROUNDED_SOFTMAX, dtype=dtype), values),
        scaled=_attend(scaled_scores, torch.softmax(scaled_scores, dim=-1), values),
        scale=scale,
    )
