"""`dikkat bench retrain`: retrain wall time, serving latency during a retrain, learning curve."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch

from dikkat.app import App
from dikkat.bench.lengths import shared_data_dirs, synthetic_texts
from dikkat.bot.i18n import LABEL_NAMES, t
from dikkat.bot.router import Router
from dikkat.bot.types import ButtonPress, Request
from dikkat.config import Settings
from dikkat.inference.service import InferenceService
from dikkat.models.encoder import SentenceEncoder, load_encoder
from dikkat.models.head import LABELS, SentimentHead, load_head
from dikkat.storage.features import FeatureCache, text_hash
from dikkat.storage.store import RetrainRun, Store
from dikkat.training import retrain as retrain_module
from dikkat.training.data import load_labelled_csv, seed_corpus_path, split_train_val
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.retrain import (
    RetrainJob,
    evaluation_metrics,
    fixed_metrics,
)

__all__ = [
    "DATA_FILE",
    "RetrainBenchConfig",
    "default_scratch",
    "format_report",
    "run_retrain_benchmark",
    "write_plot",
]

DATA_FILE = "store_reviews_3class.csv"
SPLIT_FRACTION, SPLIT_SEED = 0.25, 0
PLATFORM = "telegram"
LATENCY_TARGET = 1.5
OUTCOMES = ("created", "changed", "unchanged", "missing")
_QUIET = ("dikkat.bot.router", "dikkat.training.retrain", "dikkat.inference.service")


@dataclass(frozen=True)
class RetrainBenchConfig:
    """Sizes and windows of one run (full-run values by default)."""

    sizes: tuple[int, ...] = (1_000, 10_000)
    repeats: int = 3
    latency_size: int | None = 10_000  # None: no latency part
    clients: tuple[int, ...] = (1, 8)
    warmup_s: float = 3.0
    window_s: float = 60.0
    curve_steps: tuple[int, ...] = (100, 300, 1_000)
    holdout_sample: int | None = None
    votes_per_user: int = 100
    feeders: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 1 or self.repeats < 1:
            raise ValueError("sizes must be positive and repeats >= 1")
        if self.latency_size is not None and self.latency_size not in self.sizes:
            raise ValueError("latency_size must be one of sizes (it reuses that database)")
        if not self.clients or min(self.clients) < 1 or self.window_s <= 0 or self.warmup_s < 0:
            raise ValueError("clients must be >= 1 and windows positive")
        if list(self.curve_steps) != sorted(set(self.curve_steps)) or min(self.curve_steps) < 1:
            raise ValueError("curve_steps must be increasing positive counts")
        if self.votes_per_user < 1 or self.feeders < 1:
            raise ValueError("votes_per_user and feeders must be >= 1")

    @classmethod
    def quick(cls) -> RetrainBenchConfig:
        """Under two minutes once the scratch feature cache is warm."""
        return cls(
            sizes=(200, 1_000),
            repeats=1,
            latency_size=1_000,
            clients=(8,),
            warmup_s=1.0,
            window_s=8.0,
            curve_steps=(100, 300),
            holdout_sample=600,
        )


def default_scratch() -> Path:
    """Where encoded features are kept between runs (never inside the repository)."""
    return Path(tempfile.gettempdir()) / "dikkat-bench-retrain"


def default_data_path() -> Path | None:
    """../shared/data/sentiment/store_reviews_3class.csv, if present."""
    for folder in shared_data_dirs():
        if (folder / DATA_FILE).is_file():
            return folder / DATA_FILE
    return None


class _Log:
    """Progress lines on stderr with the elapsed time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.started = enabled, time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr)


# ---------------------------------------------------------------- data and feature cache


@dataclass
class _Data:
    """Texts and labels for every part, and where they came from."""

    source: str
    pool: pd.DataFrame  # timing texts: held-out part first, then the training part
    train: pd.DataFrame | None = None  # learning-curve items come from here, in order
    held_out: pd.DataFrame | None = None
    skipped: str | None = None  # why the learning curve is skipped


def _load_data(path: Path | None, config: RetrainBenchConfig, encoder: SentenceEncoder) -> _Data:
    n = max(config.sizes)
    if path is None or not path.is_file():
        texts = _distinct(synthetic_texts(n, config.seed, _word_counter(encoder)))
        labels = np.random.default_rng(config.seed).choice(LABELS, size=n)
        why = f"{path if path else '../shared/data/sentiment/' + DATA_FILE} is absent"
        return _Data(
            source="synthetic Turkish-like texts (dikkat.bench.lengths), random labels",
            pool=pd.DataFrame({"text": texts, "label": labels}),
            skipped=f"learning curve skipped: {why}",
        )
    df = load_labelled_csv(path)
    train, held_out = split_train_val(df, SPLIT_FRACTION, SPLIT_SEED)
    if config.holdout_sample is not None and config.holdout_sample < len(held_out):
        _, held_out = split_train_val(held_out, config.holdout_sample / len(held_out), config.seed)
    others = df[~df["text"].isin(set(held_out["text"]) | set(train["text"]))]
    pool = pd.concat([held_out, others, train], ignore_index=True)
    if len(pool) < n:
        extra = _distinct(synthetic_texts(n - len(pool), config.seed, _word_counter(encoder)))
        labels = np.random.default_rng(config.seed).choice(LABELS, size=len(extra))
        pool = pd.concat([pool, pd.DataFrame({"text": extra, "label": labels})])
    source = (
        f"{DATA_FILE} ({len(df)} rows), stratified 75/25 split seed {SPLIT_SEED}: "
        f"{len(train)} training rows, {len(held_out)} held-out rows"
        + (f" (stratified sample, seed {config.seed})" if config.holdout_sample else "")
    )
    return _Data(source, pool.reset_index(drop=True), train, held_out)


def _word_counter(encoder: SentenceEncoder) -> Callable[[str], int]:
    def count(word: str) -> int:
        return len(encoder.tokenizer(word, add_special_tokens=False)["input_ids"])

    return count


def _distinct(texts: Sequence[str]) -> list[str]:
    """Make repeated synthetic texts distinct (a vote on a repeated text would merge)."""
    seen: set[str] = set()
    out = []
    for i, text in enumerate(texts):
        out.append(text if text not in seen else f"{text} {i}")
        seen.add(out[-1])
    return out


def _fill_cache(
    db: Path, encoder: SentenceEncoder, texts: Sequence[str], progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Features of `texts` from the scratch cache, encoding (once, ever) what is missing."""
    cache = FeatureCache(db, encoder.feature_key)
    try:
        keys = {text_hash(t) for t in texts}
        missing = len(keys) - len(cache.get_many(keys))
        started = time.perf_counter()
        X = features_for(list(texts), encoder, cache, progress=progress and missing > 0)
        seconds = time.perf_counter() - started
    finally:
        cache.close()
    return X, {"texts": len(keys), "encoded": missing, "seconds": round(seconds, 2)}


def _clone(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API, safe under WAL)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# ---------------------------------------------------------------- a bot on a scratch database


@dataclass
class _Bot:
    """A started App on one database with the shared, already loaded encoder."""

    app: App
    settings: Settings
    store: Store
    cache: FeatureCache
    service: InferenceService
    retrainer: RetrainJob
    router: Router
    head: SentimentHead
    version: int

    async def close(self) -> None:
        await self.app.stop()


async def _open_bot(db: Path, encoder: SentenceEncoder) -> _Bot:
    settings = Settings(db_path=db, model_dir=db.parent / f"{db.stem}-models", head_poll_s=0)
    app = App(settings, encoder=encoder)
    router = await app.start()
    router.rate_limiter.burst = 10**9  # benchmark clients are not people
    assert app.store and app.cache and app.service and app.retrainer
    pipeline = app.service.sentiment_pipeline
    return _Bot(
        app, settings, app.store, app.cache, app.service, app.retrainer, router,
        pipeline.head, pipeline.head_version,
    )  # fmt: skip


def _user(index: int, config: RetrainBenchConfig) -> str:
    return f"bench-{index // config.votes_per_user}"


async def _vote_direct(
    bot: _Bot, rows: pd.DataFrame, start: int, config: RetrainBenchConfig
) -> dict[str, int]:
    """Predictions logged as Router._sentiment logs them (answer from the cached features, no
    encoder), votes through Router.handle_button. Returns the feedback outcomes."""
    found = bot.cache.get_many(text_hash(t) for t in rows["text"])
    X = np.stack([found[text_hash(t)] for t in rows["text"]])
    proba = bot.head.predict_proba(X)  # (n, 3)
    outcomes: dict[str, int] = {}
    for i, (text, label, row) in enumerate(zip(rows["text"], rows["label"], proba, strict=True)):
        user = _user(start + i, config)
        prediction = await bot.store.log_prediction(
            platform=PLATFORM,
            user_id=user,
            chat_id=user,
            text=text,
            label=LABELS[int(np.argmax(row))],
            probabilities={k: float(p) for k, p in zip(LABELS, row, strict=True)},
            head_version=bot.version,
        )
        await _press(bot, user, f"fb:{prediction}:{label}", outcomes)
    return outcomes


async def _press(bot: _Bot, user: str, data: str, outcomes: dict[str, int]) -> None:
    reply = await bot.router.handle_button(ButtonPress(PLATFORM, user, user, data, "en"))
    label = LABEL_NAMES[data.rsplit(":", 1)[-1]]["en"] if data.count(":") == 2 else ""
    key = next(
        (o for o in OUTCOMES if reply.text == t(f"feedback_{o}", "en", label=label)), "other"
    )
    outcomes[key] = outcomes.get(key, 0) + 1


async def _vote_through_router(
    bot: _Bot, rows: pd.DataFrame, start: int, config: RetrainBenchConfig
) -> dict[str, int]:
    """The real path: /sentiment through the Router (encoder, log), then the label's button."""
    outcomes: dict[str, int] = {}
    queue = list(enumerate(zip(rows["text"], rows["label"], strict=True)))
    queue.reverse()

    async def feeder() -> None:
        while queue:
            i, (text, label) = queue.pop()
            user = _user(start + i, config)
            request = Request(PLATFORM, user, user, "sentiment", text, "en")
            reply = await bot.router.handle(request)
            data = [b.data for b in reply.buttons if b.data.endswith(f":{label}")]
            if not data:
                outcomes["no buttons"] = outcomes.get("no buttons", 0) + 1
                continue
            await _press(bot, user, data[0], outcomes)

    await asyncio.gather(*(feeder() for _ in range(config.feeders)))
    return outcomes


# ---------------------------------------------------------------- instrumented retrain runs


@dataclass
class _Probe:
    """Where one retrain run spends its time, and whether it ran the encoder."""

    phases: dict[str, float] = field(default_factory=dict)
    encoded_texts: int = 0
    epochs: list[int] = field(default_factory=list)
    train_rows: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, phase: str, seconds: float) -> None:
        with self.lock:
            self.phases[phase] = self.phases.get(phase, 0.0) + seconds


PHASES = {
    "feedback_votes": "read feedback votes (SQLite)",
    "_remember_recent": "persist remembered features",
    "features_for": "feature lookup (cache)",
    "train_head": "train head",
    "evaluate": "evaluate both heads",
    "save_head": "save head (atomic)",
}


def _timed(probe: _Probe, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(function):

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                probe.add(phase, time.perf_counter() - started)

        return timed_async

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        finally:
            probe.add(phase, time.perf_counter() - started)
        if phase == "train_head":
            probe.epochs.append(len(result.history))
            probe.train_rows.append(len(args[0]))
        return result

    return timed


@contextmanager
def _instrument(bot: _Bot) -> Iterator[_Probe]:
    """Wrap what RetrainJob calls (same functions, timed) and count encoder use off the batcher."""
    probe = _Probe()
    encoder = bot.retrainer.encoder
    encode = encoder.encode

    def counting_encode(texts: list[str]) -> np.ndarray:
        if not threading.current_thread().name.startswith("batcher-"):
            with probe.lock:
                probe.encoded_texts += len(texts)
        return encode(texts)

    with ExitStack() as stack:
        for name in ("features_for", "train_head", "evaluate", "save_head"):
            original = getattr(retrain_module, name)
            stack.enter_context(
                mock.patch.object(retrain_module, name, _timed(probe, name, original))
            )
        for owner, name in ((bot.store, "feedback_votes"), (bot.retrainer, "_remember_recent")):
            timed = _timed(probe, name, getattr(owner, name))
            stack.enter_context(mock.patch.object(owner, name, timed))
        stack.enter_context(mock.patch.object(encoder, "encode", counting_encode))
        yield probe


async def _timed_retrain(bot: _Bot) -> dict[str, Any]:
    with _instrument(bot) as probe:
        started = time.perf_counter()
        run = await bot.retrainer.run("admin", "bench")
        wall = time.perf_counter() - started
    phases = {PHASES[k]: round(v, 3) for k, v in probe.phases.items()}
    phases["other (load active head, DB writes, swap)"] = round(
        wall - sum(probe.phases.values()), 3
    )
    return {
        **_run_summary(run),
        "wall_s": round(wall, 3),
        "encoded_texts": probe.encoded_texts,
        "epochs": probe.epochs[0] if probe.epochs else None,
        "train_rows": probe.train_rows[0] if probe.train_rows else None,
        "phases_s": phases,
    }


def _run_summary(run: RetrainRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "status": run.status,
        "n_feedback": run.n_feedback,
        "n_train": run.n_train,
        "seed_eval_before": _metrics(fixed_metrics(run.metrics_before)),
        "seed_eval_after": _metrics(fixed_metrics(run.metrics_after)),
        "feedback_eval_before": _metrics((run.metrics_before or {}).get("feedback")),
        "feedback_eval_after": _metrics((run.metrics_after or {}).get("feedback")),
        "candidate_version": run.candidate_version,
        "error": run.error,
    }


def _metrics(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    if not metrics or "macro_f1" not in metrics:
        return None
    keys = ("macro_f1", "accuracy", "n")
    return {k: round(float(metrics[k]), 4) for k in keys if k in metrics}


# ---------------------------------------------------------------- serving latency


def _stats(latencies: Sequence[float], seconds: float, failed: int) -> dict[str, Any]:
    ms = np.asarray(latencies) * 1000.0
    pick = (lambda q: round(float(np.percentile(ms, q)), 1)) if len(ms) else (lambda q: None)
    return {
        "requests": len(ms),
        "failed": failed,
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(ms) / seconds, 2) if seconds > 0 else None,
        "p50_ms": pick(50),
        "p90_ms": pick(90),
        "p99_ms": pick(99),
        "max_ms": round(float(ms.max()), 1) if len(ms) else None,
    }


def _window(
    records: Sequence[tuple[float, float, bool]], start: float, end: float, cpu_s: float
) -> dict[str, Any]:
    """Requests that started and finished inside [start, end]; the process's CPU use then."""
    inside = [(t0, t1, ok) for t0, t1, ok in records if t0 >= start and t1 <= end]
    ok = [t1 - t0 for t0, t1, good in inside if good]
    stats = _stats(ok, end - start, sum(1 for *_, good in inside if not good))
    stats["process_cpu_cores"] = round(cpu_s / (end - start), 2) if end > start else None
    return stats


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _latency(
    bot: _Bot, texts: Sequence[str], clients: int, config: RetrainBenchConfig, say: _Log
) -> dict[str, Any]:
    """Closed-loop /sentiment clients: idle window, then a window of back-to-back retrains."""
    records: list[tuple[float, float, bool]] = []
    stop = asyncio.Event()
    order = np.random.default_rng(config.seed + clients).permutation(len(texts))

    async def client(k: int) -> None:
        user, i = f"client-{k}", k
        while not stop.is_set():
            text = texts[order[i % len(order)]]
            i += clients
            started = time.perf_counter()
            reply = await bot.router.handle(Request(PLATFORM, user, user, "sentiment", text, "en"))
            records.append((started, time.perf_counter(), bool(reply.buttons)))

    tasks = [asyncio.create_task(client(k)) for k in range(clients)]
    try:
        await asyncio.sleep(config.warmup_s)
        say(f"latency: {clients} client(s), idle window {config.window_s:.0f}s")
        idle_start, idle_cpu = time.perf_counter(), _cpu_s()
        await asyncio.sleep(config.window_s)
        busy_start, busy_cpu = time.perf_counter(), _cpu_s()
        runs = []
        while not runs or time.perf_counter() - busy_start < config.window_s:
            say(f"latency: {clients} client(s), retrain #{len(runs) + 1} under load")
            runs.append(await _timed_retrain(bot))
        busy_end, end_cpu = time.perf_counter(), _cpu_s()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    idle = _window(records, idle_start, busy_start, busy_cpu - idle_cpu)
    busy = _window(records, busy_start, busy_end, end_cpu - busy_cpu)
    return {
        "clients": clients,
        "idle": idle,
        "during_retrain": busy,
        "retrains_in_window": runs,
        "p99_ratio": _ratio(busy["p99_ms"], idle["p99_ms"]),
        "p50_ratio": _ratio(busy["p50_ms"], idle["p50_ms"]),
        "target_ratio": LATENCY_TARGET,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# ---------------------------------------------------------------- the three measurements


async def _timing(
    encoder: SentenceEncoder,
    scratch_db: Path,
    workdir: Path,
    data: _Data,
    config: RetrainBenchConfig,
    say: _Log,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    rows_out: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] | None = None
    for n in config.sizes:
        rows = data.pool.iloc[:n]
        db = workdir / f"timing-{n}.db"
        _clone(scratch_db, db)
        bot = await _open_bot(db, encoder)
        try:
            say(f"timing {n}: logging {n} predictions and votes")
            started = time.perf_counter()
            outcomes = await _vote_direct(bot, rows, 0, config)
            feed_s = time.perf_counter() - started
            runs = []
            for r in range(config.repeats):
                say(f"timing {n}: retrain {r + 1}/{config.repeats}")
                runs.append(await _timed_retrain(bot))
                say(f"  {runs[-1]['status']} in {runs[-1]['wall_s']:.1f}s")
            walls = [run["wall_s"] for run in runs]
            rows_out.append(
                {
                    "feedback_items": n,
                    "votes": outcomes,
                    "feed_s": round(feed_s, 2),
                    "feed_items_per_s": round(n / feed_s, 1) if feed_s > 0 else None,
                    "wall_s_median": round(float(np.median(walls)), 3),
                    "wall_s_min": min(walls),
                    "wall_s_max": max(walls),
                    "runs": runs,
                }
            )
            if n == config.latency_size:
                texts = data.pool["text"].tolist()
                latency = []
                for clients in config.clients:
                    latency.append(await _latency(bot, texts, clients, config, say))
                    latency[-1]["feedback_items"] = n
        finally:
            await bot.close()
    return rows_out, latency


async def _curve(
    encoder: SentenceEncoder,
    scratch_db: Path,
    workdir: Path,
    data: _Data,
    config: RetrainBenchConfig,
    say: _Log,
    progress: bool,
) -> dict[str, Any]:
    assert data.train is not None and data.held_out is not None
    say(f"learning curve: features of {len(data.held_out)} held-out texts")
    X_hold, fill = _fill_cache(scratch_db, encoder, data.held_out["text"].tolist(), progress)
    y_hold = data.held_out["label"]
    db = workdir / "curve.db"
    _clone(scratch_db, db)
    bot = await _open_bot(db, encoder)
    points: list[dict[str, Any]] = []
    try:
        start_metrics = evaluate(bot.head, X_hold, y_hold)
        active = await bot.store.get_version(bot.version)
        seed_eval = await asyncio.to_thread(evaluation_metrics, encoder, bot.cache, bot.head)
        points.append(
            {
                "n": 0,
                "status": "shipped",
                "active_version": bot.version,
                "seed_eval_active": _metrics(seed_eval),
                "seed_eval_recorded": _metrics(fixed_metrics(active.metrics if active else None)),
                "held_out_active": _metrics(start_metrics),
            }
        )
        previous = 0
        for n in config.curve_steps:
            batch = data.train.iloc[previous:n]
            say(f"learning curve: feeding items {previous + 1}..{n} through the Router")
            started = time.perf_counter()
            outcomes = await _vote_through_router(bot, batch, previous, config)
            feed_s = time.perf_counter() - started
            say(f"learning curve: retrain after {n} items")
            run = await _timed_retrain(bot)
            active_version = await bot.store.active_version(encoder.feature_key)
            assert active_version is not None
            active_head = _load(Path(active_version.path), encoder)
            point = {
                "n": n,
                "votes": outcomes,
                "feed_s": round(feed_s, 2),
                **run,
                "active_version": active_version.id,
                "seed_eval_active": _metrics(
                    await asyncio.to_thread(evaluation_metrics, encoder, bot.cache, active_head)
                ),
                "held_out_active": _metrics(evaluate(active_head, X_hold, y_hold)),
                "held_out_candidate": None,
            }
            if run["candidate_version"] is not None:
                candidate = await bot.store.get_version(run["candidate_version"])
                assert candidate is not None
                head = _load(Path(candidate.path), encoder)
                point["held_out_candidate"] = _metrics(evaluate(head, X_hold, y_hold))
            say(
                f"  {run['status']}: seed-eval {_f(run['seed_eval_before'])} -> "
                f"{_f(run['seed_eval_after'])}, held-out active {_f(point['held_out_active'])}, "
                f"candidate {_f(point['held_out_candidate'])}"
            )
            points.append(point)
            previous = n
    finally:
        await bot.close()
    return {
        "data": data.source,
        "held_out_rows": len(data.held_out),
        "held_out_features": fill,
        "items_from": "training part in split order (train_test_split's seeded shuffle)",
        "points": points,
    }


def _load(path: Path, encoder: SentenceEncoder) -> SentimentHead:
    head, _ = load_head(
        path, encoder_id=encoder.encoder_id, dim=encoder.dim, pooling=encoder.pooling
    )
    return head


def _f(metrics: dict[str, float] | None) -> str:
    return "-" if not metrics else f"{metrics['macro_f1']:.3f}"


# ---------------------------------------------------------------- entry point


def _machine(encoder: SentenceEncoder) -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": [round(x, 2) for x in load],
        "device": str(encoder.device),
        "encoder": encoder.feature_key,
    }


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
        "machine": _machine(encoder),
        "settings": _settings_used(),
    }
    data = _load_data(data_path, config, encoder)
    report["data"] = data.source
    scratch.mkdir(parents=True, exist_ok=True)
    scratch_db = scratch / "features.db"
    seed_texts = load_labelled_csv(seed_corpus_path())["text"].tolist()
    timing_texts = data.pool["text"].iloc[: max(config.sizes)].tolist()
    say(f"features: seed corpus + {len(timing_texts)} timing texts into {scratch_db}")
    _, fill = _fill_cache(scratch_db, encoder, seed_texts + timing_texts, progress)
    report["feature_fill"] = fill
    with tempfile.TemporaryDirectory(prefix="bench-retrain-", dir=scratch) as tmp:
        workdir = Path(tmp)
        timing, latency = await _timing(encoder, scratch_db, workdir, data, config, say)
        report["timing"] = timing
        report["latency"] = latency
        if data.skipped:
            say(data.skipped)
            report["learning_curve"] = {"skipped": data.skipped}
        else:
            report["learning_curve"] = await _curve(
                encoder, scratch_db, workdir, data, config, say, progress
            )
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
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
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    if plot_path is not None and "points" in report["learning_curve"]:
        write_plot(report, plot_path)
    return report


# ---------------------------------------------------------------- report: text and figure


def _dominant(phases: dict[str, float]) -> str:
    total = sum(phases.values()) or 1.0
    name, seconds = max(phases.items(), key=lambda kv: kv[1])
    return f"{name} ({100 * seconds / total:.0f}%)"


def _cell(value: object, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables: retrain wall time, latency idle vs retrain, learning curve."""
    m = report["machine"]
    lines = [
        f"Retrain benchmark ({report.get('mode', '?')}), encoder {m['encoder']} on {m['device']}, "
        f"{m['cpu_count']} cores, torch threads {m['torch_threads']}, load average "
        f"{m['load_average_start'][0]} at start, {m.get('load_average_end', ['?'])[0]} at end",
        f"Data: {report['data']}",
        "",
        "| feedback items | retrain wall s (median, min-max) | runs | status | re-encoded texts "
        "| training rows | epochs | dominant phase |",
        "|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for row in report["timing"]:
        runs = row["runs"]
        statuses = "/".join(sorted({r["status"] for r in runs}))
        median_run = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        lines.append(
            f"| {row['feedback_items']:,} | {row['wall_s_median']:.2f} "
            f"({row['wall_s_min']:.2f}-{row['wall_s_max']:.2f}) | {len(runs)} | {statuses} "
            f"| {sum(r['encoded_texts'] for r in runs)} | {median_run['train_rows']} "
            f"| {median_run['epochs']} | {_dominant(median_run['phases_s'])} |"
        )
    lines += ["", "Phases of the median run (seconds):", ""]
    sizes = [row["feedback_items"] for row in report["timing"]]
    lines.append("| phase | " + " | ".join(f"{n:,} items" for n in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    medians = [
        sorted(row["runs"], key=lambda r: r["wall_s"])[len(row["runs"]) // 2]["phases_s"]
        for row in report["timing"]
    ]
    for phase in medians[0]:
        lines.append(f"| {phase} | " + " | ".join(_cell(p.get(phase)) for p in medians) + " |")
    for lat in report.get("latency") or []:
        lines += [
            "",
            f"Serving latency, {lat['clients']} closed-loop /sentiment client(s) through the "
            f"Router, idle vs during {len(lat['retrains_in_window'])} back-to-back retrain(s) of "
            f"{lat['feedback_items']:,} feedback items:",
            "",
            "| window | seconds | requests | req/s | p50 ms | p90 ms | p99 ms | max ms "
            "| process CPU (cores) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, key in (("idle", "idle"), ("during retrain", "during_retrain")):
            w = lat[key]
            lines.append(
                f"| {name} | {w['seconds']} | {w['requests']} | {_cell(w['throughput_rps'], '.1f')}"
                f" | {_cell(w['p50_ms'], '.0f')} | {_cell(w['p90_ms'], '.0f')} "
                f"| {_cell(w['p99_ms'], '.0f')} | {_cell(w['max_ms'], '.0f')} "
                f"| {_cell(w['process_cpu_cores'], '.2f')} |"
            )
        met = lat["p99_ratio"] is not None and lat["p99_ratio"] <= lat["target_ratio"]
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in lat["retrains_in_window"])
        lines += [
            "",
            f"p99 ratio {lat['p99_ratio']} (target <= {lat['target_ratio']}: "
            f"{'met' if met else 'missed'}), p50 ratio {lat['p50_ratio']}; "
            f"retrain wall s under load: {walls}",
        ]
    curve = report["learning_curve"]
    lines.append("")
    if "skipped" in curve:
        lines.append(curve["skipped"])
    else:
        lines += [
            f"Learning curve: {curve['data']}; macro-F1 on the {curve['held_out_rows']} "
            "held-out store reviews; the promotion rule reads the held-out share of feedback and "
            "the seed corpus's fixed evaluation set:",
            "",
            "| feedback items | retrain | held-out feedback F1 active -> candidate (n) "
            "| seed-eval F1 active -> candidate | held-out F1 active "
            "| held-out F1 candidate | held-out acc. active | retrain s |",
            "|---:|---|---|---|---:|---:|---:|---:|",
        ]
        for p in curve["points"]:
            seed = (
                f"{_f(p.get('seed_eval_before'))} -> {_f(p.get('seed_eval_after'))}"
                if p["n"]
                else f"{_f(p.get('seed_eval_active'))} (shipped head; its file says "
                f"{_f(p.get('seed_eval_recorded'))})"
            )
            accuracy = p["held_out_active"]["accuracy"] if p["held_out_active"] else None
            after = p.get("feedback_eval_after")
            feedback = (
                f"{_f(p.get('feedback_eval_before'))} -> {_f(after)} ({after['n']:.0f})"
                if after
                else "-"
            )
            lines.append(
                f"| {p['n']:,} | {p['status']} | {feedback} | {seed} | {_f(p['held_out_active'])} "
                f"| {_f(p.get('held_out_candidate'))} | {_cell(accuracy)} "
                f"| {_cell(p.get('wall_s'), '.1f')} |"
            )
    lines += ["", f"Total {report.get('total_s', '?')} s."]
    return "\n".join(lines)


def learning_curve_png(report: dict[str, Any]) -> bytes:
    """Macro-F1 of the active head and of each candidate against feedback items, on the held-out
    store reviews (left) and on the seed corpus's evaluation set that decides promotion (right)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curve = report["learning_curve"]
    points = curve["points"]
    figure = Figure(figsize=(9.0, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    x = list(range(len(points)))  # one slot per step: 0, 100, 300, 1000 would crowd
    panels = (
        (
            "held_out_active",
            "held_out_candidate",
            f"Store reviews, {curve['held_out_rows']} held out",
        ),
        ("seed_eval_active", "seed_eval_after", "Seed-corpus evaluation set (decides promotion)"),
    )
    for axes, (active_key, candidate_key, title) in zip(figure.subplots(1, 2), panels, strict=True):
        axes.plot(x, [_get(p.get(active_key)) for p in points], "o-", label="active head")
        for i, p in enumerate(points[1:], start=1):
            promoted = p["status"] == "promoted"
            axes.plot(
                i,
                _get(p.get(candidate_key)),
                marker="o" if promoted else "x",
                color="#2ca02c" if promoted else "#d62728",
                fillstyle="none",
                markersize=9,
                linestyle="none",
            )
        axes.plot([], [], "o", color="#2ca02c", fillstyle="none", label="candidate, promoted")
        axes.plot([], [], "x", color="#d62728", label="candidate, rejected")
        axes.set_title(title, fontsize=10)
        axes.set_xticks(x, [f"{p['n']:,}" for p in points])
        axes.set_xlabel("labelled feedback items (cumulative)")
        axes.set_ylabel("macro-F1")
        axes.grid(True, alpha=0.3)
        axes.legend(loc="best", fontsize=8)
    figure.suptitle(f"Retraining from feedback ({report['machine']['encoder'].split('|')[0]})")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _get(metrics: dict[str, float] | None) -> float:
    return math.nan if not metrics else metrics["macro_f1"]


def write_plot(report: dict[str, Any], path: Path) -> Path:
    """Write the learning-curve PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(learning_curve_png(report))
    return path
