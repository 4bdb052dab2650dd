"""The retrain report as Markdown tables: wall time and phases, latency idle vs retrain, curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from dikkat.bench.common import fmt, markdown_table, render
from dikkat.bench.retrain_bot import f1_text

__all__ = ["format_report"]


def _median_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]


def _dominant(phases: dict[str, float]) -> str:
    total = sum(phases.values()) or 1.0
    name, seconds = max(phases.items(), key=lambda kv: kv[1])
    return f"{name} ({100 * seconds / total:.0f}%)"


def _timing(report: dict[str, Any]) -> list[Table | str]:
    walls = markdown_table(
        ">feedback items",
        ">retrain wall s (median, min-max)",
        ">runs",
        "status",
        ">re-encoded texts",
        ">training rows",
        ">epochs",
        "dominant phase",
    )
    for row in report["timing"]:
        runs, median = row["runs"], _median_run(row["runs"])
        walls.add_row(
            f"{row['feedback_items']:,}",
            f"{row['wall_s_median']:.2f} ({row['wall_s_min']:.2f}-{row['wall_s_max']:.2f})",
            str(len(runs)),
            "/".join(sorted({r["status"] for r in runs})),
            str(sum(r["encoded_texts"] for r in runs)),
            fmt(median["train_rows"]),
            fmt(median["epochs"]),
            _dominant(median["phases_s"]),
        )
    sizes = [row["feedback_items"] for row in report["timing"]]
    phases = markdown_table("phase", *(f">{n:,} items" for n in sizes))
    medians = [_median_run(row["runs"])["phases_s"] for row in report["timing"]]
    for phase in medians[0]:
        phases.add_row(phase, *(fmt(p.get(phase), ".3f") for p in medians))
    return [
        walls,
        "",
        "Phases of the median run (seconds, as the retrain job records them):",
        phases,
    ]


def _latency(lat: dict[str, Any]) -> list[Table | str]:
    table = markdown_table(
        "window",
        ">seconds",
        ">requests",
        ">req/s",
        ">p50 ms",
        ">p90 ms",
        ">p99 ms",
        ">max ms",
        ">process CPU (cores)",
    )
    for name, key in (("idle", "idle"), ("during retrain", "during_retrain")):
        w = lat[key]
        table.add_row(
            name,
            fmt(w["seconds"], ".2f"),
            str(w["requests"]),
            fmt(w["throughput_rps"], ".1f"),
            *(fmt(w[k], ".0f") for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
            fmt(w["process_cpu_cores"], ".2f"),
        )
    met = lat["p99_ratio"] is not None and lat["p99_ratio"] <= lat["target_ratio"]
    walls = ", ".join(f"{r['wall_s']:.1f}" for r in lat["retrains_in_window"])
    return [
        "",
        f"Serving latency, {lat['clients']} closed-loop /sentiment client(s) through the Router, "
        f"idle vs during {len(lat['retrains_in_window'])} back-to-back retrain(s) of "
        f"{lat['feedback_items']:,} feedback items:",
        table,
        f"p99 ratio {lat['p99_ratio']} (target <= {lat['target_ratio']}: "
        f"{'met' if met else 'missed'}), p50 ratio {lat['p50_ratio']}; "
        f"retrain wall s under load: {walls}",
    ]


def _curve(curve: dict[str, Any]) -> list[Table | str]:
    if "skipped" in curve:
        return ["", curve["skipped"]]
    table = markdown_table(
        ">feedback items",
        "retrain",
        "held-out feedback F1 active -> candidate (n)",
        "seed-eval F1 active -> candidate",
        ">held-out F1 active",
        ">held-out F1 candidate",
        ">held-out acc. active",
        ">retrain s",
    )
    for p in curve["points"]:
        seed = (
            f"{f1_text(p.get('seed_eval_before'))} -> {f1_text(p.get('seed_eval_after'))}"
            if p["n"]
            else f"{f1_text(p.get('seed_eval_active'))} (shipped head; its file says "
            f"{f1_text(p.get('seed_eval_recorded'))})"
        )
        accuracy = p["held_out_active"]["accuracy"] if p["held_out_active"] else None
        after = p.get("feedback_eval_after")
        feedback = (
            f"{f1_text(p.get('feedback_eval_before'))} -> {f1_text(after)} ({after['n']:.0f})"
            if after
            else "-"
        )
        table.add_row(
            f"{p['n']:,}",
            p["status"],
            feedback,
            seed,
            f1_text(p["held_out_active"]),
            f1_text(p.get("held_out_candidate")),
            fmt(accuracy, ".3f"),
            fmt(p.get("wall_s"), ".1f"),
        )
    return [
        "",
        f"Learning curve: {curve['data']}; macro-F1 on the {curve['held_out_rows']} held-out "
        "store reviews; the promotion rule reads the held-out share of feedback and the seed "
        "corpus's fixed evaluation set:",
        table,
    ]


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables: retrain wall time, latency idle vs retrain, learning curve."""
    m = report["machine"]
    parts: list[Table | str] = [
        f"Retrain benchmark ({report.get('mode', '?')}), encoder {m['encoder']} on {m['device']}, "
        f"{m['cpu_cores']} cores, torch threads {m['torch_threads']}, load average "
        f"{m['loadavg_start'][0]} at start, {m.get('loadavg_end', ['?'])[0]} at end",
        f"Data: {report['data']}",
        "",
        *_timing(report),
    ]
    for lat in report.get("latency") or []:
        parts += _latency(lat)
    parts += _curve(report["learning_curve"])
    parts += ["", f"Total {report.get('total_s', '?')} s."]
    return render(*parts)
