"""A candidate head: seed-train + the training share of feedback, scored on the fixed set and
on held-out feedback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dikkat.hashing import text_hash
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import SentimentHead
from dikkat.storage.features import FeatureCache
from dikkat.training.data import load_labelled_csv, seed_corpus_path, split_train_val
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.profile import RunProfile
from dikkat.training.sentiment import TrainResult, train_head

EVAL_FRACTION = 0.25


EVAL_SEED = 0


INNER_VAL_FRACTION = 0.15


def seed_split(seed: int = EVAL_SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed corpus as (training part, fixed evaluation set): stratified 75/25."""
    return split_train_val(load_labelled_csv(seed_corpus_path()), EVAL_FRACTION, seed)


def merge_training_data(seed_train: pd.DataFrame, feedback: list[tuple[str, str]]) -> pd.DataFrame:
    """Seed training rows plus feedback; a feedback label overrides the seed label of its text."""
    corrected = pd.DataFrame(feedback, columns=["text", "label"])
    kept = seed_train[~seed_train["text"].isin(set(corrected["text"]))]
    return pd.concat([kept, corrected], ignore_index=True)


def is_held_out(text: str, share: float) -> bool:
    """Whether a feedback text belongs to the held-out evaluation share (stable: by text hash)."""
    return int(text_hash(text)[:8], 16) < share * 0x1_0000_0000


def split_feedback(
    feedback: list[tuple[str, str]], share: float
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training feedback, held-out feedback): a text never moves between the two."""
    train: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for row in feedback:
        (held if is_held_out(row[0], share) else train).append(row)
    return train, held


def train_on_inner_split(
    data: pd.DataFrame,
    encoder: SentenceEncoder,
    cache: FeatureCache | None,
    *,
    seed: int = 0,
    progress: bool = False,
    profile: RunProfile | None = None,
    fit: Callable[..., TrainResult] = train_head,
    **options: Any,
) -> TrainResult:
    """Train a head on `data`, early-stopping on a stratified inner split of it (options go to
    `fit`, train_head or a stand-in with its signature): the recipe of retrain candidates, the
    shipped head and the benchmarks."""
    profile = profile or RunProfile()
    fit_rows, inner_val = split_train_val(data, INNER_VAL_FRACTION, seed)
    with profile.phase("features"):
        X_fit = features_for(fit_rows["text"].tolist(), encoder, cache, progress=progress)
        X_inner = features_for(inner_val["text"].tolist(), encoder, cache, progress=progress)
    with profile.phase("train"):
        result = fit(X_fit, fit_rows["label"], X_inner, inner_val["label"], seed=seed, **options)
    profile.epochs = len(result.history)
    return result


@dataclass
class CandidateReport:
    """A trained candidate and both heads' metrics on the fixed set and on held-out feedback."""

    head: SentimentHead
    before: dict[str, Any]
    after: dict[str, Any]
    data: pd.DataFrame


def train_candidate(
    encoder: SentenceEncoder,
    cache: FeatureCache | None,
    active: SentimentHead | None,
    feedback: list[tuple[str, str]],
    *,
    holdout_share: float = 0.0,
    seed: int = 0,
    torch_threads: int | None = None,
    progress: bool = False,
    profile: RunProfile | None = None,
    fit: Callable[..., TrainResult] = train_head,
) -> CandidateReport:
    """Train on seed-train + the training share of feedback; score both heads on the fixed set
    and on the held-out feedback share.

    The candidate starts from the active head's weights (the shipped head learnt from public
    sets that are not here at run time); with no active head it starts from scratch and
    `before` is empty. Early stopping uses an inner split of the training rows. `profile`, if
    given, receives the seconds of the features, train and evaluate phases; `fit` trains the head
    (train_head here, or `train_head_in_worker` away from the serving process's GIL).
    """
    profile = profile or RunProfile()
    seed_train, evaluation = seed_split()
    train_feedback, held_feedback = split_feedback(feedback, holdout_share)
    held = pd.DataFrame(held_feedback, columns=["text", "label"])
    excluded = set(evaluation["text"]) | set(held["text"])
    data = merge_training_data(seed_train, train_feedback)
    data = data[~data["text"].isin(excluded)]
    result = train_on_inner_split(
        data,
        encoder,
        cache,
        seed=seed,
        progress=progress,
        torch_threads=torch_threads,
        init=active,
        profile=profile,
        fit=fit,
    )
    with profile.phase("features"):
        X_eval = features_for(evaluation["text"].tolist(), encoder, cache, progress=progress)
        X_held = features_for(held["text"].tolist(), encoder, cache, progress=progress)

    def scores(head: SentimentHead) -> dict[str, Any]:
        on_feedback = evaluate(head, X_held, held["label"]).summary() if len(held) else {"n": 0}
        return {
            "fixed": evaluate(head, X_eval, evaluation["label"]).summary(),
            "feedback": on_feedback,
        }

    with profile.phase("evaluate"):
        before = {} if active is None else scores(active)
        after = scores(result.head)
    return CandidateReport(head=result.head, before=before, after=after, data=data)


def evaluation_metrics(
    encoder: SentenceEncoder, cache: FeatureCache | None, head: SentimentHead
) -> dict[str, Any]:
    """A head's metrics on the fixed evaluation set (the seed corpus's held-out quarter)."""
    _, evaluation = seed_split()
    X_eval = features_for(evaluation["text"].tolist(), encoder, cache, progress=False)
    return evaluate(head, X_eval, evaluation["label"]).summary()
