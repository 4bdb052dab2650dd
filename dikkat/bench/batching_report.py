"""The batching report: the issue's targets judged, a row per encoder precision, and the results
as text tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table

from dikkat.bench.common import fmt, ratio, render

__all__ = ["evaluate_targets", "format_table", "precision_summary"]

TARGET_CONCURRENCY = 64  # where batched/ceiling is judged
CEILING_TARGET = 0.90

COLUMNS = (  # header, row key, number format; after the mode column
    ("clients", "concurrency", ".1f"),
    ("req/s", "throughput_rps", ".1f"),
    ("p50 ms", "p50_ms", ".1f"),
    ("p99 ms", "p99_ms", ".1f"),
    ("mean batch", "mean_batch_size", ".2f"),
    ("padding eff", "padding_efficiency", ".3f"),
    ("tok/req", "padded_tokens_per_request", ".1f"),
    ("cost ms", "cost_ms", ".2f"),
    ("wait ms", "queue_wait_ms", ".1f"),
    ("forward ms", "forward_ms", ".1f"),
)


def _find(rows: Sequence[dict[str, Any]], mode: str, concurrency: int | None) -> dict | None:
    for row in rows:
        if row["mode"] == mode and row["concurrency"] == concurrency:
            return row
    return None


def _in_turn(report: dict[str, Any], concurrency: int) -> dict[str, Any]:
    """The batched and ceiling windows taken in turn at this concurrency ({} if none)."""
    found = (p for p in report.get("interleaved", []) if p["concurrency"] == concurrency)
    return next(found, {})


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's CPU targets, each with its figure and whether it is met (None: not measured).

    batched/ceiling is the median over windows taken in turn of each window's ratio of real
    tokens per second, not one row's answers/s over another's.
    """
    rows, overload = report["results"], report["overload"]
    b64, u64 = _find(rows, "batched", 64) or {}, _find(rows, "unbatched", 64) or {}
    b1, u1 = _find(rows, "batched", 1) or {}, _find(rows, "unbatched", 1) or {}

    def target(name: str, value: float | None, limit: float, higher: bool) -> dict[str, Any]:
        met = None if value is None else (value >= limit if higher else value <= limit)
        return {"target": name, "value": value, "limit": limit, "met": met}

    def reported(name: str, value: float | None, limit: float | None = None) -> dict[str, Any]:
        return {"target": name, "value": value, "limit": limit, "met": None}

    return [
        target(
            "c=64 batched/ceiling throughput >= 0.90 (median of windows in turn)",
            _in_turn(report, TARGET_CONCURRENCY).get("ratio_median"),
            CEILING_TARGET,
            True,
        ),
        target(
            "c=1 batched p50 / unbatched p50 <= 1.15 (paired run)",
            report.get("paired_c1", {}).get("ratio"),
            1.15,
            False,
        ),
        reported(
            "c=1 batched p50 / unbatched p50, separate windows (reported)",
            ratio(b1.get("p50_ms"), u1.get("p50_ms")),
            1.15,
        ),
        target(
            "c=64 batched padding efficiency >= 0.80", b64.get("padding_efficiency"), 0.80, True
        ),
        target("overload rejection p99 <= 5 ms", overload.get("reject_p99_ms"), 5.0, False),
        {
            "target": "overload memory bounded (queue, in-flight bounded; peak RSS +<= 25%), MiB",
            "value": overload.get("peak_rss_growth_mb"),
            "limit": None,
            "met": overload.get("memory_bounded"),
        },
        reported(
            "c=64 batched/unbatched throughput (reported, not targeted)",
            ratio(b64.get("throughput_rps"), u64.get("throughput_rps")),
        ),
    ]


def _results(report: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("mode", no_wrap=True)
    for header, _, _ in COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for r in report["results"]:
        mode = r["mode"] + (f" b={r['batch_size']}" if r["mode"] == "ceiling" else "")
        table.add_row(mode, *(fmt(r.get(key), spec) for _, key, spec in COLUMNS))
    return table


def _targets(report: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    table.add_column("target")
    table.add_column("value", justify="right")
    table.add_column("", justify="left")
    for t in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "info"}[t["met"]]
        table.add_row(t["target"], fmt(t["value"], ".3f"), mark)
    return table


def _window_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for point in report.get("interleaved", []):
        ratios = ", ".join(
            f"{fmt(w['ratio'], '.2f')}{'c' if w['first'] == 'ceiling' else 'b'}"
            for w in point["windows"]
        )
        lines.append(
            f"  c={point['concurrency']}: {ratios}; median {fmt(point['ratio_median'], '.3f')}"
        )
    return lines


def _compute_line(report: dict[str, Any]) -> str:
    c = report["compute"]
    peak, per_text = c["fp32_peak"], c["mflops_per_text"]
    return (
        f"compute: ceiling {c['ceiling_rps']:.1f} texts/s over all its windows x"
        f" {per_text['total']:.1f} MFLOP per text (linear {per_text['linear']:.1f} + attention"
        f" {per_text['attention']:.1f}; {c['non_embedding_params']:,} non-embedding"
        f" parameters) = {c['ceiling_gflops']:.1f} GFLOP/s, {fmt(c['share_of_fp32_peak'], '.2f')}"
        f" of the fp32 peak {fmt(peak['gflops'])} GFLOP/s ({peak['cores']} cores x"
        f" {fmt(peak['clock_ghz'], '.2f')} GHz x {peak['flops_per_cycle_per_core']},"
        f" {peak['simd']} assumed)"
    )


def _notes(report: dict[str, Any]) -> list[str]:
    sweep = (
        f"{s['batch_size']}: {s['throughput_rps']:.1f} req/s (pad {s['padding_efficiency']:.3f})"
        for s in report["ceiling"]["sweep"]
    )
    pc, o = report["paired_c1"], report["overload"]
    windows = report.get("interleaved") or [{}]
    return [
        "tok/req: padded tokens computed per request; cost ms: tokenizing one request (the service"
        " does it on the event loop; timed once per text before the run); wait ms: queue time per"
        " request; forward ms: one forward call",
        "",
        "ceiling sweep by batch size (two rounds, sizes in turn): "
        + ", ".join(sweep)
        + f"; best {report['ceiling']['best_batch_size']}",
        f"batched/ceiling per window ({len(windows[0].get('windows', []))} windows of"
        f" {fmt(windows[0].get('window_s'), '.2f')} s each at every concurrency, taken in turn;"
        " b: batched first, c: ceiling first; real tokens per second):",
        *_window_lines(report),
        _compute_line(report),
        f"c=1 paired ({pc['pairs']} pairs, same text through both, alternating order): p50"
        f" unbatched {fmt(pc['unbatched_p50_ms'])} ms, batched {fmt(pc['batched_p50_ms'])} ms;"
        f" median per-pair extra {fmt(pc['median_extra_ms'])} ms",
        f"overload: {o['factor']:g}x = {o['rate_rps']:.0f} req/s, open loop, {o['duration_s']:g} s"
        f" into max_queue {o['max_queue']}: {o['accepted']} accepted, {o['rejected']} rejected",
        f"  rejection p50/p99 {fmt(o['reject_p50_ms'], '.2f')}/{fmt(o['reject_p99_ms'], '.2f')}"
        f" ms from arrival (sentiment() call alone p99 {fmt(o['reject_call_p99_ms'], '.3f')} ms;"
        f" event-loop lag p99 {fmt(o['loop_lag_p99_ms'], '.1f')} ms, idle"
        f" {fmt(o['loop_lag_idle_p99_ms'], '.1f')} ms)",
        f"  queue depth max {o['max_queue_depth_seen']}, accepted in flight max"
        f" {o['max_accepted_in_flight']} (bound {o['in_flight_bound']});"
        f" RSS {o['rss_before_mb']:.0f} -> {o['rss_after_mb']:.0f}"
        f" MiB (max {o['rss_max_first_half_mb']:.0f} in the first half,"
        f" {o['rss_max_second_half_mb']:.0f} in the second), peak {o['peak_rss_before_mb']:.0f} ->"
        f" {o['peak_rss_after_mb']:.0f} MiB",
    ]


def _machine_line(m: dict[str, Any]) -> str:
    return (
        f"machine: {m['cpu_cores']} cores, torch {m['torch']} with {m['torch_threads']} threads"
        f" (OMP_WAIT_POLICY={m['env']['OMP_WAIT_POLICY'] or 'unset'}),"
        f" load average {m['loadavg_start'][0]:.1f} -> {m.get('loadavg_end', ['?'])[0]}"
    )


def precision_summary(parts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per precision: ceiling, batched/ceiling at c=64, c=1 latency, starts, GFLOP/s."""
    rows = []
    for name, part in parts.items():
        point = _in_turn(part, TARGET_CONCURRENCY)
        batched = _find(part["results"], "batched", TARGET_CONCURRENCY) or {}
        compute, start = part["compute"], part.get("start", {})
        median = point.get("ratio_median")
        rows.append(
            {
                "precision": name,
                "runtime": part.get("runtime"),
                "ceiling_rps": compute["ceiling_rps"],
                "batched_c64_rps": batched.get("throughput_rps"),
                "batched_over_ceiling_c64": median,
                "batched_over_ceiling_c64_windows": [w["ratio"] for w in point.get("windows", [])],
                "batched_over_ceiling_met": None if median is None else median >= CEILING_TARGET,
                "paired_c1_batched_p50_ms": part["paired_c1"]["batched_p50_ms"],
                "first_start_s": start.get("first_start_s"),
                "warm_start_s": start.get("warm_start_s"),
                "ceiling_gflops": compute["ceiling_gflops"],
                "share_of_fp32_peak": compute["share_of_fp32_peak"],
            }
        )
    return rows


SUMMARY_COLUMNS = (  # header, summary key, number format
    ("ceiling texts/s", "ceiling_rps", ".1f"),
    ("batched c=64 req/s", "batched_c64_rps", ".1f"),
    ("batched/ceiling c=64", "batched_over_ceiling_c64", ".3f"),
    ("c=1 p50 ms", "paired_c1_batched_p50_ms", ".1f"),
    ("first start s", "first_start_s", ".1f"),
    ("warm start s", "warm_start_s", ".1f"),
    ("GFLOP/s", "ceiling_gflops", ".1f"),
    ("of fp32 peak", "share_of_fp32_peak", ".2f"),
)


def _summary(report: dict[str, Any]) -> list[Table | str]:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("precision", no_wrap=True)
    for header, _, _ in SUMMARY_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("windows", no_wrap=True)
    table.add_column("", no_wrap=True)
    for r in report["summary"]:
        mark = {True: "met", False: "MISSED", None: "-"}[r["batched_over_ceiling_met"]]
        windows = " ".join(fmt(x, ".2f") for x in r["batched_over_ceiling_c64_windows"])
        table.add_row(
            f"{r['precision']} ({r['runtime']})",
            *(fmt(r.get(key), spec) for _, key, spec in SUMMARY_COLUMNS),
            windows,
            mark,
        )
    peak = next(iter(report["precisions"].values()))["compute"]["fp32_peak"]
    return [
        "per precision (batched/ceiling: median of the c=64 windows, target >= 0.90; c=1 p50:"
        " batched, paired run; starts: the encoder in this process, first on a fresh model"
        " folder, then warm; GFLOP/s: the ceiling's, useful FLOPs only):",
        table,
        f"fp32 peak: {peak['assumption']}; {peak['clock_source']}",
    ]


def _part(report: dict[str, Any]) -> list[Table | str]:
    return [_results(report), *_notes(report), "", "targets:", _targets(report)]


def format_table(report: dict[str, Any]) -> str:
    """The results as a text table, then the ceiling sizes and windows, the achieved GFLOP/s, the
    overload test and targets; per precision, then a row each, for a `run_precisions` report."""
    if "precisions" not in report:
        return render(*_part(report), _machine_line(report["machine"]))
    parts: list[Table | str] = []
    for name, part in report["precisions"].items():
        start = part["start"]
        parts += [
            f"== {name} ({part['runtime']}, {part['device']}; first start"
            f" {start['first_start_s']} s, warm {start['warm_start_s']} s; load average"
            f" {part['loadavg'][0][0]:.1f} -> {part['loadavg'][1][0]:.1f}) ==",
            *_part(part),
            "",
        ]
    return render(*parts, *_summary(report), _machine_line(report["machine"]))
