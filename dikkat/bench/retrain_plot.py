"""The retrain benchmark's figure: macro-F1 of the active head and each candidate over feedback."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

__all__ = ["learning_curve_png", "write_plot"]


def learning_curve_png(report: dict[str, Any]) -> bytes:
    """Macro-F1 of the active head and of each candidate against feedback items, on the held-out
    store reviews (left) and on the seed corpus's evaluation set that decides promotion (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curve = report["learning_curve"]
    points = curve["points"]
    figure = Figure(figsize=(9.0, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    x = list(range(len(points)))  # one slot per step: 0, 100, 300, 1000 would crowd
    panels = (
        (
            "held_out_active",
            "held_out_candidate",
            f"Store reviews, {curve['held_out_rows']} held out",
        ),
        ("seed_eval_active", "seed_eval_after", "Seed-corpus evaluation set (decides promotion)"),
    )
    for axes, (active_key, candidate_key, title) in zip(figure.subplots(1, 2), panels, strict=True):
        axes.plot(x, [_get(p.get(active_key)) for p in points], "o-", label="active head")
        for i, p in enumerate(points[1:], start=1):
            promoted = p["status"] == "promoted"
            axes.plot(
                i,
                _get(p.get(candidate_key)),
                marker="o" if promoted else "x",
                color="#2ca02c" if promoted else "#d62728",
                fillstyle="none",
                markersize=9,
                linestyle="none",
            )
        axes.plot([], [], "o", color="#2ca02c", fillstyle="none", label="candidate, promoted")
        axes.plot([], [], "x", color="#d62728", label="candidate, rejected")
        axes.set_title(title, fontsize=10)
        axes.set_xticks(x, [f"{p['n']:,}" for p in points])
        axes.set_xlabel("labelled feedback items (cumulative)")
        axes.set_ylabel("macro-F1")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="best", fontsize=8)
    figure.suptitle(f"Retraining from feedback ({report['machine']['encoder'].split('|')[0]})")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _get(metrics: dict[str, float] | None) -> float:
    return math.nan if not metrics else metrics["macro_f1"]


def write_plot(report: dict[str, Any], path: Path) -> Path:
    """Write the learning-curve PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(learning_curve_png(report))
    return path
