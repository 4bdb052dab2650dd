"""Sentiment training: labels, CSV loading, split, cached features, training, metrics, curves."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fakes import CountingEncoder
from PIL import Image

from dikkat.models.head import LABELS, load_head
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.data import (
    data_hash,
    load_labelled_csv,
    normalise_label,
    parse_label_map,
    split_train_val,
)
from dikkat.training.features import feature_cache_for, features_for
from dikkat.training.metrics import evaluate, format_report
from dikkat.training.sentiment import SentimentLoss, train_head
from dikkat.training.sentiment_csv import evaluate_from_csv, train_sentiment_from_csv
from dikkat.viz.curves import training_curves_png


def separable(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs, one per label."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = rng.normal(scale=3.0, size=(3, dim))
    return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("olumlu", "positive"), ("Pozitif", "positive"), ("POSITIVE", "positive"),
        ("pos", "positive"), ("OLUMSUZ", "negative"), ("negatif", "negative"),
        ("Negative", "negative"), ("neg", "negative"), ("nötr", "neutral"), ("NÖTR", "neutral"),
        ("notr", "neutral"), ("tarafsız", "neutral"), ("TARAFSIZ", "neutral"),
        ("Tarafsiz", "neutral"), ("neutral", "neutral"), ("  Olumlu ", "positive"),
        ("POZİTİF", "positive"), ("NEGATİF", "negative"),
    ],
)  # fmt: skip
def test_label_normalisation(raw: str, label: str) -> None:
    assert normalise_label(raw) == label


def test_numeric_labels_need_a_mapping() -> None:
    with pytest.raises(ValueError, match="mapping"):
        normalise_label("1")
    with pytest.raises(ValueError, match="mapping"):
        normalise_label(0)
    mapping = parse_label_map("0=negative, 1=olumlu ,2=nötr")
    assert mapping == {"0": "negative", "1": "positive", "2": "neutral"}
    assert normalise_label(1, mapping) == "positive" and normalise_label(2.0, mapping) == "neutral"
    with pytest.raises(ValueError, match="unknown label"):
        normalise_label("belki")
    with pytest.raises(ValueError, match="0=negative"):
        parse_label_map("0:negative")


def test_load_labelled_csv_drops_empty_texts_and_maps_labels(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("yorum,puan\nharika,1\n,0\n   ,1\nberbat,0\n", encoding="utf-8")
    df = load_labelled_csv(path, "yorum", "puan", "0=negative,1=positive")
    assert df.to_dict("list") == {"text": ["harika", "berbat"], "label": ["positive", "negative"]}
    assert df.attrs["dropped"] == 2
    with pytest.raises(ValueError, match="mapping"):
        load_labelled_csv(path, "yorum", "puan")
    with pytest.raises(ValueError, match="columns are"):
        load_labelled_csv(path, "text", "label")


def test_split_is_stratified_and_seeded() -> None:
    df = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(80)],
            "label": ["negative"] * 40 + ["neutral"] * 20 + ["positive"] * 20,
        }
    )
    train, val = split_train_val(df, 0.25, seed=0)
    assert len(val) == 20 and val["label"].value_counts().to_dict() == {
        "negative": 10,
        "neutral": 5,
        "positive": 5,
    }
    assert split_train_val(df, 0.25, seed=0)[1].equals(val)
    assert data_hash(df) == data_hash(df.iloc[::-1]) != data_hash(df.iloc[1:])  # fmt: skip


def test_feature_cache_avoids_re_encoding(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = feature_cache_for(encoder, tmp_path / "f.db")
    texts = ["iyi film", "kötü film", "iyi film", "bir film"]
    first = features_for(texts, encoder, cache, batch_size=2, progress=False)
    assert first.shape == (4, 8) and sorted(encoder.encoded) == [
        "bir film",
        "iyi film",
        "kötü film",
    ]
    encoder.encoded.clear()
    second = features_for(texts + ["yeni"], encoder, cache, progress=False)
    assert encoder.encoded == ["yeni"]
    np.testing.assert_array_equal(first, second[:4])
    with pytest.raises(ValueError, match="feature cache is for"):
        features_for(texts, encoder, FeatureCache.open(tmp_path / "f.db", "other"), progress=False)


def test_training_on_a_separable_set_reaches_high_accuracy() -> None:
    X, y = separable(300)
    Xv, yv = separable(90, seed=0)
    result = train_head(X[:240], y[:240], X[240:], y[240:], epochs=40, patience=8, seed=0)
    assert result.metrics.accuracy > 0.9 and result.metrics.macro_f1 > 0.9
    assert 1 <= result.best_epoch <= len(result.history) <= 40
    assert set(result.history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}
    again = train_head(X[:240], y[:240], X[240:], y[240:], epochs=40, patience=8, seed=0)
    assert again.history == result.history  # deterministic
    assert evaluate(result.head, Xv, yv).accuracy > 0.9


def test_imbalanced_classes_get_weights() -> None:
    X, y = separable(200)
    keep = (y != 0) | (np.arange(200) < 30)
    result = train_head(X[keep], y[keep], epochs=3, seed=0)
    assert result.class_weights is not None and result.class_weights[0] > result.class_weights[2]
    assert len(result.history) == 3 and result.metrics is None


def test_evaluation_json_and_binary_accuracy() -> None:
    y = np.array([0, 0, 2, 2])
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])
    metrics = evaluate(None, np.zeros((4, 1)), y, proba=proba)
    assert set(metrics.as_dict()) == {
        "n",
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion",
        "binary_accuracy",
    }
    assert metrics.n == 4 and metrics.accuracy == 0.5
    assert metrics.binary_accuracy == 0.5  # row 2 -> negative, row 4 -> negative
    assert metrics.confusion == [[1, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert list(metrics.per_class) == list(LABELS)
    assert metrics.per_class["positive"].support == 2
    assert set(metrics.as_dict()["per_class"]["positive"]) == {
        "precision",
        "recall",
        "f1",
        "support",
    }
    assert metrics.summary() == {"n": 4, "accuracy": 0.5, "macro_f1": metrics.macro_f1}
    json.dumps(metrics.as_dict())
    three = evaluate(None, np.zeros((3, 1)), ["negative", "neutral", "positive"], proba=np.eye(3))
    assert three.binary_accuracy is None and three.macro_f1 == 1.0
    assert "binary_accuracy" not in three.as_dict()
    report = format_report(metrics)
    assert "macro-F1" in report and "binary accuracy" in report and "confusion" in report


def test_curves_png_decodes_with_the_expected_size() -> None:
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5, "val_acc": 0.4}
        for e in range(1, 6)
    ]
    image = Image.open(io.BytesIO(training_curves_png(history, best_epoch=3)))
    assert image.format == "PNG" and image.size == (1100, 450)
    with pytest.raises(ValueError):
        training_curves_png([])


def test_train_and_evaluate_from_csv(tmp_path: Path) -> None:
    rows = [("iyi " + w, "olumlu") for w in "abcdefghijklmnopqrst"]
    rows += [("kötü " + w, "olumsuz") for w in "abcdefghijklmnopqrst"]
    rows += [("bir " + w, "nötr") for w in "abcdefghijklmnopqrst"]
    data = tmp_path / "d.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(data, index=False)
    encoder = CountingEncoder()
    outcome = train_sentiment_from_csv(
        data, encoder, out_dir=tmp_path / "heads", curves=tmp_path / "c.png",
        db_path=tmp_path / "f.db", epochs=30, progress=False,
    )  # fmt: skip
    assert outcome.n_train == 45 and outcome.n_val == 15 and outcome.curves_path.is_file()
    assert outcome.head_path is not None and outcome.head_path.with_suffix(".json").is_file()
    head, meta = load_head(outcome.head_path, encoder_id="fake", dim=8)
    assert meta.metrics == outcome.metrics.as_dict() and meta.data_hash and meta.extra["seed"] == 0
    encoder.encoded.clear()
    metrics, dropped = evaluate_from_csv(
        data, encoder, head_path=outcome.head_path, db_path=tmp_path / "f.db", progress=False
    )
    assert encoder.encoded == [] and metrics.n == 60 and metrics.accuracy > 0.6
    assert dropped == 0


def test_a_polarity_only_row_never_pushes_probability_away_from_neutral() -> None:
    logits = torch.tensor([[0.3, 2.0, -1.0], [0.3, 2.0, -1.0]], requires_grad=True)
    y = torch.tensor([LABELS.index("positive")] * 2)
    SentimentLoss()(logits, y, torch.tensor([True, False])).backward()
    neutral = LABELS.index("neutral")
    assert logits.grad[0, neutral] == 0  # two-class row: only negative vs positive moves
    assert logits.grad[1, neutral] > 0  # three-class row: neutral is pushed down
    assert logits.grad[0, LABELS.index("positive")] < 0


def test_two_class_rows_teach_polarity_and_leave_neutral_to_three_class_rows() -> None:
    """A two-class set must file its mild texts under negative or positive. Counted as
    three-class rows they teach "never neutral"; as polarity-only rows they do not."""
    X, y = separable(6000, seed=3)
    labels = np.array(LABELS)[y]
    rng = np.random.default_rng(0)
    neutral = np.flatnonzero(labels == "neutral")
    mild = neutral[:1500]  # neutral-looking texts in a two-class set, labelled at random
    mild_labels = rng.choice(["negative", "positive"], len(mild))
    polar_rows = np.concatenate([np.flatnonzero(labels != "neutral")[:1400], mild])
    three_class = neutral[1500:1600]
    test = neutral[1600:]
    X_train = np.concatenate([X[polar_rows], X[three_class]])
    y_train = np.concatenate([labels[polar_rows[:1400]], mild_labels, labels[three_class]])
    polar = np.arange(len(X_train)) < len(polar_rows)

    def neutral_recall(**options) -> float:
        result = train_head(X_train, y_train, epochs=15, seed=0, **options)
        return evaluate(result.head, X[test], labels[test]).per_class["neutral"].recall

    assert neutral_recall(polar_train=polar) > 0.9
    # the same rows read as three-class rows (no class weights: only the loss differs)
    assert neutral_recall(class_weights=None) < 0.5


def test_polarity_flags_must_match_the_rows() -> None:
    X, y = separable(30)
    with pytest.raises(ValueError, match="polarity-only flags"):
        train_head(X, y, epochs=1, polar_train=np.ones(29, dtype=bool))


def test_row_weights_decide_between_conflicting_labels() -> None:
    X, _ = separable(300, seed=5)
    X = np.concatenate([X, X])  # every text twice, with opposite labels
    y = np.array(["negative"] * 300 + ["positive"] * 300)
    heavier_positive = np.array([1.0] * 300 + [4.0] * 300)
    result = train_head(X, y, epochs=10, seed=0, weights_train=heavier_positive)
    assert (result.head.predict_proba(X[:300]).argmax(1) == LABELS.index("positive")).mean() > 0.9
    with pytest.raises(ValueError, match="row weights"):
        train_head(X, y, epochs=1, weights_train=np.ones(5))
