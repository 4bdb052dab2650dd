"""What every benchmark shares: machine facts, percentiles and ratios, process counters, output."""

from __future__ import annotations

import io
import json
import os
import platform
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich import box
from rich.console import Console
from rich.table import Table

__all__ = [
    "cpu_cores",
    "cpu_seconds",
    "fmt",
    "loadavg",
    "machine_info",
    "memory_mb",
    "ms",
    "percentiles",
    "ratio",
    "render",
    "write_json",
]

RATIO_DIGITS = 3


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (NaN where the OS has none)."""
    values = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return [round(x, 2) for x in values]


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask; the machine's count elsewhere)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info(**extra: Any) -> dict[str, Any]:
    """The machine block of every report; `loadavg_end` is added by the caller at the end."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_cores": cpu_cores(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
        "loadavg_start": loadavg(),
        **extra,
    }


def percentiles(
    samples: Sequence[float], qs: Sequence[float] = (50, 99)
) -> tuple[float | None, ...]:
    """The `qs` percentiles of `samples` (None each when there are none)."""
    if not len(samples):
        return (None,) * len(qs)
    return tuple(float(v) for v in np.percentile(np.asarray(samples), list(qs)))


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded to RATIO_DIGITS digits; None when either is missing or b is zero."""
    return round(a / b, RATIO_DIGITS) if a is not None and b else None


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, rounded to the microsecond."""
    return None if seconds is None else round(seconds * 1000.0, 3)


def memory_mb() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process in MiB."""
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return {"rss_mb": values.get("VmRSS", peak), "peak_rss_mb": values.get("VmHWM", peak)}


def cpu_seconds() -> float:
    """User + system CPU seconds this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fmt(value: object, spec: str = ".1f") -> str:
    """A table cell: '-' for None, floats with `spec`, anything else as str."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def render(*parts: Table | str, width: int = 200) -> str:
    """Tables and lines as plain text (no colour), trailing blanks stripped."""
    console = Console(
        file=io.StringIO(), width=width, color_system=None, highlight=False, emoji=False
    )
    for part in parts:
        console.print(part, markup=False, soft_wrap=isinstance(part, str))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def write_json(report: dict[str, Any], path: Path) -> Path:
    """Write the report as indented UTF-8 JSON, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def markdown_table(*columns: str) -> Table:
    """A Markdown table; a column whose name starts with '>' is right-aligned."""
    table = Table(box=box.MARKDOWN, pad_edge=True)
    for name in columns:
        right = name.startswith(">")
        table.add_column(name.lstrip(">"), justify="right" if right else "left", no_wrap=True)
    return table
