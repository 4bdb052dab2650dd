"""The batching figure: throughput and latency against concurrency, per mode (and precision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_plot"]


def write_plot(report: dict[str, Any], path: Path) -> Path:
    """PNG: throughput vs concurrency per mode (ceiling as a line) and p99 latency; a row of the
    two per precision for a report of several."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    parts = report.get("precisions") or {"": report}
    fig = Figure(figsize=(10, 4.2 * len(parts)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(parts), 2, squeeze=False)
    for (name, part), (ax_tp, ax_lat) in zip(parts.items(), axes, strict=True):
        _plot_part(part, ax_tp, ax_lat)
        if name:
            ax_tp.set_title(f"{name} ({part['runtime']})", fontsize=9, loc="left")
    m = report["machine"]
    fig.suptitle(
        f"Dynamic batching on {m['cpu_cores']} CPU cores, torch threads {m['torch_threads']}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path


def _plot_part(report: dict[str, Any], ax_tp: Any, ax_lat: Any) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = report["results"]
    ceiling = sorted(
        ((r["concurrency"], r["throughput_rps"]) for r in rows if r["mode"] == "ceiling"),
        key=lambda point: point[0],
    )
    if ceiling:
        best = report["ceiling"]["best_batch_size"]
        ax_tp.plot(
            [c for c, _ in ceiling],
            [v for _, v in ceiling],
            color="black",
            linestyle="--",
            label=f"ceiling (sorted batches of {best})",
        )
    for mode, marker in (("unbatched", "o"), ("batched", "s")):
        points = sorted(
            ((r["concurrency"], r) for r in rows if r["mode"] == mode), key=lambda p: p[0]
        )
        cs = [c for c, _ in points]
        ax_tp.plot(cs, [r["throughput_rps"] for _, r in points], marker=marker, label=mode)
        for key, style in (("p99_ms", "-"), ("p50_ms", ":")):
            lat = [(c, r[key]) for c, r in points if r[key] is not None]
            ax_lat.plot(
                [c for c, _ in lat],
                [v for _, v in lat],
                marker=marker,
                linestyle=style,
                color=ax_tp.lines[-1].get_color(),
                label=f"{mode} {key[:3]}",
            )
    ticks = sorted({r["concurrency"] for r in rows if r["concurrency"] is not None})
    for ax in (ax_tp, ax_lat):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("concurrent clients (closed loop)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax_tp.set_ylabel("throughput (req/s)")
    ax_tp.set_ylim(bottom=0)
    ax_lat.set_ylabel("latency (ms), p99 solid, p50 dotted")
    ax_lat.set_yscale("log")
    # plain numbers: the log formatter writes mathtext, and dikkat.viz turns mathtext off
    ax_lat.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax_lat.yaxis.set_minor_formatter(NullFormatter())
