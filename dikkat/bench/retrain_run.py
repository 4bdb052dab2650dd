"""The retrain benchmark's three measurements: retrain wall time, serving latency while a retrain
runs, and the learning curve from feedback fed through the Router."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dikkat.bench.common import cpu_seconds, percentiles, ratio
from dikkat.bench.retrain_bot import (
    PLATFORM,
    Bot,
    f1_text,
    metric_summary,
    open_bot,
    timed_retrain,
    vote_direct,
    vote_through_router,
)
from dikkat.bench.retrain_data import Data, RetrainBenchConfig, clone, fill_cache
from dikkat.bot.types import Request
from dikkat.models.encoder import SentenceEncoder
from dikkat.training.candidate import evaluation_metrics
from dikkat.training.heads import load_head_for
from dikkat.training.metrics import evaluate
from dikkat.training.promotion import fixed_metrics

__all__ = ["LATENCY_TARGET", "curve", "timing"]

LATENCY_TARGET = 1.5
Say = Callable[[str], None]


def _stats(latencies: Sequence[float], seconds: float, failed: int) -> dict[str, Any]:
    values = percentiles([x * 1000.0 for x in latencies], (50, 90, 99, 100))
    p50, p90, p99, top = (None if v is None else round(v, 1) for v in values)
    return {
        "requests": len(latencies),
        "failed": failed,
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(latencies) / seconds, 2) if seconds > 0 else None,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": top,
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


async def _latency(
    bot: Bot, texts: Sequence[str], clients: int, config: RetrainBenchConfig, say: Say
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
        idle_start, idle_cpu = time.perf_counter(), cpu_seconds()
        await asyncio.sleep(config.window_s)
        busy_start, busy_cpu = time.perf_counter(), cpu_seconds()
        runs = []
        while not runs or time.perf_counter() - busy_start < config.window_s:
            say(f"latency: {clients} client(s), retrain #{len(runs) + 1} under load")
            runs.append(await timed_retrain(bot))
        busy_end, end_cpu = time.perf_counter(), cpu_seconds()
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
        "p99_ratio": ratio(busy["p99_ms"], idle["p99_ms"]),
        "p50_ratio": ratio(busy["p50_ms"], idle["p50_ms"]),
        "target_ratio": LATENCY_TARGET,
    }


async def timing(
    encoder: SentenceEncoder,
    scratch_db: Path,
    workdir: Path,
    data: Data,
    config: RetrainBenchConfig,
    say: Say,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    rows_out: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] | None = None
    for n in config.sizes:
        rows = data.pool.iloc[:n]
        db = workdir / f"timing-{n}.db"
        clone(scratch_db, db)
        bot = await open_bot(db, encoder)
        try:
            say(f"timing {n}: logging {n} predictions and votes")
            started = time.perf_counter()
            outcomes = await vote_direct(bot, rows, 0, config)
            feed_s = time.perf_counter() - started
            runs = []
            for r in range(config.repeats):
                say(f"timing {n}: retrain {r + 1}/{config.repeats}")
                runs.append(await timed_retrain(bot))
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


async def curve(
    encoder: SentenceEncoder,
    scratch_db: Path,
    workdir: Path,
    data: Data,
    config: RetrainBenchConfig,
    say: Say,
    progress: bool,
) -> dict[str, Any]:
    assert data.train is not None and data.held_out is not None
    say(f"learning curve: features of {len(data.held_out)} held-out texts")
    X_hold, fill = fill_cache(scratch_db, encoder, data.held_out["text"].tolist(), progress)
    y_hold = data.held_out["label"]
    db = workdir / "curve.db"
    clone(scratch_db, db)
    bot = await open_bot(db, encoder)
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
                "seed_eval_active": metric_summary(seed_eval),
                "seed_eval_recorded": metric_summary(
                    fixed_metrics(active.metrics if active else None)
                ),
                "held_out_active": metric_summary(start_metrics.summary()),
            }
        )
        previous = 0
        for n in config.curve_steps:
            batch = data.train.iloc[previous:n]
            say(f"learning curve: feeding items {previous + 1}..{n} through the Router")
            started = time.perf_counter()
            outcomes = await vote_through_router(bot, batch, previous, config)
            feed_s = time.perf_counter() - started
            say(f"learning curve: retrain after {n} items")
            run = await timed_retrain(bot)
            active_version = await bot.store.active_version(encoder.feature_key)
            assert active_version is not None
            active_head = load_head_for(Path(active_version.path), encoder)
            point = {
                "n": n,
                "votes": outcomes,
                "feed_s": round(feed_s, 2),
                **run,
                "active_version": active_version.id,
                "seed_eval_active": metric_summary(
                    await asyncio.to_thread(evaluation_metrics, encoder, bot.cache, active_head)
                ),
                "held_out_active": metric_summary(evaluate(active_head, X_hold, y_hold).summary()),
                "held_out_candidate": None,
            }
            if run["candidate_version"] is not None:
                candidate = await bot.store.get_version(run["candidate_version"])
                assert candidate is not None
                head = load_head_for(Path(candidate.path), encoder)
                point["held_out_candidate"] = metric_summary(
                    evaluate(head, X_hold, y_hold).summary()
                )
            say(
                f"  {run['status']}: seed-eval {f1_text(run['seed_eval_before'])} -> "
                f"{f1_text(run['seed_eval_after'])}, held-out active "
                f"{f1_text(point['held_out_active'])}, "
                f"candidate {f1_text(point['held_out_candidate'])}"
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
