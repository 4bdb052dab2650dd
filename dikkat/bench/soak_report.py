"""The soak report: the slopes of what was sampled after warm-up, the checks judged, and the
results as Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.table import Table

from dikkat.bench.common import fmt, markdown_table, render
from dikkat.bench.soak_sampling import METRICS, Sample

__all__ = ["format_report", "trend", "verdict"]

# A count is flat when its floor, the fewest seen in the second half of the window after warm-up,
# is less than this above the fewest seen in the first half. What leaks stays and lifts the floor
# (one object per retrain: about 12 in 12 minutes); what comes and goes lifts single samples:
# requests in flight, the pipes of a helper process, and the head tensors that the training worker
# hands over in shared memory (one fd each, 23 for a head, until the result is collected). Those
# swings would move a fitted line by several counts either way.
FLAT_LIMIT = 2.0
RSS_GROWTH_LIMIT_PCT = 5.0


def trend(samples: Sequence[Sample], warmup_s: float) -> dict[str, Any]:
    """Least-squares line of each metric over the samples after `warmup_s`: slope per hour, the
    change it makes over that window, and RSS growth in percent of the fitted start."""
    after = [s for s in samples if s.t_s >= warmup_s]
    result: dict[str, Any] = {"warmup_s": round(warmup_s, 1), "samples_after_warmup": len(after)}
    if len(after) < 3:
        result["metrics"] = None
        return result
    window_h = (after[-1].t_s - after[0].t_s) / 3600.0
    result["window_min"] = [round(after[0].t_s / 60.0, 2), round(after[-1].t_s / 60.0, 2)]
    t_h = np.array([s.t_s / 3600.0 for s in after])
    metrics: dict[str, Any] = {}
    for name in METRICS:
        values = np.array([getattr(s, name) for s in after], dtype=float)
        slope, intercept = np.polyfit(t_h, values, 1)
        start = slope * t_h[0] + intercept
        half = len(values) // 2
        metrics[name] = {
            "slope_per_hour": round(float(slope), 3),
            "fitted_change": round(float(slope * window_h), 3),
            "fitted_start": round(float(start), 2),
            "fitted_end": round(float(start + slope * window_h), 2),
            "first": float(values[0]),
            "last": float(values[-1]),
            "min": float(values.min()),
            "max": float(values.max()),
            "floor_rise": float(values[half:].min() - values[:half].min()),
        }
    rss = metrics["rss_mb"]
    result["metrics"] = metrics
    result["rss_growth_pct"] = round(100.0 * rss["fitted_change"] / rss["fitted_start"], 2)
    result["rss_growth_pct_last_vs_first"] = round(
        100.0 * (rss["last"] - rss["first"]) / rss["first"], 2
    )
    return result


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each True or False (None when too few samples to fit)."""
    metrics = report["trend"]["metrics"]

    def flat(name: str) -> bool | None:
        return None if metrics is None else metrics[name]["floor_rise"] < FLAT_LIMIT

    growth = report["trend"].get("rss_growth_pct")
    checks = {
        "tasks_flat": flat("tasks"),
        "fds_flat": flat("fds"),
        "threads_flat": flat("threads"),
        "rss_growth_under_5pct": None if growth is None else growth < RSS_GROWTH_LIMIT_PCT,
        "no_tracebacks": report["logs"]["tracebacks"] == 0,
        "every_request_answered": report["requests"]["unanswered"] == 0,
        "every_acknowledged_vote_stored": report["votes"]["missing"] == 0,
        "served_head_is_active_head": report["head"]["in_step"],
    }
    checks["passed"] = all(v is True for v in checks.values())
    return checks


def format_report(report: dict[str, Any]) -> str:
    """The slopes, the traffic and the checks as Markdown tables."""
    parts: list[Table | str] = []
    tr = report["trend"]
    parts.append(
        f"soak: {report['duration_s'] / 60:.1f} min, {len(report['samples'])} samples, "
        f"warm-up {tr['warmup_s'] / 60:.1f} min, encoder {report['machine']['encoder']}"
    )
    if tr["metrics"] is not None:
        slopes = markdown_table(
            "metric", ">per hour", ">fitted change", ">floor rise", ">first", ">last", ">min",
            ">max",
        )  # fmt: skip
        for name, label in METRICS.items():
            m = tr["metrics"][name]
            slopes.add_row(
                label,
                f"{m['slope_per_hour']:+.2f}",
                f"{m['fitted_change']:+.2f}",
                f"{m['floor_rise']:+.1f}",
                *(fmt(m[k]) for k in ("first", "last", "min", "max")),
            )
        parts += [slopes, f"RSS growth after warm-up: {tr['rss_growth_pct']:+.2f}% (fitted)"]
    memory = report.get("memory_at_end") or {}
    if memory.get("after_gc_and_trim_mb") is not None:
        parts.append(
            f"at the end: RSS {memory['rss_mb']:.0f} MiB, {memory['after_gc_and_trim_mb']:.0f} MiB "
            "after a garbage collection and malloc_trim (the rest was kept by the allocator)"
        )
    for kind, changes in (report.get("census_growth") or {}).items():
        if changes:
            shown = ", ".join(f"{name} {n:+d}" for name, n in list(changes.items())[:6])
            parts.append(
                f"{kind} changed between the censuses after warm-up and at the end: {shown}"
            )
    requests = markdown_table(
        "command", ">requests", ">ok", ">polite busy", ">error", ">unanswered", ">p50 ms", ">p99 ms"
    )
    for command, row in report["requests"]["by_command"].items():
        requests.add_row(
            f"/{command}",
            str(row["n"]),
            str(row["ok"]),
            str(row["polite"]),
            str(row["error"]),
            str(row["unanswered"]),
            fmt(row["p50_ms"], ".0f"),
            fmt(row["p99_ms"], ".0f"),
        )
    parts.append(requests)
    votes, retrains, logs = report["votes"], report["retrains"], report["logs"]
    parts.append(
        f"votes: {votes['pressed']} pressed, {votes['acknowledged']} acknowledged, "
        f"{votes['refused_busy']} refused politely; {votes['checked']} votes (user, prediction) "
        f"compared with the database before their /forget or at the end: {votes['missing']} "
        f"missing; {votes['unexpected_at_end']} stored without an acknowledgement"
    )
    parts.append(
        f"retrains: {retrains['requested']} /retrain, {retrains['started']} started, "
        f"{retrains['busy']} refused (one running); outcomes {retrains['outcomes']}; "
        f"heads activated by another process: {report['activations']['ok']} "
        f"({report['activations']['failed']} failed); write lock held "
        f"{report['locks']['held']} times ({report['locks']['long']} past the busy timeout)"
    )
    parts.append(
        f"log records WARNING+: {logs['records']}, tracebacks: {logs['tracebacks']}; "
        f"/forget: {report['forgets']}"
    )
    for group in logs["groups"]:
        parts.append(f"  {group['count']}x {group['level']} {group['logger']}: {group['message']}")
    checks = markdown_table("check", "result")
    for name, value in report["verdict"].items():
        checks.add_row(name, {True: "yes", False: "NO", None: "-"}[value])
    parts.append(checks)
    return render(*parts)
