"""Sequence packing: rows filled with several texts give the same vectors as padding each text."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dikkat.models.loading import load_encoder
from dikkat.models.packing import pack, packed_tokens

WORDS = ["bu", "film", "cok", "guzel", "kotu", "urun", "harika", "degil", "."]
TEXTS = [
    "bu film cok guzel . " * 6,
    "kotu",
    "harika film",
    "bu urun cok kotu degil .",
    "guzel " * 12,
    "film .",
    "bu film harika . bu urun kotu .",
]


@pytest.fixture(scope="module")
def tiny_bert_dir(make_tiny_bert) -> Path:
    return make_tiny_bert(WORDS)


def test_every_item_lands_in_exactly_one_row_that_it_fits() -> None:
    rng = random.Random(0)
    for _ in range(200):
        costs = [rng.randint(1, 128) for _ in range(rng.randint(1, 64))]
        packing = pack(costs)
        placed = sorted(i for row in packing.rows for i in row)
        assert placed == list(range(len(costs)))
        assert all(sum(costs[i] for i in row) <= packing.width for row in packing.rows)
        assert packing.width == max(costs)
        assert sum(costs) <= packed_tokens(costs) <= max(costs) * len(costs)


def test_a_mixed_batch_packs_far_tighter_than_padding() -> None:
    costs = [10, 120, 12, 100, 11, 110, 9]
    assert sum(costs) / (max(costs) * len(costs)) < 0.45  # padded to the longest
    assert sum(costs) / packed_tokens(costs) > 0.75
    assert not pack([5]).shares_rows and pack([5, 3, 2]).shares_rows
    with pytest.raises(ValueError, match="does not fit"):
        pack([10, 30], width=20)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_batch_gives_each_texts_own_vector(tiny_bert_dir: Path, pooling: str) -> None:
    enc = load_encoder(str(tiny_bert_dir), max_length=32, pooling=pooling, device="cpu")
    items = [enc.tokenize(text) for text in TEXTS]
    assert enc.packs and pack([item.cost for item in items]).shares_rows
    alone = np.concatenate([enc.encode_tokenized([item]) for item in items])
    np.testing.assert_allclose(enc.encode_tokenized(items), alone, atol=1e-5)
    costs = [item.cost for item in items]
    assert enc.padded_tokens(costs) < max(costs) * len(costs)


def test_a_model_that_misreads_the_packed_mask_falls_back_to_padding(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enc = load_encoder(str(tiny_bert_dir), max_length=32, device="cpu")
    forward = enc.model.forward

    def misreads_custom_masks(*args, attention_mask=None, **kwargs):
        if attention_mask is not None and attention_mask.dim() == 4:
            # every token sees the whole row; dropping the mask would not do: transformers 5
            # rebuilds the per-text blocks from the restarting position ids
            attention_mask = torch.zeros_like(attention_mask)
        return forward(*args, attention_mask=attention_mask, **kwargs)

    monkeypatch.setattr(enc.model, "forward", misreads_custom_masks)
    items = [enc.tokenize(text) for text in TEXTS]
    assert not enc.packs
    costs = [item.cost for item in items]
    assert enc.padded_tokens(costs) == max(costs) * len(costs)
    alone = np.concatenate([enc.encode_tokenized([item]) for item in items])
    np.testing.assert_allclose(enc.encode_tokenized(items), alone, atol=1e-5)
