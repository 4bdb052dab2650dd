"""Sentiment metrics: accuracy, macro-F1, per-class scores and confusion, typed and as text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dikkat.models.head import LABELS, SentimentHead
from dikkat.training.data import LABEL_INDEX, label_indices


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall, F1 and support of one class."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Metrics:
    """A head's scores on labelled texts; macro_f1 averages the classes present in the gold labels.

    confusion rows are true labels, columns predicted (LABELS order); binary_accuracy (negative vs
    positive) is set when the gold labels have no neutral.
    """

    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    binary_accuracy: float | None = None

    def summary(self) -> dict[str, Any]:
        """{"n", "accuracy", "macro_f1"}: what run records and version metadata keep."""
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1}

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (`dikkat evaluate sentiment --json`, head metadata)."""
        data = asdict(self)
        if self.binary_accuracy is None:
            del data["binary_accuracy"]
        return data


def evaluate(
    head: SentimentHead | None,
    X: np.ndarray,
    y: Sequence[str] | np.ndarray,
    *,
    proba: np.ndarray | None = None,
) -> Metrics:
    """Scores of `head` (or of the given class probabilities `proba`) against labels `y`."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = label_indices(y)
    if proba is None:
        proba = head.predict_proba(X) if len(y_true) else np.zeros((0, len(LABELS)))
    y_pred = proba.argmax(axis=1)
    every = list(range(len(LABELS)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=every, zero_division=0
    )
    present = sorted(set(y_true.tolist()))
    binary_accuracy = None
    neutral = LABEL_INDEX["neutral"]
    if len(y_true) and neutral not in present:
        pos, neg = LABEL_INDEX["positive"], LABEL_INDEX["negative"]
        binary = np.where(proba[:, pos] > proba[:, neg], pos, neg)
        binary_accuracy = float((binary == y_true).mean())
    return Metrics(
        n=int(len(y_true)),
        accuracy=float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        macro_f1=float(np.mean([f1[i] for i in present])) if present else 0.0,
        per_class={
            label: ClassScores(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
            for i, label in enumerate(LABELS)
        },
        confusion=confusion_matrix(y_true, y_pred, labels=every).tolist(),
        binary_accuracy=binary_accuracy,
    )


def format_report(metrics: Metrics) -> str:
    """Plain-text report: headline figures, per-class table, confusion matrix."""
    lines = [f"n = {metrics.n}", f"accuracy        {metrics.accuracy:.4f}"]
    lines.append(f"macro-F1        {metrics.macro_f1:.4f}")
    if metrics.binary_accuracy is not None:
        lines.append(f"binary accuracy {metrics.binary_accuracy:.4f}  (negative vs positive)")
    lines += ["", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, row in metrics.per_class.items():
        lines.append(
            f"{label:<10}{row.precision:>10.4f}{row.recall:>10.4f}{row.f1:>10.4f}{row.support:>10d}"
        )
    cells = [len(str(v)) for row in metrics.confusion for v in row]
    width = max(len(label) for label in LABELS) + 2
    width = max(width, *(cell + 2 for cell in cells))
    lines += ["", "confusion (rows = true, columns = predicted)"]
    lines.append(" " * 10 + "".join(f"{label:>{width}}" for label in LABELS))
    for label, row in zip(LABELS, metrics.confusion, strict=True):
        lines.append(f"{label:<10}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)
