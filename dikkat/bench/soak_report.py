"""The soak benchmark's measurements of the process itself: samples of memory, file descriptors,
asyncio tasks and threads, their slopes after warm-up, the log records written meanwhile, the
verdict, the table and the figure."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import io
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from dikkat.bench.common import fmt, markdown_table, render

__all__ = [
    "METRICS",
    "LogCapture",
    "census_growth",
    "memory_in_use_mb",
    "Sample",
    "Sampler",
    "format_report",
    "soak_png",
    "take_sample",
    "trend",
    "verdict",
]

METRICS = {  # sample field -> what the report and the figure call it
    "rss_mb": "RSS (MiB)",
    "tasks": "asyncio tasks",
    "fds": "open file descriptors",
    "shm_fds": "of them in /dev/shm (tensors from the training worker)",
    "threads": "Python threads",
    "os_threads": "OS threads (torch's included)",
}
# A count is flat when its floor, the fewest seen in the second half of the window after warm-up,
# is less than this above the fewest seen in the first half. What leaks stays and lifts the floor
# (one object per retrain: about 12 in 12 minutes); what comes and goes lifts single samples:
# requests in flight, the pipes of a helper process, and the head tensors that the training worker
# hands over in shared memory (one fd each, 23 for a head, until the result is collected). Those
# swings would move a fitted line by several counts either way.
FLAT_LIMIT = 2.0
RSS_GROWTH_LIMIT_PCT = 5.0


@dataclass(frozen=True)
class Sample:
    """One look at the process, `t_s` seconds after the traffic started."""

    t_s: float
    rss_mb: float
    fds: int
    shm_fds: int
    tasks: int
    threads: int
    os_threads: int


def _proc_status() -> dict[str, str]:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: rest.strip() for key, _, rest in (line.partition(":") for line in lines)}


def take_sample(t_s: float) -> Sample:
    """RSS (VmRSS), open fds (/proc/self/fd), asyncio tasks of the running loop, threads."""
    status = _proc_status()
    targets = _fd_targets()
    return Sample(
        t_s=round(t_s, 2),
        rss_mb=round(int(status.get("VmRSS", "0 kB").split()[0]) / 1024.0, 1),
        fds=len(targets),
        shm_fds=sum(1 for target in targets if target.startswith("/dev/shm/")),
        tasks=len(asyncio.all_tasks()),
        threads=threading.active_count(),
        os_threads=int(status.get("Threads", "0")),
    )


def _fd_targets() -> list[str]:
    """What each open file descriptor points to (the listing's own one left out)."""
    targets = []
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets


def census() -> dict[str, dict[str, int]]:
    """What the counted things are: open fds by kind (socket, pipe, a file's name), asyncio tasks
    by coroutine, threads by name without their number, and the most numerous Python objects
    the garbage collector tracks, by type. Two of these show what grew."""
    fds = Counter(
        target.split(":[")[0] if ":[" in target else re.sub(r"_[0-9_]+", "_N", Path(target).name)
        for target in _fd_targets()
    )
    tasks = Counter(getattr(task.get_coro(), "__qualname__", "?") for task in asyncio.all_tasks())
    threads = Counter(re.sub(r"[0-9]+", "N", thread.name) for thread in threading.enumerate())
    objects = Counter(type(o).__qualname__ for o in gc.get_objects()).most_common(40)
    return {"objects": dict(objects)} | {
        name: dict(c.most_common())
        for name, c in (("fds", fds), ("tasks", tasks), ("threads", threads))
    }


class Sampler:
    """Takes a sample at start, every `every_s` seconds, and at stop (on the event loop); a
    census at the first sample from `census_at_s` on and at the last."""

    def __init__(
        self,
        every_s: float,
        on_sample: Callable[[Sample], None] | None = None,
        census_at_s: float = 0.0,
    ) -> None:
        self.every_s = every_s
        self.on_sample = on_sample
        self.census_at_s = census_at_s
        self.samples: list[Sample] = []
        self.censuses: dict[str, Any] = {}
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._take()
        self._task = asyncio.create_task(self._run(), name="soak-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._take()

    def _take(self) -> None:
        sample = take_sample(time.monotonic() - self._started)
        self.samples.append(sample)
        if sample.t_s >= self.census_at_s and "after_warmup" not in self.censuses:
            self.censuses["after_warmup"] = {"t_s": sample.t_s, **census()}
        elif self._task is None and self.samples[1:]:  # the last sample, from stop()
            self.censuses["last"] = {"t_s": sample.t_s, **census()}
        if self.on_sample is not None:
            self.on_sample(sample)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self._take()


def census_growth(censuses: dict[str, Any], top: int = 12) -> dict[str, dict[str, int]]:
    """What changed between the census after warm-up and the last one, biggest changes first."""
    if "after_warmup" not in censuses or "last" not in censuses:
        return {}
    first, last = censuses["after_warmup"], censuses["last"]
    growth: dict[str, dict[str, int]] = {}
    for kind in ("fds", "tasks", "threads", "objects"):
        a, b = first.get(kind, {}), last.get(kind, {})
        changes = {name: b.get(name, 0) - a.get(name, 0) for name in a.keys() | b.keys()}
        ranked = sorted(((n, d) for n, d in changes.items() if d), key=lambda x: -abs(x[1]))
        growth[kind] = dict(ranked[:top])
    return growth


def memory_in_use_mb() -> dict[str, float | None]:
    """RSS now, and after a full garbage collection and glibc's malloc_trim(0), which hands freed
    heap pages back to the system: what is left is memory in use, the difference was kept by
    the allocator for reuse (None where there is no glibc)."""
    before = take_sample(0).rss_mb
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return {"rss_mb": before, "after_gc_and_trim_mb": None}
    return {"rss_mb": before, "after_gc_and_trim_mb": take_sample(0).rss_mb}


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


class LogCapture(logging.Handler):
    """WARNING+ records of every logger, and exceptions that end a thread, grouped."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._hook = threading.excepthook

    def emit(self, record: logging.LogRecord) -> None:
        has_trace = bool(record.exc_info and record.exc_info[0] is not None)
        key = (record.levelname, record.name, str(record.msg)[:160])
        group = self.groups.setdefault(
            key,
            {
                "level": key[0],
                "logger": key[1],
                "message": key[2],
                "count": 0,
                "tracebacks": 0,
                "example": None,
            },
        )
        group["count"] += 1
        group["tracebacks"] += has_trace
        if group["example"] is None:
            text = record.getMessage()
            if has_trace:
                text += "\n" + logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            group["example"] = text[-3000:]

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        logging.getLogger("threading").error(
            "thread %s died",
            getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        )

    def __enter__(self) -> LogCapture:
        logging.getLogger().addHandler(self)
        threading.excepthook = self._thread_died
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
        threading.excepthook = self._hook

    def summary(self) -> dict[str, Any]:
        groups = sorted(self.groups.values(), key=lambda g: -g["count"])
        return {
            "records": sum(g["count"] for g in groups),
            "tracebacks": sum(g["tracebacks"] for g in groups),
            "groups": groups,
        }


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


def samples_json(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    return [asdict(s) for s in samples]
