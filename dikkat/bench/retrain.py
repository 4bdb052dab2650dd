"""`dikkat bench retrain`: retrain wall time, serving latency during a retrain, learning curve.

This module holds the run's order and its entry point; the parts live beside it: `retrain_data`
(configuration, texts, features), `retrain_bot` (a bot built by App, votes, timed retrains),
`retrain_run` (the three measurements), `retrain_report` (Markdown tables), `retrain_plot`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dikkat.bench.common import loadavg, machine_info, write_json
from dikkat.bench.retrain_data import (
    DATA_FILE,
    RetrainBenchConfig,
    default_data_path,
    default_scratch,
    fill_cache,
    load_data,
)
from dikkat.bench.retrain_plot import write_plot
from dikkat.bench.retrain_report import format_report
from dikkat.bench.retrain_run import curve, timing
from dikkat.config import Settings
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.loading import load_encoder
from dikkat.training.data import load_labelled_csv, seed_corpus_path

__all__ = [
    "DATA_FILE",
    "RetrainBenchConfig",
    "default_data_path",
    "default_scratch",
    "format_report",
    "run_retrain_benchmark",
    "write_plot",
]

_QUIET = ("dikkat.bot.router", "dikkat.training.retrain", "dikkat.inference.service")


class _Log:
    """Progress lines on stderr with the elapsed time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.started = enabled, time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr)


def _settings_used() -> dict[str, Any]:
    s = Settings()
    keys = (
        "max_batch_size",
        "max_wait_ms",
        "retrain_tolerance",
        "retrain_max_labels_per_user",
    )
    return {key: getattr(s, key) for key in keys}


@contextmanager
def _quiet_request_logs() -> Iterator[None]:
    """Per-request INFO lines would bury the progress output; restored afterwards."""
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


async def _run(
    config: RetrainBenchConfig,
    encoder: SentenceEncoder,
    data_path: Path | None,
    scratch: Path,
    progress: bool,
) -> dict[str, Any]:
    say = _Log(progress)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "retrain",
        "config": asdict(config),
        "machine": machine_info(device=str(encoder.device), encoder=encoder.feature_key),
        "settings": _settings_used(),
    }
    data = load_data(data_path, config, encoder)
    report["data"] = data.source
    scratch.mkdir(parents=True, exist_ok=True)
    scratch_db = scratch / "features.db"
    seed_texts = load_labelled_csv(seed_corpus_path())["text"].tolist()
    timing_texts = data.pool["text"].iloc[: max(config.sizes)].tolist()
    say(f"features: seed corpus + {len(timing_texts)} timing texts into {scratch_db}")
    _, fill = fill_cache(scratch_db, encoder, seed_texts + timing_texts, progress)
    report["feature_fill"] = fill
    with tempfile.TemporaryDirectory(prefix="bench-retrain-", dir=scratch) as tmp:
        workdir = Path(tmp)
        rows, latency = await timing(encoder, scratch_db, workdir, data, config, say)
        report["timing"] = rows
        report["latency"] = latency
        if data.skipped:
            say(data.skipped)
            report["learning_curve"] = {"skipped": data.skipped}
        else:
            report["learning_curve"] = await curve(
                encoder, scratch_db, workdir, data, config, say, progress
            )
    report["machine"]["loadavg_end"] = loadavg()
    report["total_s"] = round(time.perf_counter() - started, 1)
    return report


def run_retrain_benchmark(
    *,
    quick: bool,
    json_path: Path | None,
    plot_path: Path | None,
    progress: bool = True,
    config: RetrainBenchConfig | None = None,
    encoder: SentenceEncoder | None = None,
    data_path: Path | None = None,
    scratch: Path | None = None,
) -> dict[str, Any]:
    """Run every part (sizes from `config`, else full or quick), write JSON and PNG if asked."""
    config = config or (RetrainBenchConfig.quick() if quick else RetrainBenchConfig())
    started = time.perf_counter()
    if encoder is None:
        encoder = load_encoder("offline", device="cpu", model_dir=Settings().model_dir)
    load_s = time.perf_counter() - started
    path = data_path if data_path is not None else default_data_path()
    with _quiet_request_logs():
        report = asyncio.run(_run(config, encoder, path, scratch or default_scratch(), progress))
    report["mode"] = "quick" if quick else "full"
    report["encoder_load_s"] = round(load_s, 1)
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None and "points" in report["learning_curve"]:
        write_plot(report, plot_path)
    return report
