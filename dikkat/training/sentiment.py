"""Training the sentiment head on frozen, cached encoder features: the loss, the training loop,
and the metadata that ties a head to its encoder. The CSV flows are in `sentiment_csv`."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from dikkat.models.head import LABELS, HeadMeta, SentimentHead
from dikkat.training.data import data_hash, label_indices
from dikkat.training.metrics import Metrics, evaluate

if TYPE_CHECKING:
    import pandas as pd

    from dikkat.models.encoder import SentenceEncoder

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A trained head, its per-epoch history and its validation metrics."""

    head: SentimentHead
    history: list[dict[str, float]]
    best_epoch: int
    metrics: Metrics | None  # on the validation data, None without any
    seconds: float = 0.0
    class_weights: list[float] | None = None


@contextmanager
def _threads(n: int | None):
    previous = torch.get_num_threads()
    torch.set_num_threads(n or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def auto_class_weights(y: np.ndarray, ratio: float = 1.2) -> np.ndarray | None:
    """Balanced weights n / (k * count) when max/min class count exceeds `ratio`, else None."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    if counts.sum() == 0:
        return None
    present = counts > 0
    if counts[present].max() / counts[present].min() <= ratio:
        return None
    weights = np.ones(len(LABELS))
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


POLAR = [LABELS.index("negative"), LABELS.index("positive")]


class SentimentLoss(nn.Module):
    """Cross-entropy over three classes, and over negative-vs-positive alone for polarity-only
    rows (from two-class sets), so that those rows never push probability away from neutral.
    `label_smoothing` (both losses) keeps the head from growing sure of negative vs positive on
    the two-class sets, so that mild texts from other domains can still come out neutral. Rows
    with soft targets (a teacher's three-class probabilities, e.g. the shipped head's on its
    rehearsal buffer) learn `distill` of their loss from them (KL divergence), the rest from
    their label."""

    def __init__(
        self,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        distill: float = 0.0,
    ) -> None:
        super().__init__()
        self.class_weights = class_weights
        self.label_smoothing = label_smoothing
        self.distill = distill

    def forward(
        self,
        logits: torch.Tensor,
        y: torch.Tensor,
        polar: torch.Tensor,
        row_weights: torch.Tensor | None = None,
        soft: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, 3) logits, (B,) label indices, (B,) bool polarity-only flags -> mean loss
        (weighted by `row_weights` when given; `soft`: (B, 3) target probabilities, all-zero
        rows have none)."""
        smoothing = self.label_smoothing
        full = nn.functional.cross_entropy(
            logits, y, self.class_weights, reduction="none", label_smoothing=smoothing
        )
        two_way = nn.functional.cross_entropy(
            logits[:, POLAR], (y == POLAR[1]).long(), reduction="none", label_smoothing=smoothing
        )  # softmax renormalised over negative and positive
        per_row = torch.where(polar, two_way, full)
        if soft is not None and self.distill > 0:
            log_p = torch.log_softmax(logits, dim=-1)
            kl = (soft * (torch.log(soft.clamp_min(1e-8)) - log_p)).sum(dim=-1)
            mixed = (1 - self.distill) * per_row + self.distill * kl
            per_row = torch.where(soft.sum(dim=-1) > 0, mixed, per_row)
        if row_weights is None:
            return per_row.mean()
        return (per_row * row_weights).sum() / row_weights.sum()


def predictions_correct(logits: torch.Tensor, y: torch.Tensor, polar: torch.Tensor) -> torch.Tensor:
    """Right answers: the 3-class argmax, or for polarity-only rows the larger of neg / pos."""
    three_way = logits.argmax(-1) == y
    two_way = torch.tensor(POLAR)[logits[:, POLAR].argmax(-1)] == y
    return torch.where(polar, two_way, three_way)


def _epoch_stats(
    head: SentimentHead,
    loss_fn: SentimentLoss,
    x: torch.Tensor,
    y: torch.Tensor,
    polar: torch.Tensor,
    row_weights: torch.Tensor | None,
) -> tuple[float, float]:
    head.eval()
    with torch.inference_mode():
        logits = head(x)
        loss = float(loss_fn(logits, y, polar, row_weights))
        acc = float(predictions_correct(logits, y, polar).float().mean())
    return loss, acc


def _per_row(values: Sequence[Any] | np.ndarray | None, n: int, dtype, what: str):
    if values is None:
        return None
    array = torch.from_numpy(np.array(values, dtype=dtype))  # a copy: inputs may be read-only
    if array.shape != (n,):
        raise ValueError(f"{what} have shape {tuple(array.shape)}, need ({n},)")
    return array


def _polar_flags(flags: Sequence[bool] | np.ndarray | None, n: int) -> torch.Tensor:
    polar = _per_row(flags, n, bool, "polarity-only flags")
    return torch.zeros(n, dtype=torch.bool) if polar is None else polar


def train_head(
    X_train: np.ndarray,
    y_train: Sequence[str] | np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: Sequence[str] | np.ndarray | None = None,
    *,
    epochs: int = 100,
    patience: int = 8,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    class_weights: str | Sequence[float] | None = "auto",
    torch_threads: int | None = None,
    init: SentimentHead | None = None,
    polar_train: Sequence[bool] | np.ndarray | None = None,
    polar_val: Sequence[bool] | np.ndarray | None = None,
    weights_train: Sequence[float] | np.ndarray | None = None,
    weights_val: Sequence[float] | np.ndarray | None = None,
    label_smoothing: float = 0.0,
    keep: Literal["accuracy", "loss"] = "accuracy",
    soft_train: np.ndarray | None = None,
    distill: float = 0.0,
) -> TrainResult:
    """Adam + cross-entropy; early stop on val loss, keep the best-val-accuracy checkpoint
    (`keep="loss"`: the lowest-val-loss one, the loss that early stopping watches).

    Without validation data it trains exactly `epochs` epochs and keeps the last one. The head is
    tiny, so None means one CPU thread (more threads only add synchronisation, ~10x slower on a
    busy 2-core machine); torch's global thread setting is restored afterwards. `init` starts
    from a copy of that head's weights (it must take the same features) instead of from scratch.
    Rows flagged in `polar_train` / `polar_val` come from two-class sets: they teach negative vs
    positive only (SentimentLoss); "auto" class weights are counted on the three-class rows.
    `weights_train` / `weights_val` weigh rows in the loss (e.g. users' corrections above the rest).
    `label_smoothing` applies to the training loss only (validation loss and accuracy are plain),
    and so do `soft_train` ((n, 3) target probabilities, all-zero rows have none) and `distill`
    (the share of those rows' loss learnt from them, see SentimentLoss).
    """
    if keep not in ("accuracy", "loss"):
        raise ValueError(f"keep must be 'accuracy' or 'loss', not {keep!r}")
    started = time.perf_counter()
    ytr = label_indices(y_train)
    polar = _polar_flags(polar_train, len(ytr))
    row_w = _per_row(weights_train, len(ytr), np.float32, "row weights")
    soft = None
    if soft_train is not None:
        soft = torch.from_numpy(np.array(soft_train, dtype=np.float32))
        if soft.shape != (len(ytr), len(LABELS)):
            raise ValueError(f"soft targets have shape {tuple(soft.shape)}, need ({len(ytr)}, 3)")
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    if class_weights == "auto":
        weights = auto_class_weights(ytr[~polar.numpy()])
    elif class_weights is None:
        weights = None
    else:
        weights = np.asarray(class_weights, dtype=np.float64)
    with _threads(torch_threads):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        xt = torch.as_tensor(np.asarray(X_train, np.float32))
        yt = torch.as_tensor(ytr)
        if init is not None and init.dim != xt.shape[1]:
            raise ValueError(f"init head takes {init.dim} features, the data has {xt.shape[1]}")
        head = copy.deepcopy(init).cpu() if init is not None else SentimentHead(xt.shape[1])
        optimiser = torch.optim.Adam(head.parameters(), lr=lr)
        weight_t = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        loss_fn = SentimentLoss(weight_t, label_smoothing, distill)
        plain_loss = SentimentLoss(weight_t)  # what the epochs are judged by
        if has_val:
            xv = torch.as_tensor(np.asarray(X_val, np.float32))
            yv = torch.as_tensor(label_indices(y_val))
            polar_v = _polar_flags(polar_val, len(yv))
            row_w_v = _per_row(weights_val, len(yv), np.float32, "row weights")
        history: list[dict[str, float]] = []
        best_state, best_epoch, best_score = None, 0, -math.inf
        best_loss, stale = math.inf, 0
        for epoch in range(1, epochs + 1):
            head.train()
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                if len(idx) < 2:  # BatchNorm needs two rows in training mode
                    continue
                optimiser.zero_grad()
                batch_w = None if row_w is None else row_w[idx]
                batch_soft = None if soft is None else soft[idx]
                loss_fn(head(xt[idx]), yt[idx], polar[idx], batch_w, batch_soft).backward()
                optimiser.step()
            train_loss, train_acc = _epoch_stats(head, plain_loss, xt, yt, polar, row_w)
            row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
            if has_val:
                val_loss, val_acc = _epoch_stats(head, plain_loss, xv, yv, polar_v, row_w_v)
                row.update(val_loss=val_loss, val_acc=val_acc)
                score = val_acc if keep == "accuracy" else -val_loss
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    best_state = copy.deepcopy(head.state_dict())
                if val_loss < best_loss - 1e-6:
                    best_loss, stale = val_loss, 0
                else:
                    stale += 1
            history.append(row)
            if has_val and stale >= patience:
                break
        if best_state is not None:
            head.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        head.eval()
        metrics = evaluate(head, X_val, y_val) if has_val else None
    return TrainResult(
        head=head,
        history=history,
        best_epoch=best_epoch,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        class_weights=None if weights is None else [float(w) for w in weights],
    )


def make_meta(
    encoder: SentenceEncoder, metrics: dict[str, Any], df: pd.DataFrame, **extra
) -> HeadMeta:
    """Head metadata tying it to the encoder that made its features."""
    return HeadMeta(
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        pooling=encoder.pooling,
        max_length=encoder.max_length,
        metrics=metrics,
        data_hash=data_hash(df),
        extra={"features": encoder.feature_key, **extra},
    )
