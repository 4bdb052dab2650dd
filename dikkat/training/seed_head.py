"""The shipped head's recipe: seed corpus (training part) + the MIT-licensed public Turkish sets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import HeadMeta, SentimentHead
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.data import load_labelled_csv
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.rehearsal import Rehearsal, sample_rows
from dikkat.training.sentiment import TrainResult, make_meta

log = logging.getLogger(__name__)

LEARNING_RATE = 3e-4
BATCH_SIZE = 128
LABEL_SMOOTHING = 0.2  # store reviews (never trained on), 10 seeds: macro-F1 0.570 -> 0.584


@dataclass(frozen=True)
class PublicSet:
    """A labelled set that a shipped model may learn from, or (no licence) only be judged on."""

    file: str
    domain: str
    licence: str
    source: str
    two_class: bool  # labelled negative / positive only: teaches polarity, says nothing of neutral
    rehearsal_rows: int = 0  # how many of its rows the shipped rehearsal buffer keeps

    @property
    def trainable(self) -> bool:
        """Only sets with a stated licence that allows it may train a shipped model."""
        return self.licence == "MIT"


PUBLIC_SETS: tuple[PublicSet, ...] = (
    PublicSet(
        "movies_beyazperde_binary.csv",
        "movie reviews (beyazperde.com)",
        "MIT",
        "cemrifki/sentiment-embeddings : input/Sentiment_dataset_turk.csv @ 7b22dcfd",
        two_class=True,
        rehearsal_rows=2500,
    ),
    PublicSet(
        "tweets_aydin_binary.csv",
        "general tweets",
        "MIT",
        "cemrifki/sentiment-embeddings : input/Turkish_twitter_{train,test}.csv @ 7b22dcfd",
        two_class=True,
        rehearsal_rows=1500,
    ),
    PublicSet(
        "store_reviews_3class.csv",
        "e-commerce product reviews",
        "none stated (evaluation only)",
        "talhaucarr/data-mining-project : magaza_yorumlari_duygu_analizi.csv @ 71b707f3",
        two_class=False,
    ),
)


@dataclass
class SeedHeadReport:
    """The trained head, its metadata, and its scores on every evaluation set."""

    head: SentimentHead
    meta: HeadMeta
    evaluations: dict[str, dict[str, Any]]
    rehearsal: Rehearsal | None


def missing_training_sets(data_dir: Path) -> list[str]:
    """The trainable public files that `data_dir` lacks."""
    return [s.file for s in PUBLIC_SETS if s.trainable and not (data_dir / s.file).is_file()]


def seed_head_data(
    data_dir: Path | None,
) -> tuple[pd.DataFrame, list[dict[str, Any]], pd.DataFrame]:
    """(training rows, where they came from, the fixed evaluation quarter): seed-train plus the
    trainable public sets in `data_dir`, without duplicates and without any evaluation text."""
    from dikkat.training.candidate import seed_split

    seed_train, evaluation = seed_split()
    parts = [seed_train.assign(source="seed_corpus.csv", polarity_only=False)]
    sources: list[dict[str, Any]] = [
        {"file": "seed_corpus.csv", "rows": len(seed_train), "licence": "MIT (this project)"}
    ]
    if data_dir is not None:
        for public in PUBLIC_SETS:
            if public.trainable:
                frame = load_labelled_csv(data_dir / public.file)
                parts.append(frame.assign(source=public.file, polarity_only=public.two_class))
                sources.append(
                    {
                        "file": public.file,
                        "rows": len(frame),
                        "licence": public.licence,
                        "source": public.source,
                        "loss": "negative vs positive only" if public.two_class else "3 classes",
                    }
                )
    data = pd.concat(parts, ignore_index=True).drop_duplicates("text", keep="first")
    data = data[~data["text"].isin(set(evaluation["text"]))].reset_index(drop=True)
    return data, sources, evaluation


def train_seed_head(
    encoder: SentenceEncoder,
    cache: FeatureCache | None,
    data_dir: Path | None,
    *,
    seed: int = 0,
    progress: bool = True,
) -> SeedHeadReport:
    """Train from scratch on seed-train (+ the MIT sets when `data_dir` is given); never on
    the retrain job's fixed evaluation quarter. Scores it there and on every other set present."""
    data, sources, evaluation = seed_head_data(data_dir)
    result = train_with_shipped_recipe(data, encoder, cache, seed=seed, progress=progress)
    buffer = rehearsal_buffer(data, encoder, cache, seed) if data_dir is not None else None
    X_eval = features_for(evaluation["text"].tolist(), encoder, cache, progress=progress)
    fixed = evaluate(result.head, X_eval, evaluation["label"])
    evaluations = {"seed_corpus.csv (fixed evaluation quarter)": fixed}
    if data_dir is not None:
        for public in PUBLIC_SETS:
            if not public.trainable and (data_dir / public.file).is_file():
                frame = load_labelled_csv(data_dir / public.file)
                X = features_for(frame["text"].tolist(), encoder, cache, progress=progress)
                evaluations[f"{public.file} (not trained on)"] = evaluate(
                    result.head, X, frame["label"]
                )
    meta = make_meta(
        encoder,
        fixed.summary(),
        data[["text", "label"]],
        source="dikkat train seed-head",
        trained_on=sources,
        evaluation_excluded="seed_corpus.csv 25% stratified, seed 0 (the retrain job's fixed set)",
        best_epoch=result.best_epoch,
        rehearsal=None if buffer is None else {"rows": len(buffer), "from": list(buffer.sources)},
        cross_domain={
            name: {"n": m.n, "accuracy": round(m.accuracy, 4), "macro_f1": round(m.macro_f1, 4)}
            for name, m in evaluations.items()
        },
    )
    return SeedHeadReport(result.head, meta, evaluations, buffer)


def train_with_shipped_recipe(
    data: pd.DataFrame,
    encoder: SentenceEncoder,
    cache: FeatureCache | None,
    *,
    seed: int = 0,
    progress: bool = False,
    label_smoothing: float = LABEL_SMOOTHING,
) -> TrainResult:
    """The shipped head's optimiser settings on `data`, early-stopping on an inner split."""
    from dikkat.training.candidate import train_on_inner_split

    return train_on_inner_split(
        data,
        encoder,
        cache,
        seed=seed,
        progress=progress,
        lr=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        label_smoothing=label_smoothing,
    )


def rehearsal_buffer(
    data: pd.DataFrame, encoder: SentenceEncoder, cache: FeatureCache | None, seed: int
) -> Rehearsal:
    """Features of a balanced sample of each trainable two-class set's rows (numbers only)."""
    parts, sources = [], []
    for public in PUBLIC_SETS:
        rows = data[data["source"] == public.file]
        if public.trainable and public.two_class and public.rehearsal_rows and len(rows):
            sample = sample_rows(rows, public.rehearsal_rows, seed)
            parts.append(sample)
            sources.append(f"{public.file} ({len(sample)} rows; {public.source}; {public.licence})")
    rows = pd.concat(parts, ignore_index=True)
    X = features_for(rows["text"].tolist(), encoder, cache, progress=False)
    return Rehearsal(X, rows["label"].to_numpy(dtype=object), encoder.feature_key, tuple(sources))
