"""The retrain benchmark's machinery on a tiny BERT: well-formed report and figure, no timings."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread

from dikkat.bench.retrain import (
    RetrainBenchConfig,
    default_data_path,
    format_report,
    run_retrain_benchmark,
)
from dikkat.models.encoder import SentenceEncoder
from dikkat.training.profile import PHASES

WORDS = ["bir", "cok", "guzel", "kotu", "urun", "kargo", "hizli", "degil", "##ler", "##di", "."]
TINY = RetrainBenchConfig(
    sizes=(12,),
    repeats=1,
    latency_size=12,
    clients=(2,),
    warmup_s=0.0,
    window_s=0.2,
    curve_steps=(6, 12),
    holdout_sample=30,
    votes_per_user=5,
    feeders=4,
)


@pytest.fixture(scope="module")
def tiny_encoder(make_tiny_bert) -> SentenceEncoder:
    """A 2-layer, 32-wide BERT (no shipped head: the bot trains one on the seed corpus)."""
    folder = make_tiny_bert(WORDS)
    return SentenceEncoder.from_pretrained(folder, "tiny-bert", max_length=32)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the module: the seed corpus is encoded once."""
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Two intra-op threads on a busy 2-core machine are ten times slower than one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _run(
    tmp_path: Path,
    scratch: Path,
    encoder: SentenceEncoder,
    data: Path | None,
    config: RetrainBenchConfig = TINY,
) -> dict:
    return run_retrain_benchmark(
        quick=True,
        json_path=tmp_path / "out" / "retrain.json",
        plot_path=tmp_path / "out" / "curve.png",
        progress=False,
        config=config,
        encoder=encoder,
        data_path=data,
        scratch=scratch,
    )


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="latency_size"):
        RetrainBenchConfig(sizes=(10,), latency_size=20)
    with pytest.raises(ValueError, match="curve_steps"):
        RetrainBenchConfig(curve_steps=(300, 100))
    assert max(RetrainBenchConfig.quick().sizes) < max(RetrainBenchConfig().sizes)


def test_without_shared_data_times_synthetic_feedback_and_skips_the_curve(
    tmp_path: Path, scratch: Path, tiny_encoder: SentenceEncoder
) -> None:
    absent = tmp_path / "absent" / "store_reviews_3class.csv"
    report = _run(tmp_path, scratch, tiny_encoder, absent)
    assert "synthetic" in report["data"]
    assert "skipped" in report["learning_curve"] and "absent" in report["learning_curve"]["skipped"]
    assert [row["feedback_items"] for row in report["timing"]] == [12]
    for row in report["timing"]:
        assert row["votes"] == {"created": row["feedback_items"]}
        (run,) = row["runs"]
        assert run["status"] in ("promoted", "rejected")
        assert run["n_feedback"] == row["feedback_items"]
        assert run["encoded_texts"] == 0  # every feature came from the cache
        assert run["epochs"] >= 1 and run["phases_s"]
        recorded = [p for p in run["phases_s"] if not p.startswith("other")]
        assert len(recorded) == len(PHASES)  # every phase, as the retrain job records them
    (latency,) = report["latency"]
    assert latency["clients"] == 2 and latency["feedback_items"] == 12
    assert latency["retrains_in_window"]
    for window in ("idle", "during_retrain"):
        assert latency[window]["requests"] > 0 and latency[window]["failed"] == 0
    assert latency["p99_ratio"] is not None
    assert json.loads((tmp_path / "out" / "retrain.json").read_text())["timing"]
    assert not (tmp_path / "out" / "curve.png").exists()
    text = format_report(report)
    assert re.search(r"^\|\s+12 \|", text, re.M), text
    assert "p99 ratio" in text and "learning curve skipped" in text


@pytest.mark.skipif(default_data_path() is None, reason="../shared/data/sentiment is absent")
def test_learning_curve_goes_through_the_router_and_plots(
    tmp_path: Path, scratch: Path, tiny_encoder: SentenceEncoder
) -> None:
    config = dataclasses.replace(TINY, latency_size=None)
    report = _run(tmp_path, scratch, tiny_encoder, None, config)
    curve = report["learning_curve"]
    assert curve["held_out_rows"] in (30, 31)
    assert [p["n"] for p in curve["points"]] == [0, 6, 12]
    first, *steps = curve["points"]
    assert first["status"] == "shipped" and first["held_out_active"]["macro_f1"] >= 0
    for point, new in zip(steps, (6, 6), strict=True):
        assert point["votes"] == {"created": new}
        assert point["status"] in ("promoted", "rejected")
        assert point["held_out_candidate"] is not None
        assert point["encoded_texts"] == 0  # remembered by the service, not re-encoded
    assert steps[-1]["n_feedback"] == 12
    assert report["latency"] is None
    png = (tmp_path / "out" / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000
    image = imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    text = format_report(report)
    assert re.search(r"^\|\s+12 \|", text, re.M) and "held-out" in text
