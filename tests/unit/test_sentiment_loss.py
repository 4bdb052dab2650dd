"""The head's loss: label smoothing, soft targets from a teacher, and which checkpoint is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dikkat.training.sentiment import SentimentLoss, train_head


def _data(n=120, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    y = np.array(["negative", "neutral", "positive"])[rng.integers(0, 3, n)]
    X[:, 0] += (y == "positive") * 2 - (y == "negative") * 2
    return X, y


def test_label_smoothing_changes_the_loss_of_both_row_kinds():
    logits = torch.tensor([[3.0, 0.0, -3.0], [3.0, 0.0, -3.0]])
    y = torch.tensor([0, 0])
    polar = torch.tensor([False, True])
    plain = SentimentLoss()(logits, y, polar)
    smooth = SentimentLoss(label_smoothing=0.2)(logits, y, polar)
    assert smooth > plain
    for row in range(2):
        one = slice(row, row + 1)
        assert SentimentLoss(label_smoothing=0.2)(
            logits[one], y[one], polar[one]
        ) > SentimentLoss()(logits[one], y[one], polar[one])


def test_soft_targets_replace_a_share_of_the_loss_and_zero_rows_have_none():
    logits = torch.tensor([[1.0, 0.5, -1.0], [0.2, 0.1, 0.3]])
    y = torch.tensor([0, 2])
    polar = torch.tensor([True, True])
    soft = torch.tensor([[0.2, 0.7, 0.1], [0.0, 0.0, 0.0]])
    per_plain = [
        SentimentLoss()(logits[i : i + 1], y[i : i + 1], polar[i : i + 1]) for i in range(2)
    ]
    full = SentimentLoss(distill=1.0)
    kl = (soft[0] * (soft[0].log() - torch.log_softmax(logits[0], -1))).sum()
    assert torch.isclose(full(logits[:1], y[:1], polar[:1], None, soft[:1]), kl)
    assert torch.isclose(full(logits[1:], y[1:], polar[1:], None, soft[1:]), per_plain[1])
    half = SentimentLoss(distill=0.5)(logits[:1], y[:1], polar[:1], None, soft[:1])
    assert torch.isclose(half, 0.5 * per_plain[0] + 0.5 * kl)
    logits.requires_grad_(True)
    full(logits, y, polar, None, soft).backward()
    assert torch.isfinite(logits.grad).all()


def test_keep_loss_keeps_the_lowest_validation_loss_epoch():
    X, y = _data()
    result = train_head(X[:90], y[:90], X[90:], y[90:], epochs=25, patience=30, seed=0, keep="loss")
    losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    with pytest.raises(ValueError):
        train_head(X, y, epochs=1, keep="f1")


def test_soft_train_shape_is_checked():
    X, y = _data()
    with pytest.raises(ValueError):
        train_head(X, y, epochs=1, soft_train=np.zeros((3, 3)), distill=0.5)
