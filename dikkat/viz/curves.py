"""Training curves of the sentiment head: accuracy and loss per epoch, train vs validation."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN, DPI = 11.0, 4.5, 100  # 1100 x 450 px
TRAIN_COLOR, VAL_COLOR, BEST_COLOR = "#1f77b4", "#d62728", "#7f7f7f"


def training_curves_png(
    history: Sequence[Mapping[str, float]],
    *,
    best_epoch: int | None = None,
    title: str = "Sentiment head training",
) -> bytes:
    """Two panels (accuracy, loss) over epochs; validation drawn when the history has it."""
    if not history:
        raise ValueError("history is empty: nothing to plot")
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    epochs = [row["epoch"] for row in history]
    panels = (("acc", "Accuracy", "accuracy"), ("loss", "Loss (cross-entropy)", "loss"))
    for axes, (key, name, ylabel) in zip(figure.subplots(1, 2), panels, strict=True):
        axes.plot(
            epochs,
            [row[f"train_{key}"] for row in history],
            color=TRAIN_COLOR,
            marker="o",
            markersize=3,
            label="train",
        )
        if all(f"val_{key}" in row for row in history):
            axes.plot(
                epochs,
                [row[f"val_{key}"] for row in history],
                color=VAL_COLOR,
                marker="o",
                markersize=3,
                label="validation",
            )
        if best_epoch:
            axes.axvline(
                best_epoch,
                color=BEST_COLOR,
                linestyle="--",
                linewidth=1,
                label=f"kept: epoch {best_epoch}",
            )
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="best")
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
