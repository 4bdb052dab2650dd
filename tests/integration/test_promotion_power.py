"""Luck does not decide a promotion. On real features (the seed corpus through MiniLM) and the
shipped head's real answers, candidates are made truly better or worse on the whole pool; the
promotion rule then sees random draws of held-out feedback, as retrains do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dikkat.models.head import load_head
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.data import label_indices, load_labelled_csv, seed_corpus_path
from dikkat.training.features import features_for
from dikkat.training.promotion import Paired, decide, macro_f1_rows

DRAWS = 200
HELD_OUT = 400  # held-out feedback texts: the 20% share of 2,000 corrections
DISCORDANCE = 0.15  # share of texts two heads answer differently (a retrain's candidate vs active)


def macro_f1(gold: np.ndarray, answers: np.ndarray) -> float:
    return float(macro_f1_rows(gold[None], answers[None])[0])


def candidate_with_gap(gold: np.ndarray, active: np.ndarray, gap: float, seed: int) -> np.ndarray:
    """Answers that differ from `active` on DISCORDANCE of the texts, fixing some of its errors
    and breaking some right answers, so that pool macro-F1 is `gap` above the active head's."""
    rng = np.random.default_rng(seed)
    wrong = rng.permutation(np.flatnonzero(active != gold))
    right = rng.permutation(np.flatnonzero(active == gold))
    changed = round(DISCORDANCE * len(gold))
    base = macro_f1(gold, active)
    best, best_error = active, np.inf
    for fixed in range(min(changed, len(wrong)) + 1):
        broken = right[: changed - fixed]
        candidate = active.copy()
        candidate[wrong[:fixed]] = gold[wrong[:fixed]]
        candidate[broken] = (gold[broken] + rng.integers(1, 3, len(broken))) % 3
        error = abs(macro_f1(gold, candidate) - base - gap)
        if error < best_error:
            best, best_error = candidate, error
    assert best_error < 0.005, "the pool cannot make a candidate with this gap"
    return best


def promotion_rate(gold: np.ndarray, active: np.ndarray, candidate: np.ndarray) -> float:
    """Share of random held-out draws on which the rule promotes (the fixed set is a tie)."""
    rng = np.random.default_rng(1)
    fixed = {"fixed": {"n": 700, "accuracy": 0.7, "macro_f1": 0.7}}
    promoted = 0
    for _ in range(DRAWS):
        rows = rng.choice(len(gold), HELD_OUT, replace=False)
        held = Paired(gold[rows], active[rows], candidate[rows])
        decision = decide(
            fixed,
            fixed,
            held=held,
            floor=0.6,
            confidence=0.9,
            tolerance=0.01,
            min_feedback_eval=20,
        )
        promoted += decision.promote
    return promoted / DRAWS


@pytest.fixture(scope="module")
def real_answers(minilm_encoder, seed_features_db: Path, shipped_head_path: Path):
    corpus = load_labelled_csv(seed_corpus_path())
    cache = FeatureCache.open(seed_features_db, minilm_encoder.feature_key)
    try:
        X = features_for(corpus["text"].tolist(), minilm_encoder, cache, progress=False)
    finally:
        cache.close()
    head, _ = load_head(shipped_head_path, encoder_id=minilm_encoder.encoder_id)
    return label_indices(corpus["label"]), head.predict_proba(X).argmax(axis=1)


@pytest.mark.parametrize(("gap", "bound"), [(0.05, 0.90), (-0.03, 0.05)])
def test_promotion_follows_the_true_gap_not_the_draw(real_answers, gap: float, bound: float):
    gold, active = real_answers
    assert len(gold) >= 2 * HELD_OUT, "the pool must be larger than a draw"
    candidate = candidate_with_gap(gold, active, gap, seed=7)
    rate = promotion_rate(gold, active, candidate)
    print(f"true gap {gap:+.2f}: promoted in {rate:.0%} of {DRAWS} draws of {HELD_OUT} texts")
    assert rate >= bound if gap > 0 else rate <= bound
