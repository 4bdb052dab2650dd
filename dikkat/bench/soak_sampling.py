"""The soak benchmark's looks at its own process: memory, file descriptors, asyncio tasks and
threads every few seconds, and a census of what they are at two moments."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "METRICS",
    "Sample",
    "Sampler",
    "census",
    "census_growth",
    "memory_in_use_mb",
    "samples_json",
    "take_sample",
]

METRICS = {  # sample field -> what the report and the figure call it
    "rss_mb": "RSS (MiB)",
    "tasks": "asyncio tasks",
    "fds": "open file descriptors",
    "shm_fds": "of them in /dev/shm (tensors from the training worker)",
    "threads": "Python threads",
    "os_threads": "OS threads (torch's included)",
}


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


def samples_json(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """The samples as JSON rows."""
    return [asdict(s) for s in samples]
