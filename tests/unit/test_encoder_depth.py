"""An encoder cut to its first layers: the full model's hidden states at that depth, its own
encoder id and features, in fp32 and int8 alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from dikkat.config import Settings
from dikkat.models.head import LABELS, default_head_path
from dikkat.models.loading import EncoderLoadError, load_encoder
from dikkat.training.heads import ShippedReference
from dikkat.training.rehearsal import load_rehearsal, rehearsal_path

WORDS = ["bu", "film", "çok", "güzel", "kötü", "iyi", "değil", "ürün", "kargo", "geç"]
TEXTS = ["bu film çok güzel", "kötü", "ürün iyi değil kargo geç"]


@pytest.fixture(scope="module")
def tiny_folder(make_tiny_bert) -> Path:
    return make_tiny_bert(WORDS)  # 2 layers


def _layer_means(folder: Path, layer: int) -> np.ndarray:
    """Mean-pooled hidden states after `layer` of the whole 2-layer model."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch, output_hidden_states=True).hidden_states[layer]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


def test_the_first_layer_alone_gives_the_full_models_first_hidden_states(
    tiny_folder: Path,
) -> None:
    full = load_encoder(str(tiny_folder), device="cpu")
    first = load_encoder(str(tiny_folder), device="cpu", layers=1)
    assert first.encoder_id == f"{full.encoder_id}-1layers"
    assert first.feature_key != full.feature_key and first.feature_key.startswith(first.encoder_id)
    np.testing.assert_allclose(first.encode(TEXTS), _layer_means(tiny_folder, 1), atol=1e-5)
    np.testing.assert_allclose(full.encode(TEXTS), _layer_means(tiny_folder, 2), atol=1e-5)
    tokens, attention = first.attentions("bu film çok güzel")
    assert attention.shape == (1, 2, len(tokens), len(tokens))  # one layer, two heads


def test_all_layers_is_the_full_encoder_and_too_many_is_a_clear_error(tiny_folder: Path) -> None:
    full = load_encoder(str(tiny_folder), device="cpu")
    assert load_encoder(str(tiny_folder), device="cpu", layers=2).feature_key == full.feature_key
    with pytest.raises(EncoderLoadError, match="has 2 layers: the layer count must be 1-2"):
        load_encoder(str(tiny_folder), device="cpu", layers=3)


def test_int8_converts_the_cut_model_into_its_own_folder(tiny_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("ctranslate2")
    full = load_encoder(str(tiny_folder), device="cpu", precision="int8", model_dir=tmp_path)
    first = load_encoder(
        str(tiny_folder), device="cpu", precision="int8", model_dir=tmp_path, layers=1
    )
    assert first.runtime == full.runtime == "ctranslate2"
    assert first._ct2.folder != full._ct2.folder  # both stay converted side by side
    vectors = first.encode(TEXTS)
    to_first = np.abs(vectors - _layer_means(tiny_folder, 1)).max()
    to_second = np.abs(vectors - _layer_means(tiny_folder, 2)).max()
    assert to_first < to_second / 3  # int8 error (0.005 here) is far below a layer (0.03)
    assert first.feature_key.endswith("|int8-ct2")


def test_the_setting_reaches_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIKKAT_ENCODER_LAYERS", "10")
    assert Settings().encoder_options()["layers"] == 10
    monkeypatch.setenv("DIKKAT_ENCODER_LAYERS", "0")
    with pytest.raises(ValueError):
        Settings()


def test_ten_layers_of_e5_serve_their_own_shipped_head_and_rehearsal(
    prepared_model_dir: Path,
) -> None:
    encoder = load_encoder(
        "e5", device="cpu", model_dir=prepared_model_dir, layers=10, precision="auto"
    )
    assert encoder.encoder_id == "multilingual-e5-small-q4-10layers"
    assert encoder.precision == "int8"  # 30 seeds: within 0.005 of fp32 on every set
    tokens, attention = encoder.attentions("Bu film harikaydı!")
    assert attention.shape[:2] == (10, 12)
    shipped = ShippedReference.load(encoder)
    assert shipped.head is not None and shipped.rehearsal is not None
    assert shipped.rehearsal.encoder_key == encoder.feature_key  # its int8 rows
    path = default_head_path(encoder.encoder_id, encoder.pooling, "int8-ct2")
    assert path.name == "multilingual-e5-small-q4-10layers.pt"  # never the 12-layer head
    fp32_key = encoder.feature_key.removesuffix("|int8-ct2")
    assert load_rehearsal(rehearsal_path(path), fp32_key) is not None
    probabilities = shipped.head.predict_proba(encoder.encode(["Harika bir ürün, bayıldım!"]))
    assert probabilities.argmax() == LABELS.index("positive")


def test_more_layers_than_e5_has_is_one_clear_error(prepared_model_dir: Path) -> None:
    with pytest.raises(EncoderLoadError, match="multilingual-e5-small-q4 has 12 layers"):
        load_encoder("e5", device="cpu", model_dir=prepared_model_dir, layers=13)
