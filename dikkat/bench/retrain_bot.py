"""A bot on a scratch database, built by App, and what the benchmark does with it: votes through
the Router, and retrain runs timed by the retrain job's own phase record (RunProfile)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dikkat.app import App
from dikkat.bench.retrain_data import RetrainBenchConfig
from dikkat.bot.i18n import LABEL_NAMES, t
from dikkat.bot.router import Router
from dikkat.bot.types import ButtonPress, Request
from dikkat.config import Settings
from dikkat.hashing import text_hash
from dikkat.inference.service import InferenceService
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import LABELS, SentimentHead
from dikkat.storage.feature_cache import FeatureCache
from dikkat.storage.records import RetrainRun
from dikkat.storage.store import Store
from dikkat.training.promotion import fixed_metrics
from dikkat.training.retrain import RetrainJob

__all__ = [
    "PHASES",
    "PLATFORM",
    "Bot",
    "f1_text",
    "metric_summary",
    "open_bot",
    "timed_retrain",
    "vote_direct",
    "vote_through_router",
]

PLATFORM = "telegram"
OUTCOMES = ("created", "changed", "unchanged", "missing")
PHASES = {  # RunProfile's phases (dikkat.training.retrain.PHASES), as the report names them
    "gather": "read feedback votes, load the active head",
    "features": "features (remembered ones persisted, cache lookup)",
    "train": "train head",
    "evaluate": "evaluate both heads",
    "save": "save head (file, checksum, version row)",
}
OTHER = "other (decision, activation, swap, run row)"


@dataclass
class Bot:
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


async def open_bot(db: Path, encoder: SentenceEncoder) -> Bot:
    settings = Settings(db_path=db, model_dir=db.parent / f"{db.stem}-models", head_poll_s=0)
    app = App(settings, encoder=encoder)
    router = await app.start()
    router.rate_limiter.burst = 10**9  # benchmark clients are not people
    assert app.store and app.cache is not None and app.service and app.retrainer
    pipeline = app.service.sentiment_pipeline
    return Bot(
        app, settings, app.store, app.cache, app.service, app.retrainer, router,
        pipeline.head, pipeline.head_version,
    )  # fmt: skip


def _user(index: int, config: RetrainBenchConfig) -> str:
    return f"bench-{index // config.votes_per_user}"


async def vote_direct(
    bot: Bot, rows: pd.DataFrame, start: int, config: RetrainBenchConfig
) -> dict[str, int]:
    """Predictions logged as Router._sentiment logs them (answer from the cached features, no
    encoder), votes through Router.handle_button. Returns the feedback outcomes."""
    hashes = [text_hash(t) for t in rows["text"]]
    found = await bot.store.get_features(bot.cache.feature_key, hashes)
    X = np.stack([found[key] for key in hashes])
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


async def _press(bot: Bot, user: str, data: str, outcomes: dict[str, int]) -> None:
    reply = await bot.router.handle_button(ButtonPress(PLATFORM, user, user, data, "en"))
    label = LABEL_NAMES[data.rsplit(":", 1)[-1]]["en"] if data.count(":") == 2 else ""
    key = next(
        (o for o in OUTCOMES if reply.text == t(f"feedback_{o}", "en", label=label)), "other"
    )
    outcomes[key] = outcomes.get(key, 0) + 1


async def vote_through_router(
    bot: Bot, rows: pd.DataFrame, start: int, config: RetrainBenchConfig
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


async def timed_retrain(bot: Bot) -> dict[str, Any]:
    """One retrain run through the job; its wall time and the phases the job recorded."""
    started = time.perf_counter()
    run = await bot.retrainer.run("admin", "bench")
    wall = time.perf_counter() - started
    profile = bot.retrainer.last_profile
    assert profile is not None and profile.run_id == run.id
    phases = {PHASES.get(k, k): round(v, 3) for k, v in profile.seconds.items()}
    phases[OTHER] = round(wall - sum(profile.seconds.values()), 3)
    return {
        **_run_summary(run),
        "wall_s": round(wall, 3),
        "encoded_texts": profile.encoded_texts,
        "epochs": profile.epochs,
        "train_rows": run.n_train,
        "phases_s": phases,
    }


def _run_summary(run: RetrainRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "status": run.status,
        "n_feedback": run.n_feedback,
        "n_train": run.n_train,
        "seed_eval_before": metric_summary(fixed_metrics(run.metrics_before)),
        "seed_eval_after": metric_summary(fixed_metrics(run.metrics_after)),
        "feedback_eval_before": metric_summary((run.metrics_before or {}).get("feedback")),
        "feedback_eval_after": metric_summary((run.metrics_after or {}).get("feedback")),
        "candidate_version": run.candidate_version,
        "error": run.error,
    }


def metric_summary(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """Macro-F1, accuracy and n of a metrics record, rounded (None without macro-F1)."""
    if not metrics or "macro_f1" not in metrics:
        return None
    keys = ("macro_f1", "accuracy", "n")
    return {k: round(float(metrics[k]), 4) for k in keys if k in metrics}


def f1_text(metrics: dict[str, float] | None) -> str:
    """Macro-F1 as text, '-' without it."""
    return "-" if not metrics else f"{metrics['macro_f1']:.3f}"
