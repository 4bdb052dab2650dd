"""Sentiment metrics: accuracy, macro-F1, per-class scores and confusion, as a dict and as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dikkat.models.head import LABELS, SentimentHead
from dikkat.training.data import LABEL_INDEX, label_indices


def evaluate(
    head: SentimentHead | None,
    X: np.ndarray,
    y: Sequence[str] | np.ndarray,
    *,
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """{"n", "accuracy", "macro_f1", "per_class", "confusion"} (+ "binary_accuracy" w/o neutral).

    macro_f1 averages over the classes present in y; confusion rows are true, columns predicted.
    """
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
    metrics: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(np.mean([f1[i] for i in present])) if present else 0.0,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(LABELS)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=every).tolist(),
    }
    neutral = LABEL_INDEX["neutral"]
    if len(y_true) and neutral not in present:
        pos, neg = LABEL_INDEX["positive"], LABEL_INDEX["negative"]
        binary = np.where(proba[:, pos] > proba[:, neg], pos, neg)
        metrics["binary_accuracy"] = float((binary == y_true).mean())
    return metrics


def format_report(metrics: Mapping[str, Any]) -> str:
    """Plain-text report: headline figures, per-class table, confusion matrix."""
    lines = [f"n = {metrics['n']}", f"accuracy        {metrics['accuracy']:.4f}"]
    lines.append(f"macro-F1        {metrics['macro_f1']:.4f}")
    if "binary_accuracy" in metrics:
        lines.append(f"binary accuracy {metrics['binary_accuracy']:.4f}  (negative vs positive)")
    lines += ["", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, row in metrics["per_class"].items():
        lines.append(
            f"{label:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>10d}"
        )
    cells = [len(str(v)) for row in metrics["confusion"] for v in row]
    width = max(len(label) for label in LABELS) + 2
    width = max(width, *(cell + 2 for cell in cells))
    lines += ["", "confusion (rows = true, columns = predicted)"]
    lines.append(" " * 10 + "".join(f"{label:>{width}}" for label in LABELS))
    for label, row in zip(LABELS, metrics["confusion"], strict=True):
        lines.append(f"{label:<10}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)
