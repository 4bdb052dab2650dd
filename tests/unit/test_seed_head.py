"""The shipped head's recipe: which data it learns from, what it never sees, what it records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fakes import CountingEncoder
from typer.testing import CliRunner

from dikkat.models.e5_image import E5_ID
from dikkat.models.head import default_head_path, head_file_name, load_head
from dikkat.training.candidate import seed_split
from dikkat.training.rehearsal import load_rehearsal, rehearsal_path
from dikkat.training.seed_head import PUBLIC_SETS, missing_training_sets, train_seed_head


def write_public_sets(folder: Path) -> None:
    folder.mkdir()
    for public in PUBLIC_SETS:
        rows = [(f"iyi {public.file} {i}", "positive") for i in range(30)]
        rows += [(f"kötü {public.file} {i}", "negative") for i in range(30)]
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(folder / public.file, index=False)


def test_recipe_trains_on_seed_and_mit_sets_only_and_never_on_the_fixed_quarter(
    tmp_path: Path,
) -> None:
    data = tmp_path / "sets"
    assert missing_training_sets(tmp_path) == [s.file for s in PUBLIC_SETS if s.trainable]
    write_public_sets(data)
    assert missing_training_sets(data) == []
    encoder = CountingEncoder()
    report = train_seed_head(encoder, None, data, progress=False)
    _, evaluation = seed_split()
    trained = report.meta.extra["trained_on"]
    assert [s["file"] for s in trained] == [
        "seed_corpus.csv",
        "movies_beyazperde_binary.csv",
        "tweets_aydin_binary.csv",
    ]
    assert all(s["licence"].startswith("MIT") for s in trained)
    assert set(report.evaluations) == {
        "seed_corpus.csv (fixed evaluation quarter)",
        "store_reviews_3class.csv (not trained on)",
    }
    # the first two encode calls are the training rows: none from the fixed quarter or the store set
    training_texts = set(encoder.encoded[: sum(s["rows"] for s in trained)])
    assert not training_texts & set(evaluation["text"])
    assert not any("store_reviews" in text for text in training_texts)
    seed_only = train_seed_head(CountingEncoder(), None, None, progress=False)
    assert [s["file"] for s in seed_only.meta.extra["trained_on"]] == ["seed_corpus.csv"]
    assert seed_only.rehearsal is None
    assert report.rehearsal is not None and report.rehearsal.encoder_key == encoder.feature_key
    assert set(report.rehearsal.labels) == {"negative", "positive"}
    assert not any("store_reviews" in source for source in report.rehearsal.sources)


def test_the_shipped_multilingual_head_credits_its_sources() -> None:
    path = default_head_path(E5_ID, "mean")
    assert path is not None and path.stat().st_size < 1_000_000
    head, meta = load_head(path, encoder_id=E5_ID, dim=384, pooling="mean")
    files = {s["file"] for s in meta.extra["trained_on"]}
    assert files == {"seed_corpus.csv", "movies_beyazperde_binary.csv", "tweets_aydin_binary.csv"}
    assert all("7b22dcfd" in s["source"] for s in meta.extra["trained_on"][1:])
    assert meta.metrics["macro_f1"] > 0.6 and meta.metrics["n"] == len(seed_split()[1])
    losses = {s["file"]: s.get("loss") for s in meta.extra["trained_on"]}
    assert losses["movies_beyazperde_binary.csv"] == "negative vs positive only"


def test_the_shipped_rehearsal_buffer_is_numbers_from_the_mit_sets_only() -> None:
    path = default_head_path(E5_ID, "mean")
    buffer_path = rehearsal_path(path)
    assert buffer_path.stat().st_size < 4_000_000
    _, meta = load_head(path, encoder_id=E5_ID, dim=384, pooling="mean")
    with np.load(buffer_path, allow_pickle=False) as data:
        assert set(data.files) == {"features", "labels", "encoder_key", "sources"}
        assert data["features"].dtype == np.float16 and data["features"].shape[1] == 384
        key = str(data["encoder_key"])
    buffer = load_rehearsal(buffer_path, key)
    assert buffer is not None and len(buffer) == meta.extra["rehearsal"]["rows"] > 1000
    assert all("MIT" in source and "store_reviews" not in source for source in buffer.sources)
    assert set(buffer.labels) == {"negative", "positive"}


def test_train_rehearsal_writes_the_buffer_of_the_configured_precision_beside_the_head(
    settings, tmp_path: Path, monkeypatch
) -> None:
    import dikkat.cli.train as train_cli
    from dikkat.cli import app

    write_public_sets(tmp_path / "sets")
    encoder = CountingEncoder()
    encoder.precision_tag, encoder.feature_key = "int8-ct2", "fake|mean|128|int8-ct2"
    monkeypatch.setattr(train_cli, "encoder_for", lambda _: encoder)
    command = ["train", "rehearsal", "--head", str(tmp_path / "head-x.pt"), "--data-dir"]
    result = CliRunner().invoke(app, [*command, str(tmp_path / "sets")])
    assert result.exit_code == 0, result.output
    buffer = load_rehearsal(tmp_path / "head-x.int8-ct2.rehearsal.npz", encoder.feature_key)
    assert buffer is not None and set(buffer.labels) == {"negative", "positive"}
    assert not any("store_reviews" in text for text in encoder.encoded)
    assert not (tmp_path / "head-x.rehearsal.npz").exists()  # the fp32 buffer is untouched

    missing = CliRunner().invoke(app, [*command, str(tmp_path)])
    assert missing.exit_code == 2 and "tweets_aydin_binary.csv not found" in missing.output


def test_a_precision_gets_its_own_shipped_head_if_one_ships_else_the_fp32_one(
    tmp_path: Path, monkeypatch
) -> None:
    import dikkat.models.head as head_module

    fp32 = default_head_path(E5_ID, "mean")
    assert default_head_path(E5_ID, "mean", "int8-ct2") == fp32  # no int8-trained head ships
    assert head_file_name(E5_ID, "int8-ct2") == "multilingual-e5-small-q4.int8-ct2.pt"
    monkeypatch.setattr(head_module, "shipped_heads_dir", lambda: tmp_path)
    for name in (head_file_name(E5_ID), head_file_name(E5_ID, "int8-ct2")):
        (tmp_path / name).write_bytes(fp32.read_bytes())
    assert default_head_path(E5_ID, None, "int8-ct2").name.endswith(".int8-ct2.pt")
    assert default_head_path(E5_ID, None).name == "multilingual-e5-small-q4.pt"
