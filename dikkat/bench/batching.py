"""`dikkat bench batching`: one forward per request vs the product's batched service vs the ceiling.

This module holds the run's settings and its order; the parts live beside it: `batching_load`
(servers and clients), `batching_ceiling`, `batching_overload`, `batching_report` (targets and
tables) and `batching_plot`. The batched mode is the product: an InferenceService built by App.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dikkat.app import App
from dikkat.bench.batching_ceiling import Ceiling
from dikkat.bench.batching_load import (
    Server,
    ServiceOpener,
    ServiceServer,
    Unbatched,
    closed_loop,
    paired_single,
    prepare,
    row,
)
from dikkat.bench.batching_overload import overload
from dikkat.bench.batching_plot import write_plot
from dikkat.bench.batching_report import evaluate_targets, format_table
from dikkat.bench.common import loadavg, machine_info, write_json
from dikkat.bench.lengths import request_texts
from dikkat.config import Settings
from dikkat.inference.service import InferenceService
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.sorter import Sorter

__all__ = [
    "BenchSettings",
    "app_opener",
    "evaluate_targets",
    "format_table",
    "run_batching_benchmark",
    "run_benchmark",
    "write_json",
    "write_plot",
]

REQUEST_TIMEOUT_S = 600.0  # closed-loop clients wait for their answer; overload is by rejection


def product_defaults() -> dict[str, float]:
    """The batcher settings the product ships (dikkat.config.Settings defaults)."""
    keys = (
        "max_batch_size",
        "max_batch_tokens",
        "max_wait_ms",
        "max_queue",
        "min_padding_efficiency",
    )
    return {key: Settings.model_fields[key].default for key in keys}


_DEFAULTS = product_defaults()


@dataclass(frozen=True)
class BenchSettings:
    """Load shape and batcher options of one benchmark run (full-run values by default)."""

    concurrency: tuple[int, ...] = (1, 8, 64, 256)
    warmup_s: float = 2.0
    duration_s: float = 12.0
    sample_size: int = 3000
    seed: int = 0
    max_batch_size: int = int(_DEFAULTS["max_batch_size"])
    max_batch_tokens: int = int(_DEFAULTS["max_batch_tokens"])
    max_wait_ms: float = float(_DEFAULTS["max_wait_ms"])
    max_queue: int = int(_DEFAULTS["max_queue"])
    min_padding_efficiency: float = float(_DEFAULTS["min_padding_efficiency"])
    ceiling_sizes: tuple[int, ...] = (8, 16, 32, 64)
    ceiling_budget_s: float = 4.0
    paired_s: float = 8.0
    overload_factor: float = 4.0
    overload_duration_s: float = 8.0
    overload_max_queue: int = 64
    torch_threads: int = 2

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise ValueError("concurrency must be a non-empty tuple of positive ints")
        if self.max_queue < max(self.concurrency):
            raise ValueError("max_queue must hold every closed-loop client (>= max concurrency)")
        if min(self.duration_s, self.paired_s, self.overload_duration_s) <= 0 or self.warmup_s < 0:
            raise ValueError("durations must be positive")
        if self.sample_size < 1 or not self.ceiling_sizes or min(self.ceiling_sizes) < 1:
            raise ValueError("sample_size and ceiling_sizes must be positive")

    @classmethod
    def quick(cls) -> BenchSettings:
        """Every concurrency point kept, shorter windows: under a minute on 2 CPU cores."""
        return cls(
            warmup_s=0.25,
            duration_s=1.75,
            sample_size=600,
            ceiling_sizes=(16, 32),
            ceiling_budget_s=0.5,
            paired_s=1.5,
            overload_duration_s=1.5,
        )

    def service_options(self, max_queue: int) -> dict[str, Any]:
        """The Settings fields of the service under test."""
        return {
            "max_batch_size": self.max_batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "max_wait_ms": self.max_wait_ms,
            "max_queue": max_queue,
            "min_padding_efficiency": self.min_padding_efficiency,
            "request_timeout_s": REQUEST_TIMEOUT_S,
        }


def app_opener(
    encoder: SentenceEncoder, scratch: Path, *, sorter: Sorter | None = None
) -> ServiceOpener:
    """Services built by App on a scratch database with the given, already loaded encoder.

    Every App of one opener shares the database, so the head App installs (shipped, or trained
    on the seed corpus when none ships for the encoder) is installed once.
    """
    device = str(encoder.device)
    shared_sorter = sorter or Sorter.from_checkpoint(device=device)

    @asynccontextmanager
    async def open_service(options: Mapping[str, Any]) -> AsyncIterator[InferenceService]:
        settings = Settings(
            db_path=scratch / "bench.db",
            model_dir=scratch / "models",
            device=device,
            head_poll_s=0,
            **options,
        )
        async with App(settings, encoder=encoder, sorter=shared_sorter) as app:
            assert app.service is not None
            yield app.service

    return open_service


async def _measure(
    open_service: ServiceOpener,
    texts: Sequence[str],
    settings: BenchSettings,
    step: Callable[[str], None],
) -> dict[str, Any]:
    """Ceiling sweep, the load points and paired c=1 on one service; overload on another."""
    async with open_service(settings.service_options(settings.max_queue)) as service:
        pipeline = service.sentiment_pipeline
        prepared = prepare(pipeline, texts)
        ceiling = Ceiling(pipeline, prepared)
        try:
            await asyncio.to_thread(ceiling.warm_up)
            sweep = []
            for size in settings.ceiling_sizes:
                step(f"ceiling sweep b={size}")
                budget = settings.ceiling_budget_s
                sweep.append(await asyncio.to_thread(ceiling.measure, size, budget, None))
            best = max(sweep, key=lambda r: r["throughput_rps"])["batch_size"]
            rows = []
            for c in settings.concurrency:
                step(f"unbatched c={c}")
                unbatched = Unbatched(pipeline)
                try:
                    rows.append(await _point("unbatched", unbatched, texts, c, settings))
                finally:
                    await unbatched.close()
                step(f"batched c={c}")
                batched = ServiceServer(service)
                rows.append(await _point("batched", batched, texts, c, settings))
                rows[-1]["cost_ms"] = prepared.tokenize_ms
                await service.sentiment(texts[0])  # queues behind the batch still running
                step(f"ceiling c={c}")
                budget = settings.ceiling_budget_s
                rows.append(await asyncio.to_thread(ceiling.measure, best, budget, c))
        finally:
            ceiling.close()
        step("paired c=1")
        paired = await paired_single(service, pipeline, texts, settings.paired_s)
    step("overload")
    best_batched = max(r["throughput_rps"] for r in rows if r["mode"] == "batched")
    rate = settings.overload_factor * max(best_batched, 1.0)
    async with open_service(settings.service_options(settings.overload_max_queue)) as service:
        flood = await overload(
            service,
            texts,
            rate=rate,
            factor=settings.overload_factor,
            duration_s=settings.overload_duration_s,
            max_batch_size=settings.max_batch_size,
        )
    return {
        "results": rows,
        "ceiling": {"best_batch_size": best, "sweep": sweep},
        "paired_c1": paired,
        "overload": flood,
        "prepared": prepared,
    }


async def _point(
    mode: str, server: Server, texts: Sequence[str], concurrency: int, settings: BenchSettings
) -> dict[str, Any]:
    latencies, window = await closed_loop(
        server, texts, concurrency, settings.warmup_s, settings.duration_s
    )
    throughput = len(latencies) / settings.duration_s
    return row(mode, concurrency, throughput, latencies, window, requests=len(latencies))


def run_benchmark(
    open_service: ServiceOpener,
    texts: Sequence[str],
    settings: BenchSettings,
    *,
    progress: bool = True,
    info: dict[str, Any] | None = None,
    source: str = "given",
) -> dict[str, Any]:
    """Every mode, concurrency and the overload test on services from `open_service`; the JSON
    report."""
    machine = machine_info(**(info or {}))
    phases = len(settings.ceiling_sizes) + 3 * len(settings.concurrency) + 2
    with tqdm(total=phases, desc="bench batching", file=sys.stderr, disable=not progress) as bar:
        started = [False]

        def step(label: str) -> None:
            if started[0]:
                bar.update(1)
            started[0] = True
            bar.set_postfix_str(label)

        parts = asyncio.run(_measure(open_service, texts, settings, step))
        bar.update(1)
    machine["loadavg_end"] = loadavg()
    prepared = parts.pop("prepared")
    report: dict[str, Any] = {
        **parts,
        "machine": machine,
        "settings": {
            **dataclasses.asdict(settings),
            "product_defaults": product_defaults(),
            "unbatched_server": "tokenize + one forward per request on a single-thread executor",
            "batched_server": "InferenceService.sentiment of a service built by App (product path)",
            "texts": source,
            "sampled_texts": len(texts),
            "mean_tokens": round(float(np.mean(prepared.costs)), 2),
            "median_tokens": float(np.median(prepared.costs)),
            "truncated_share": round(float(np.mean(prepared.truncated)), 4),
        },
    }
    report["targets"] = evaluate_targets(report)
    return report


def _head_note(encoder: SentenceEncoder) -> str:
    from dikkat.models.head import default_head_path

    path = default_head_path(encoder.encoder_id, encoder.pooling)
    return f"shipped head {path.name}" if path else "head trained at start-up on the seed corpus"


def run_batching_benchmark(
    *, quick: bool, json_path: Path | None, plot_path: Path | None, progress: bool = True
) -> dict[str, Any]:
    """`dikkat bench batching` on the offline encoder; writes json/plot when asked.

    Sets torch's intra-op threads for the process (a CLI command owns its process).
    """
    from dikkat.models.loading import load_encoder

    settings = BenchSettings.quick() if quick else BenchSettings()
    torch.set_num_threads(settings.torch_threads)
    encoder = load_encoder(
        "offline", max_length=128, pooling="mean", device="auto", model_dir=Settings().model_dir
    )
    info = {
        "device": str(encoder.device),
        "encoder": encoder.encoder_id,
        "max_length": encoder.max_length,
        "head": _head_note(encoder),
    }

    def word_tokens(word: str) -> int:
        return len(encoder.tokenizer(word, add_special_tokens=False)["input_ids"])

    texts, source = request_texts(settings.sample_size, settings.seed, word_tokens)
    with tempfile.TemporaryDirectory(prefix="dikkat-bench-batching-") as scratch:
        opener = app_opener(encoder, Path(scratch))
        report = run_benchmark(opener, texts, settings, progress=progress, info=info, source=source)
    report["settings"]["quick"] = quick
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        write_plot(report, plot_path)
    return report
