"""The sentiment head: probabilities, save/load round trip, encoder mismatch, shipped head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dikkat.models.head import (
    LABELS,
    HeadMeta,
    HeadMismatchError,
    SentimentHead,
    default_head_path,
    load_head,
    meta_path,
    save_head,
)
from dikkat.models.loading import MINILM_ID


def _head(dim: int = 16) -> SentimentHead:
    torch.manual_seed(0)
    head = SentimentHead(dim)
    head.train()
    head(torch.randn(32, dim))  # move BatchNorm running stats off their defaults
    return head.eval()


def test_predict_proba_is_a_distribution_over_three_labels() -> None:
    head = _head()
    probs = head.predict_proba(np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32))
    assert probs.shape == (5, len(LABELS)) and LABELS == ("negative", "neutral", "positive")
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert head.predict_proba(torch.zeros(16)).shape == (1, 3)


def test_save_load_round_trip_with_metadata(tmp_path: Path) -> None:
    head = _head()
    meta = HeadMeta(encoder_id="enc", dim=16, pooling="mean", metrics={"accuracy": 0.5})
    path = save_head(head, tmp_path / "heads" / "h.pt", meta)
    assert sorted(p.name for p in path.parent.iterdir()) == ["h.json", "h.pt"]  # no temp files
    assert path.stat().st_mode & 0o444 == 0o444  # readable by the service user
    assert json.loads(meta_path(path).read_text())["encoder_id"] == "enc"
    loaded, loaded_meta = load_head(path, encoder_id="enc", dim=16, pooling="mean")
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x), atol=1e-6)
    assert loaded_meta.metrics == {"accuracy": 0.5} and loaded_meta.labels == list(LABELS)
    assert not loaded.training


@pytest.mark.parametrize(
    ("check", "message"),
    [({"encoder_id": "other"}, "encoder_id"), ({"dim": 32}, "dim"), ({"pooling": "cls"}, "pool")],
)
def test_loading_for_another_encoder_is_a_clear_error(
    tmp_path: Path, check: dict, message: str
) -> None:
    path = save_head(_head(), tmp_path / "h.pt", HeadMeta(encoder_id="enc", dim=16, pooling="mean"))
    with pytest.raises(HeadMismatchError, match=message):
        load_head(path, **check)


def test_shipped_default_head_matches_the_minilm_encoder() -> None:
    path = default_head_path(MINILM_ID)
    assert path is not None and path.stat().st_size < 1_000_000
    head, meta = load_head(path, encoder_id=MINILM_ID, dim=384)
    assert meta.pooling in ("cls", "mean") and meta.metrics["accuracy"] > 0.5
    assert default_head_path(MINILM_ID, pooling=meta.pooling) == path
    assert default_head_path("no/such-encoder") is None
    assert head.predict_proba(np.zeros((2, 384), np.float32)).shape == (2, 3)
