"""The rehearsal buffer: features of two-class public rows kept beside a head, and trained on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fakes import CountingEncoder

from dikkat.training.candidate import train_on_inner_split
from dikkat.training.rehearsal import (
    Rehearsal,
    load_rehearsal,
    rehearsal_path,
    sample_rows,
    save_rehearsal,
)


def buffer(n: int = 40, dim: int = 8) -> Rehearsal:
    rng = np.random.default_rng(0)
    labels = np.array(["negative", "positive"] * (n // 2), dtype=object)
    return Rehearsal(rng.normal(size=(n, dim)).astype(np.float32), labels, "enc@1", ("a.csv",))


def test_it_is_saved_beside_its_head_and_read_back_only_for_its_encoder(tmp_path: Path) -> None:
    path = rehearsal_path(tmp_path / "head-x.pt")
    assert path.name == "head-x.rehearsal.npz"
    int8 = rehearsal_path(tmp_path / "head-x.pt", "int8-ct2")
    assert int8.name == "head-x.int8-ct2.rehearsal.npz"
    original = buffer()
    save_rehearsal(original, path)
    loaded = load_rehearsal(path, "enc@1")
    assert loaded is not None and loaded.sources == ("a.csv",)
    assert list(loaded.labels) == list(original.labels)
    np.testing.assert_allclose(loaded.features, original.features, atol=1e-2)  # float16 on disk
    assert load_rehearsal(path, "another encoder") is None
    assert load_rehearsal(tmp_path / "missing.rehearsal.npz", "enc@1") is None


def test_it_holds_two_class_rows_only_and_splits_without_losing_any() -> None:
    with pytest.raises(ValueError, match="two-class"):
        Rehearsal(np.zeros((1, 2), np.float32), np.array(["neutral"]), "e", ())
    rest, held = buffer(40).split(0.25, seed=1)
    assert (len(rest), len(held)) == (30, 10)
    both = np.concatenate([rest.features, held.features])
    assert sorted(map(tuple, both)) == sorted(map(tuple, buffer(40).features))


def test_a_balanced_sample_per_label() -> None:
    frame = pd.DataFrame(
        {"text": [f"t{i}" for i in range(100)], "label": ["negative"] * 80 + ["positive"] * 20}
    )
    sample = sample_rows(frame, 60, seed=0)
    assert sample["label"].value_counts().to_dict() == {"negative": 30, "positive": 20}


def test_training_sees_the_buffer_as_polarity_only_rows_in_both_splits() -> None:
    data = pd.DataFrame(
        {
            "text": [f"metin {i}" for i in range(60)],
            "label": ["negative", "neutral", "positive"] * 20,
        }
    )
    seen = {}

    def fit(X, y, X_val, y_val, *, seed, polar_train, polar_val, **options):
        seen.update(X=X, y=y, X_val=X_val, polar_train=polar_train, polar_val=polar_val)
        return SimpleNamespace(history=[])

    encoder = CountingEncoder(dim=8)
    train_on_inner_split(data, encoder, None, fit=fit, rehearsal=buffer(40))
    assert len(seen["X"]) + len(seen["X_val"]) == 60 + 40
    assert seen["polar_train"].sum() + seen["polar_val"].sum() == 40  # only the buffer's rows
    assert seen["polar_val"].sum() == 6  # the same inner share of the buffer (15%)
    assert set(seen["y"][seen["polar_train"]]) == {"negative", "positive"}
