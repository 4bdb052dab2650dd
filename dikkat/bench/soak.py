"""`dikkat bench soak`: the bot in one process under mixed traffic for a long time; does anything
grow, does anything break?

Users drive the Router, the path every frontend takes: /sentiment and a vote on its answer
(sometimes changed), /sort, /attention pictures (worked example, nano-GPT, encoder), /explain,
/help and now and then /forget. Beside them an admin sends /retrain every minute, another process
activates an older head version (as a rollback from another host does) and another process holds
the database's write lock for a few seconds, every `long_lock_every`-th time past the busy timeout
so that the refusal paths run too. The process is sampled every 10 s (soak_sampling). At the end:
was every request answered, is every acknowledged vote in the database, does the bot serve the
active head, and which WARNING+ log records, tracebacks above all, were written.

This module holds the entry point and the progress line; the parts live beside it: `soak_run`
(the configuration, the traffic, the background events, the final checks), `soak_tally` (what
counts as answered), `soak_processes` (the other processes), `soak_sampling` (the process's own
counts), `soak_logs`, `soak_report` (slopes, verdict, tables) and `soak_plot`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dikkat.app import App
from dikkat.bench.common import loadavg, machine_info, write_json
from dikkat.bench.soak_logs import LogCapture
from dikkat.bench.soak_plot import soak_png
from dikkat.bench.soak_report import format_report, trend, verdict
from dikkat.bench.soak_run import ADMIN, PLATFORM, Soak, SoakConfig
from dikkat.bench.soak_sampling import Sample
from dikkat.bench.soak_tally import Tally
from dikkat.config import Settings
from dikkat.models.encoder import SentenceEncoder
from dikkat.storage.legacy_schema import BUSY_TIMEOUT_MS
from dikkat.storage.records import VersionStatus
from dikkat.training.data import load_labelled_csv, seed_corpus_path
from dikkat.training.heads import head_versions_dir, register_head

__all__ = ["SoakConfig", "format_report", "run_soak"]


class Progress:
    """A rich progress bar on stderr and a status line every minute (plain lines without a
    terminal, e.g. under nohup)."""

    def __init__(self, config: SoakConfig, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.config, self.enabled = config, enabled
        self.console = Console(stderr=True, highlight=False)
        self.bar = Bar(
            TextColumn("soak"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            disable=not enabled,
        )
        total = config.minutes * 60 if config.minutes is not None else None
        self.task = self.bar.add_task("soak", total=total, status="")
        self.tally: Tally | None = None
        self._next_line = 0.0

    def sampled(self, sample: Any) -> None:
        tally = self.tally
        done = len(tally.requests) if tally else 0
        status = (
            f"{done} requests, RSS {sample.rss_mb:.0f} MiB, tasks {sample.tasks}, "
            f"fds {sample.fds}, threads {sample.threads}"
        )
        self.bar.update(self.task, completed=sample.t_s, status=status)
        if sample.t_s >= self._next_line:
            self._next_line = sample.t_s + 60
            self.say(status)

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {message}", markup=False)


def _texts(seed: int) -> list[tuple[str, str]]:
    """The seed corpus's Turkish sentences with their labels, shuffled."""
    df = load_labelled_csv(seed_corpus_path())
    order = np.random.default_rng(seed).permutation(len(df))
    return [(str(df["text"].iloc[i]), str(df["label"].iloc[i])) for i in order]


async def _soak(
    config: SoakConfig,
    settings: Settings,
    encoder: SentenceEncoder,
    workdir: Path,
    features_db: Path | None,
    progress: Progress,
) -> dict[str, Any]:
    db = workdir / "soak.db"
    if features_db is not None:  # its feature cache: the seed corpus is not encoded again
        shutil.copy(features_db, db)
    run_settings = settings.model_copy(
        update={
            "db_path": db,
            "model_dir": workdir / "models",
            "admins": f"{PLATFORM}:{ADMIN}",
            "head_poll_s": config.head_poll_s,
            "database_url": None,
            "role": "all",
        }
    )
    report: dict[str, Any] = {
        "benchmark": "soak",
        "config": asdict(config),
        "machine": machine_info(device=str(encoder.device), encoder=encoder.feature_key),
        "settings": {
            k: getattr(run_settings, k)
            for k in (
                "max_batch_size",
                "max_queue",
                "request_timeout_s",
                "head_poll_s",
                "retrain_nice",
                "retrain_tolerance",
            )
        },
    }
    report["settings"]["busy_timeout_ms"] = config.busy_timeout_ms or BUSY_TIMEOUT_MS
    with LogCapture() as logs:
        app = App(run_settings, encoder=encoder)
        await app.start()
        try:
            # one older head always there for the other process to activate
            assert app.store and app.service
            first = await app.store.active_version(encoder.feature_key)
            assert first is not None
            copy = head_versions_dir(run_settings) / "soak-copy.pt"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(first.path, copy)
            await register_head(
                app.store,
                copy,
                encoder=encoder.feature_key,
                dim=encoder.dim,
                metrics=first.metrics,
                status=VersionStatus.RETIRED,
                source="soak: a copy for the other process",
            )
            soak = Soak(app, config, _texts(config.seed))
            progress.tally = soak.tally
            with progress.bar:
                report |= await soak.run(progress)
        finally:
            await app.stop()
        report["logs"] = logs.summary()
    warmup_s = config.warmup_fraction * report["duration_s"]
    report["trend"] = trend([Sample(**s) for s in report["samples"]], warmup_s)
    report["machine"]["loadavg_end"] = loadavg()
    report["verdict"] = verdict(report)
    return report


def run_soak(
    config: SoakConfig,
    *,
    encoder: SentenceEncoder,
    settings: Settings | None = None,
    features_db: Path | None = None,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the soak with `encoder` on a scratch database (the other settings from `settings`);
    write the JSON report and the figure if asked."""
    settings = settings or Settings()
    with tempfile.TemporaryDirectory(prefix="dikkat-bench-soak-") as tmp:
        report = asyncio.run(
            _soak(config, settings, encoder, Path(tmp), features_db, Progress(config, progress))
        )
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        Path(plot_path).parent.mkdir(parents=True, exist_ok=True)
        Path(plot_path).write_bytes(soak_png(report))
    return report
