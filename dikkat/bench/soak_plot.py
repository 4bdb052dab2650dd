"""The soak figure: RSS, asyncio tasks, open fds and threads against minutes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from dikkat.bench.soak_sampling import METRICS, Sample

__all__ = ["soak_png"]


def soak_png(report: dict[str, Any]) -> bytes:
    """RSS, asyncio tasks, open fds and threads against minutes; warm-up shaded, the fitted line
    after it dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = [Sample(**s) for s in report["samples"]]
    warmup_min = report["trend"]["warmup_s"] / 60.0
    minutes = np.array([s.t_s / 60.0 for s in samples])
    figure = Figure(figsize=(9.0, 8.5), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    panels = (
        ("RSS (MiB)", ("rss_mb",)),
        ("asyncio tasks", ("tasks",)),
        ("open fds", ("fds", "shm_fds")),
        ("threads", ("threads", "os_threads")),
    )
    axes_list = figure.subplots(len(panels), 1, sharex=True)
    fitted = report["trend"]["metrics"] or {}
    window = report["trend"].get("window_min")
    for axes, (ylabel, names) in zip(axes_list, panels, strict=True):
        for name in names:
            values = [getattr(s, name) for s in samples]
            (line,) = axes.plot(minutes, values, ".-", markersize=3, label=METRICS[name])
            if name in fitted:
                m = fitted[name]
                fit = [m["fitted_start"], m["fitted_end"]]
                label = f"fit {m['slope_per_hour']:+.1f}/h"
                axes.plot(window, fit, "--", color=line.get_color(), label=label)
        axes.axvspan(0, warmup_min, color="0.85", alpha=0.6, lw=0)
        axes.set_ylabel(ylabel)
        if names[0] != "rss_mb":  # counts from zero; memory around its level
            top = max(getattr(s, name) for s in samples for name in names)
            axes.set_ylim(bottom=0, top=1.5 * top)
        axes.grid(True, alpha=0.3)
        where = "lower right" if names[0] == "rss_mb" else "upper left"
        axes.legend(loc=where, ncol=2, fontsize=7, framealpha=0.9)
    axes_list[-1].set_xlabel("minutes (warm-up shaded)")
    growth = report["trend"].get("rss_growth_pct")
    title = f"Soak: {report['duration_s'] / 60:.0f} min of mixed traffic"
    if growth is not None:
        title += f", RSS {growth:+.1f}% after warm-up"
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
