"""`dikkat bench batching`: one forward per request vs the product's batched service vs the ceiling.

This module holds the run's settings and its order; the parts live beside it: `batching_load`
(servers and clients), `batching_ceiling`, `batching_overload`, `batching_report` (targets and
tables), `batching_plot` and `flops` (achieved GFLOP/s against the CPU's peak). The batched mode is
the product: an InferenceService built by App. One run measures every encoder precision asked
for, one after the other (`run_precisions`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import importlib.util
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
from dikkat.bench.batching_ceiling import Ceiling, tokens_per_s
from dikkat.bench.batching_load import (
    Answered,
    Prepared,
    ServiceOpener,
    ServiceServer,
    Unbatched,
    Window,
    closed_loop,
    paired_single,
    prepare,
    row,
)
from dikkat.bench.batching_overload import overload
from dikkat.bench.batching_plot import write_plot
from dikkat.bench.batching_report import evaluate_targets, format_table, precision_summary
from dikkat.bench.common import cpu_cores, loadavg, machine_info, ratio, write_json
from dikkat.bench.encoder import start_times
from dikkat.bench.flops import EncoderShape, fp32_peak
from dikkat.bench.lengths import request_texts
from dikkat.config import Settings
from dikkat.inference.service import InferenceService
from dikkat.models.device import resolve_device
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.precision import PRECISIONS
from dikkat.models.sorter import Sorter

__all__ = [
    "BenchSettings",
    "app_opener",
    "default_precisions",
    "evaluate_targets",
    "format_table",
    "run_batching_benchmark",
    "run_benchmark",
    "run_precisions",
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
    """Load shape and batcher options of one benchmark run (full-run values by default).

    At each concurrency point the unbatched server gets one window of `duration_s`; the batched
    service and the ceiling get `windows` windows each of `duration_s / windows`, taken in turn
    (batched first in even windows, the ceiling first in odd ones). The ceiling's batch size is
    the best of a sweep that gives each size `ceiling_budget_s` twice.
    """

    concurrency: tuple[int, ...] = (1, 8, 64, 256)
    warmup_s: float = 2.0
    duration_s: float = 12.0
    windows: int = 4
    sample_size: int = 3000
    seed: int = 0
    max_batch_size: int = int(_DEFAULTS["max_batch_size"])
    max_batch_tokens: int = int(_DEFAULTS["max_batch_tokens"])
    max_wait_ms: float = float(_DEFAULTS["max_wait_ms"])
    max_queue: int = int(_DEFAULTS["max_queue"])
    min_padding_efficiency: float = float(_DEFAULTS["min_padding_efficiency"])
    ceiling_sizes: tuple[int, ...] = (8, 16, 32, 64)
    ceiling_budget_s: float = 3.0
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
        if self.windows < 1:
            raise ValueError("windows must be at least 1")

    @classmethod
    def quick(cls) -> BenchSettings:
        """Every concurrency point kept, shorter windows: about a minute per precision on 2 CPU
        cores, plus the encoder's two starts."""
        return cls(
            warmup_s=0.25,
            duration_s=2.0,
            windows=2,
            sample_size=600,
            ceiling_sizes=(16, 32),
            ceiling_budget_s=0.5,
            paired_s=1.5,
            overload_duration_s=1.5,
        )

    @property
    def window_s(self) -> float:
        """Seconds of one batched or ceiling window."""
        return self.duration_s / self.windows

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
    """Ceiling sweep, the load points (ceiling and batched in turn) and paired c=1 on one
    service; overload on another."""
    async with open_service(settings.service_options(settings.max_queue)) as service:
        pipeline = service.sentiment_pipeline
        prepared = prepare(pipeline, texts)
        ceiling = Ceiling(pipeline, prepared)
        try:
            await asyncio.to_thread(ceiling.warm_up)
            step("ceiling sweep")
            sweep = await asyncio.to_thread(
                ceiling.sweep, settings.ceiling_sizes, settings.ceiling_budget_s
            )
            best = max(sweep, key=lambda r: r["throughput_rps"])["batch_size"]
            rows, interleaved, ceiling_total = [], [], Window()
            for c in settings.concurrency:
                step(f"unbatched c={c}")
                unbatched = Unbatched(pipeline)
                try:
                    answered = await closed_loop(
                        unbatched, texts, c, settings.warmup_s, settings.duration_s
                    )
                finally:
                    await unbatched.close()
                rows.append(_row("unbatched", c, answered))
                point = await _in_turn(service, ceiling, texts, prepared, c, best, settings, step)
                rows.extend(point.rows)
                interleaved.append(point.summary)
                ceiling_total = ceiling_total + point.ceiling
        finally:
            ceiling.close()
        step("paired c=1")
        paired = await paired_single(service, pipeline, texts, settings.paired_s)
        compute = _compute(pipeline.encoder, prepared, ceiling.throughput(ceiling_total))
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
        "ceiling": {
            "best_batch_size": best,
            "sweep": sweep,
            "all_windows": ceiling.row(ceiling_total, best, None),
        },
        "interleaved": interleaved,
        "paired_c1": paired,
        "overload": flood,
        "compute": compute,
        "prepared": prepared,
    }


@dataclass(frozen=True)
class _Point:
    rows: list[dict[str, Any]]  # batched, then ceiling
    summary: dict[str, Any]  # the windows and their ratios
    ceiling: Window  # the ceiling's windows added up


async def _in_turn(
    service: InferenceService,
    ceiling: Ceiling,
    texts: Sequence[str],
    prepared: Prepared,
    concurrency: int,
    size: int,
    settings: BenchSettings,
    step: Callable[[str], None],
) -> _Point:
    """Batched and ceiling windows taken in turn at one concurrency, and their ratio per window.

    A window's ratio compares real tokens per second, the unit both share whichever texts a
    window happened to hold.
    """
    server = ServiceServer(service)
    batched_total, ceiling_total = Answered(), Window()
    windows = []

    async def batched(label: str) -> Answered:
        step(f"batched c={concurrency} {label}")
        answered = await closed_loop(
            server, texts, concurrency, settings.warmup_s, settings.window_s
        )
        await service.sentiment(texts[0])  # queues behind the batch still running
        return answered

    async def raw(label: str) -> Window:
        step(f"ceiling c={concurrency} {label}")
        return await asyncio.to_thread(ceiling.window, size, settings.window_s)

    for w in range(settings.windows):
        label, ceiling_first = f"window {w + 1}/{settings.windows}", w % 2 == 1
        if ceiling_first:
            window = await raw(label)
        answered = await batched(label)
        if not ceiling_first:
            window = await raw(label)
        batched_total, ceiling_total = batched_total + answered, ceiling_total + window
        batched_tps, ceiling_tps = answered.tokens_per_s(prepared.costs), tokens_per_s(window)
        windows.append(
            {
                "first": "ceiling" if ceiling_first else "batched",
                "batched_rps": round(answered.throughput, 3),
                "ceiling_rps": round(ceiling.throughput(window), 3),
                "batched_tokens_per_s": round(batched_tps, 1),
                "ceiling_tokens_per_s": round(ceiling_tps, 1),
                "ratio": ratio(batched_tps, ceiling_tps),
            }
        )
    ratios = [w["ratio"] for w in windows if w["ratio"] is not None]
    summary = {
        "concurrency": concurrency,
        "batch_size": size,
        "window_s": settings.window_s,
        "windows": windows,
        "ratio_median": round(float(np.median(ratios)), 3) if ratios else None,
        "ratio_min": min(ratios, default=None),
        "ratio_max": max(ratios, default=None),
    }
    rows = [
        _row("batched", concurrency, batched_total, cost_ms=prepared.tokenize_ms),
        ceiling.row(ceiling_total, size, concurrency),
    ]
    return _Point(rows, summary, ceiling_total)


def _row(mode: str, concurrency: int, answered: Answered, **extra: object) -> dict[str, Any]:
    return row(
        mode,
        concurrency,
        answered.throughput,
        answered.latencies,
        answered.counters,
        requests=len(answered.latencies),
        **extra,
    )


def _compute(encoder: SentenceEncoder, prepared: Prepared, ceiling_rps: float) -> dict[str, Any]:
    """FLOPs per text of the load and what the ceiling achieved, against the fp32 peak of the
    cores the encoder computes on (its threads, at most the cores this process may use)."""
    shape = EncoderShape.of(encoder.source.config())
    flops = shape.flops_per_text(prepared.costs)
    peak = fp32_peak(min(torch.get_num_threads(), cpu_cores()))
    gflops = round(ceiling_rps * flops["total"] / 1e9, 2)
    return {
        "layers": shape.layers,
        "hidden": shape.hidden,
        "intermediate": shape.intermediate,
        "non_embedding_params": shape.non_embedding_params,
        "mflops_per_text": {k: round(v / 1e6, 2) for k, v in flops.items()},
        "flops_counted": "2 x non-embedding parameters x tokens + attention 4 x L x T^2 x d",
        "ceiling_rps": round(ceiling_rps, 3),
        "ceiling_gflops": gflops,
        "ceiling_gflops_linear": round(ceiling_rps * flops["linear"] / 1e9, 2),
        "fp32_peak": peak,
        "share_of_fp32_peak": ratio(gflops, peak["gflops"]),
    }


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
    phases = 2 + len(settings.concurrency) * (1 + 2 * settings.windows) + 2
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


def run_precisions(
    load: Callable[[str, Path], SentenceEncoder],
    precisions: Sequence[str],
    draw_texts: Callable[[SentenceEncoder], tuple[list[str], str]],
    settings: BenchSettings,
    scratch: Path,
    *,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`run_benchmark` once per precision, one after the other, on the encoder that
    `load(precision, model_dir)` gives: its first start on a fresh folder under `scratch` and its
    warm start are timed, and the warm one is measured (then dropped before the next).
    `draw_texts` picks the request texts once, with the first encoder's tokenizer.

    The report: `precisions` (one run_benchmark report each, less the shared machine and
    settings blocks, plus its start times and runtime) and `summary` (a row per precision).
    """
    machine = machine_info(**(info or {}))
    parts: dict[str, dict[str, Any]] = {}
    shared: dict[str, Any] = {}
    texts: list[str] | None = None
    source = ""
    sorter: Sorter | None = None
    for precision in precisions:
        times, encoder = start_times(
            functools.partial(load, precision), scratch / precision / "start"
        )
        if texts is None:
            texts, source = draw_texts(encoder)
        sorter = sorter or Sorter.from_checkpoint(device=str(encoder.device))
        opener = app_opener(encoder, scratch / precision, sorter=sorter)
        part = run_benchmark(opener, texts, settings, progress=progress, source=source)
        shared = part.pop("settings")
        part_machine = part.pop("machine")
        parts[precision] = {
            "precision": encoder.precision,  # fp32 where int8 does not apply (a GPU)
            "runtime": encoder.runtime,
            "encoder": encoder.encoder_id,
            "device": str(encoder.device),
            "max_length": encoder.max_length,
            "feature_key": encoder.feature_key,
            "head": _head_note(encoder),
            "start": times,
            "loadavg": [part_machine["loadavg_start"], part_machine["loadavg_end"]],
            **part,
        }
        del encoder, opener
        gc.collect()
    machine["loadavg_end"] = loadavg()
    return {
        "precisions": parts,
        "summary": precision_summary(parts),
        "machine": machine,
        "settings": {**shared, "precisions": list(precisions)},
    }


def _head_note(encoder: SentenceEncoder) -> str:
    from dikkat.models.head import default_head_path

    path = default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
    return f"shipped head {path.name}" if path else "head trained at start-up on the seed corpus"


def default_precisions(device: str | torch.device = "auto") -> tuple[str, ...]:
    """fp32, and int8 where it runs: on CPU, with ctranslate2 importable (elsewhere the int8
    setting gives fp32, so measuring it again would only repeat fp32)."""
    on_cpu = resolve_device(str(device)).type == "cpu"
    return ("fp32", "int8") if on_cpu and importlib.util.find_spec("ctranslate2") else ("fp32",)


def run_batching_benchmark(
    *,
    quick: bool,
    json_path: Path | None,
    plot_path: Path | None,
    precisions: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`dikkat bench batching` on the offline encoder, once per precision (default:
    `default_precisions()`); writes json/plot when asked.

    Each precision's encoder is started twice on a fresh model folder in a scratch directory
    (first start: the e5 folder built from its image and, for int8, the conversion; warm start:
    the load alone) and the warm one is measured. Sets torch's intra-op threads for the process
    (a CLI command owns its process).
    """
    from dikkat.models.loading import load_encoder

    settings = BenchSettings.quick() if quick else BenchSettings()
    torch.set_num_threads(settings.torch_threads)
    chosen = tuple(precisions or default_precisions())
    for name in chosen:
        if name not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {name!r}")

    def load(precision: str, model_dir: Path) -> SentenceEncoder:
        return load_encoder(
            "offline",
            max_length=128,
            pooling="mean",
            device="auto",
            model_dir=model_dir,
            precision=precision,
        )

    def draw_texts(encoder: SentenceEncoder) -> tuple[list[str], str]:
        return request_texts(settings.sample_size, settings.seed, encoder.piece_count)

    with tempfile.TemporaryDirectory(prefix="dikkat-bench-batching-") as scratch:
        report = run_precisions(
            load, chosen, draw_texts, settings, Path(scratch), progress=progress
        )
    report["settings"]["quick"] = quick
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        write_plot(report, plot_path)
    return report
