"""What the retrain benchmark runs on: its configuration, the texts and labels, the features."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dikkat.bench.lengths import shared_data_dirs, synthetic_texts
from dikkat.hashing import text_hash
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import LABELS
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.data import load_labelled_csv, split_train_val
from dikkat.training.features import features_for

__all__ = [
    "DATA_FILE",
    "Data",
    "RetrainBenchConfig",
    "clone",
    "default_data_path",
    "default_scratch",
    "fill_cache",
    "load_data",
]

DATA_FILE = "store_reviews_3class.csv"
SPLIT_FRACTION, SPLIT_SEED = 0.25, 0


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


@dataclass
class Data:
    """Texts and labels for every part, and where they came from."""

    source: str
    pool: pd.DataFrame  # timing texts: held-out part first, then the training part
    train: pd.DataFrame | None = None  # learning-curve items come from here, in order
    held_out: pd.DataFrame | None = None
    skipped: str | None = None  # why the learning curve is skipped


def load_data(path: Path | None, config: RetrainBenchConfig, encoder: SentenceEncoder) -> Data:
    n = max(config.sizes)
    if path is None or not path.is_file():
        texts = _distinct(synthetic_texts(n, config.seed, encoder.piece_count))
        labels = np.random.default_rng(config.seed).choice(LABELS, size=n)
        why = f"{path if path else '../shared/data/sentiment/' + DATA_FILE} is absent"
        return Data(
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
        extra = _distinct(synthetic_texts(n - len(pool), config.seed, encoder.piece_count))
        labels = np.random.default_rng(config.seed).choice(LABELS, size=len(extra))
        pool = pd.concat([pool, pd.DataFrame({"text": extra, "label": labels})])
    source = (
        f"{DATA_FILE} ({len(df)} rows), stratified 75/25 split seed {SPLIT_SEED}: "
        f"{len(train)} training rows, {len(held_out)} held-out rows"
        + (f" (stratified sample, seed {config.seed})" if config.holdout_sample else "")
    )
    return Data(source, pool.reset_index(drop=True), train, held_out)


def _distinct(texts: Sequence[str]) -> list[str]:
    """Make repeated synthetic texts distinct (a vote on a repeated text would merge)."""
    seen: set[str] = set()
    out = []
    for i, text in enumerate(texts):
        out.append(text if text not in seen else f"{text} {i}")
        seen.add(out[-1])
    return out


def fill_cache(
    db: Path, encoder: SentenceEncoder, texts: Sequence[str], progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """Features of `texts` from the scratch cache, encoding (once, ever) what is missing."""
    cache = FeatureCache.open(db, encoder.feature_key)
    try:
        keys = {text_hash(t) for t in texts}
        missing = len(keys) - len(cache.get_many(keys))
        started = time.perf_counter()
        X = features_for(list(texts), encoder, cache, progress=progress and missing > 0)
        seconds = time.perf_counter() - started
    finally:
        cache.close()
    return X, {"texts": len(keys), "encoded": missing, "seconds": round(seconds, 2)}


def clone(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API, safe under WAL)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
