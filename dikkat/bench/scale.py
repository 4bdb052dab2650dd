"""`dikkat bench scale`: /sentiment latency in-process vs through Ray Serve replicas, one run.

Ray binds the machine's interfaces: on a machine that must not be reachable, run the benchmark
inside a loopback-only namespace (`unshare --net`, then `ip link set lo up`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from dikkat.app import App
from dikkat.bench.common import fmt, machine_info, ms, percentiles, ratio, render, write_json
from dikkat.config import Settings
from dikkat.training.data import load_labelled_csv, seed_corpus_path

CONCURRENCIES = (1, 8)


async def _latencies(call: Callable[[str], Any], texts: Sequence[str], clients: int) -> list[float]:
    """Closed-loop clients, each sending its share of `texts` one after another."""
    samples: list[float] = []

    async def client(share: Sequence[str]) -> None:
        for text in share:
            started = time.perf_counter()
            await call(text)
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(client(texts[i::clients]) for i in range(clients)))
    return samples


async def _measure(call: Callable[[str], Any], texts: Sequence[str]) -> dict[int, dict]:
    await _latencies(call, texts[:16], 1)  # warm-up: first batches, first handle calls
    rows = {}
    for clients in CONCURRENCIES:
        started = time.perf_counter()
        samples = await _latencies(call, texts, clients)
        p50, p99 = percentiles(samples)
        rows[clients] = {
            "p50_ms": ms(p50),
            "p99_ms": ms(p99),
            "req_per_s": round(len(samples) / (time.perf_counter() - started), 1),
        }
    return rows


async def _local(settings: Settings, texts: Sequence[str]) -> dict[int, dict]:
    async with App(settings.model_copy(update={"role": "all"})) as app:
        assert app.service is not None
        return await _measure(app.service.sentiment, texts)


async def _remote(settings: Settings, texts: Sequence[str]) -> dict[str, Any]:
    from dikkat.scale.ray_backend import RayBackend

    backend = await RayBackend.connect(settings)
    try:
        rows = await _measure(backend.sentiment, texts)
    finally:
        await backend.close()
    sizes = backend.batch_sizes
    return {
        "ray": rows,
        "served_by": dict(backend.served_by),
        "ray_mean_batch": sum(sizes) / max(len(sizes), 1),
    }


def _measure_both(settings: Settings, texts: Sequence[str], say: Callable[[str], None]) -> dict:
    """Ray is started, used and stopped from the main thread (its signal handlers need it)."""
    from ray import serve

    from dikkat.ray_replicas import build_app
    from dikkat.scale.ray_serve import connect

    say("local: one process, in-process InferenceService")
    local = asyncio.run(_local(settings, texts))
    say(f"ray: {settings.ray_replicas} Serve replica(s), a RayBackend in this process")
    connect(settings)
    serve.start(proxy_location="Disabled")
    serve.run(build_app(), name=settings.ray_app, route_prefix=None)
    try:
        remote = asyncio.run(_remote(settings, texts))
    finally:
        serve.shutdown()
    return {"local": local, **remote}


def run_scale_benchmark(
    *, requests: int = 200, json_path: Path | None = None, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Local vs Ray p50/p99 at 1 and 8 clients with the configured encoder, in one run."""
    import ray

    texts = load_labelled_csv(seed_corpus_path())["text"].tolist()[:requests]
    with tempfile.TemporaryDirectory(prefix="dikkat-bench-scale-") as scratch:
        environment = {
            "DIKKAT_DB_PATH": str(Path(scratch) / "dikkat.db"),
            "DIKKAT_HEAD_POLL_S": "0",
        }
        os.environ.update({k: v for k, v in environment.items() if k not in os.environ})
        settings = Settings()
        machine = machine_info(replicas=settings.ray_replicas)
        try:
            measured = _measure_both(settings, texts, say)
        finally:
            if ray.is_initialized():
                ray.shutdown()
    added = {
        clients: {
            "p50_ms": _difference(
                measured["ray"][clients]["p50_ms"], measured["local"][clients]["p50_ms"]
            ),
            "p50_ratio": ratio(
                measured["ray"][clients]["p50_ms"], measured["local"][clients]["p50_ms"]
            ),
        }
        for clients in CONCURRENCIES
    }
    report = {
        "machine": machine,
        "encoder": settings.sentiment_encoder,
        "requests_per_point": len(texts),
        "replicas": settings.ray_replicas,
        "replica_cpus": settings.ray_replica_cpus,
        "replica_torch_threads": settings.ray_torch_threads,
        **measured,
        "ray_added": added,
        "target": "Ray's added p50 at 1 client <= 15 ms",
    }
    if json_path is not None:
        write_json(report, json_path)
    return report


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def format_report(report: dict[str, Any]) -> str:
    """The latency table and Ray's added p50."""
    table = Table(title="/sentiment latency: in-process vs Ray Serve")
    for column in ("path", "clients", "p50 ms", "p99 ms", "req/s"):
        table.add_column(column, justify="right")
    for path in ("local", "ray"):
        for clients, row in report[path].items():
            table.add_row(
                path, str(clients), fmt(row["p50_ms"]), fmt(row["p99_ms"]), fmt(row["req_per_s"])
            )
    added = report["ray_added"]
    lines = [
        f"Ray's added p50: {fmt(added[1]['p50_ms'])} ms at 1 client "
        f"({fmt(added[1]['p50_ratio'], '.2f')}x), {fmt(added[8]['p50_ms'])} ms at 8 "
        f"({fmt(added[8]['p50_ratio'], '.2f')}x); target: {report['target']}",
        f"replicas served: {report['served_by']}; mean batch in the replicas "
        f"{report['ray_mean_batch']:.2f}",
    ]
    return render(table, *lines)
