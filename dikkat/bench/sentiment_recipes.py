"""The shipped head's recipe step by step (polarity-only loss, smoothing) on every shared set."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import LABELS
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.candidate import seed_split
from dikkat.training.data import split_train_val
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.seed_head import LABEL_SMOOTHING, PUBLIC_SETS, train_with_shipped_recipe

# recipe -> (two-class rows teach polarity only, label smoothing)
RECIPES = {
    "before: 3-class loss on every row": (False, 0.0),
    "two-class rows teach polarity only": (True, 0.0),
    f"now: polarity only + label smoothing {LABEL_SMOOTHING}": (True, LABEL_SMOOTHING),
}
HELD_OUT_FRACTION, SPLIT_SEED = 0.25, 0
SEEDS = (0, 1, 2)


def recipe_sets(
    frames: dict[str, pd.DataFrame],
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Training rows (seed-train + 75% of each MIT set) and the test sets: the fixed set, each
    MIT set's held-out 25% (seed 0), and every set no shipped head may learn from."""
    seed_train, fixed = seed_split()
    parts = [seed_train.assign(polarity_only=False)]
    tests = {"fixed set (seed corpus 25%)": fixed}
    for public in PUBLIC_SETS:
        frame = frames[public.file]
        if public.trainable:
            train, test = split_train_val(frame, HELD_OUT_FRACTION, SPLIT_SEED)
            parts.append(train.assign(polarity_only=public.two_class))
            tests[f"{public.file} (25% held out)"] = test
        else:
            tests[f"{public.file} (never trained on)"] = frame
    data = pd.concat(parts, ignore_index=True).drop_duplicates("text", keep="first")
    held_texts = set().union(*(set(t["text"]) for t in tests.values()))
    return data[~data["text"].isin(held_texts)].reset_index(drop=True), tests


def compare_recipes(
    encoder: SentenceEncoder,
    cache: FeatureCache,
    frames: dict[str, pd.DataFrame],
    *,
    seeds: tuple[int, ...] = SEEDS,
    progress: bool = False,
) -> dict[str, Any]:
    """Per recipe and test set: macro-F1 mean and spread over `seeds`, accuracy, recall."""
    data, tests = recipe_sets(frames)
    X = {
        name: features_for(t["text"].tolist(), encoder, cache, progress=progress)
        for name, t in tests.items()
    }
    report: dict[str, Any] = {}
    for recipe, (polarity_only, smoothing) in RECIPES.items():
        rows = data if polarity_only else data.drop(columns="polarity_only")
        runs = [
            train_with_shipped_recipe(
                rows, encoder, cache, seed=seed, progress=progress, label_smoothing=smoothing
            ).head
            for seed in seeds
        ]
        report[recipe] = {
            name: _over_seeds([evaluate(head, X[name], test["label"]) for head in runs])
            for name, test in tests.items()
        }
    return {"training_rows": len(data), "seeds": list(seeds), "recipes": report}


def _over_seeds(metrics: list) -> dict[str, Any]:
    f1 = np.array([m.macro_f1 for m in metrics])
    present = [label for label, c in metrics[0].per_class.items() if c.support]
    neutral = LABELS.index("neutral")
    summary = {
        "n": metrics[0].n,
        "macro_f1": round(float(f1.mean()), 4),
        "macro_f1_spread": round(float(f1.max() - f1.min()), 4),
        "accuracy": round(float(np.mean([m.accuracy for m in metrics])), 4),
        "recall": {
            label: round(float(np.mean([m.per_class[label].recall for m in metrics])), 3)
            for label in present
        },
        "answered_neutral": round(
            float(np.mean([np.array(m.confusion)[:, neutral].sum() / m.n for m in metrics])), 3
        ),
    }
    if metrics[0].binary_accuracy is not None:
        summary["binary_accuracy"] = round(float(np.mean([m.binary_accuracy for m in metrics])), 4)
    return summary


def format_recipes(comparison: dict[str, Any]) -> list[str]:
    """Markdown: one row per recipe and test set."""
    lines = [
        f"| recipe ({len(comparison['seeds'])} seeds) | test set | n | macro-F1 (spread) | "
        "accuracy | recall neg / neu / pos | answered neutral |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for recipe, sets in comparison["recipes"].items():
        for name, m in sets.items():
            recall = " / ".join(
                f"{m['recall'][label]:.2f}" if label in m["recall"] else "–"
                for label in ("negative", "neutral", "positive")
            )
            lines.append(
                f"| {recipe} | {name} | {m['n']:,} | {m['macro_f1']:.3f} "
                f"({m['macro_f1_spread']:.3f}) | {m['accuracy']:.3f} | {recall} | "
                f"{m['answered_neutral']:.0%} |"
            )
    return lines
