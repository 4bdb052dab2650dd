"""The torch int8 encoder path (int8 without ctranslate2): close to fp32, its own feature key,
packing and attention pictures still working. MiniLM (small, English) for the mechanics; the
served multilingual-e5 for closeness. The CTranslate2 path: test_encoder_ct2.py.

Int8 activations are quantized with one scale per batch, so int8 vectors move with their
batch-mates: the bounds below compare with fp32, never two int8 batches for equality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from dikkat.config import Settings
from dikkat.models import encoder as encoder_module
from dikkat.models.ct2_encoder import Ct2Unavailable
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.loading import load_encoder
from dikkat.models.quantize import int8_supported

pytestmark = pytest.mark.skipif(not int8_supported(), reason="torch build without int8 kernels")

SENTENCES = [
    "Bu ürün gerçekten çok güzel, herkese tavsiye ederim.",
    "Kargo çok geç geldi ve kutu ezilmişti, hiç memnun kalmadım.",
    "Fena değil.",
    "Film fena değildi ama ikinci yarısı biraz uzundu, sonu da tahmin edilebilirdi.",
    "iyi",
]


@pytest.fixture(scope="module")
def torch_int8():
    """int8 as without ctranslate2 (torch's dynamic quantization), for this module's tests."""

    def unavailable(*args, **kwargs):
        raise Ct2Unavailable("left out by the torch int8 tests")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoder_module, "load_int8_encoder", unavailable)
        yield


@pytest.fixture(scope="module")
def int8_encoder(torch_int8) -> SentenceEncoder:
    return load_encoder("minilm", device="cpu", precision="int8")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_int8_quantizes_the_linear_layers_only(int8_encoder: SentenceEncoder) -> None:
    modules = list(int8_encoder.model.modules())
    assert int8_encoder.precision == "int8"
    assert not any(type(m) is torch.nn.Linear for m in modules)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in modules)
    assert isinstance(int8_encoder.model.get_input_embeddings(), torch.nn.Embedding)


def test_int8_vectors_stay_near_fp32(
    int8_encoder: SentenceEncoder, minilm_encoder: SentenceEncoder
) -> None:
    assert minilm_encoder.precision == "fp32"
    fp32 = minilm_encoder.encode(SENTENCES)
    int8 = int8_encoder.encode(SENTENCES)
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    assert np.isfinite(int8).all()
    assert _cosines(int8, fp32).min() > 0.75  # MiniLM quantizes worst: about 0.84 at the least
    assert not np.allclose(int8, fp32)  # it really runs other weights


@pytest.mark.slow
def test_the_served_e5_encoder_in_int8_stays_close_to_fp32(e5_model_dir: Path, torch_int8) -> None:
    fp32 = load_encoder("e5", device="cpu", model_dir=e5_model_dir)
    int8 = load_encoder("e5", device="cpu", model_dir=e5_model_dir, precision="int8")
    assert int8.packs == fp32.packs
    items = [fp32.tokenize(text) for text in SENTENCES]
    reference = fp32._encode_padded(items)
    for vectors in (int8.encode_tokenized(items), int8._encode_padded(items)):  # packed, padded
        assert _cosines(vectors, reference).min() > 0.95  # about 0.975 at the least


def test_the_feature_key_names_int8_and_keeps_the_fp32_key(
    int8_encoder: SentenceEncoder, minilm_encoder: SentenceEncoder
) -> None:
    assert int8_encoder.feature_key == f"{minilm_encoder.feature_key}|int8"
    assert "fp32" not in minilm_encoder.feature_key  # existing caches and heads keep their key


def test_packing_is_checked_on_the_float_model_and_still_packs(
    int8_encoder: SentenceEncoder, minilm_encoder: SentenceEncoder
) -> None:
    # the check ran before quantization, where packed and padded vectors must agree exactly
    assert int8_encoder.packs == minilm_encoder.packs
    items = [int8_encoder.tokenize(text) for text in SENTENCES]
    costs = [item.cost for item in items]
    assert int8_encoder.padded_tokens(costs) == minilm_encoder.padded_tokens(costs)
    reference = minilm_encoder._encode_padded(items)
    packed = int8_encoder.encode_tokenized(items)
    padded = int8_encoder._encode_padded(items)
    assert _cosines(packed, reference).min() > 0.75
    assert _cosines(packed, reference).mean() > _cosines(padded, reference).mean() - 0.05


def test_attention_pictures_work_in_int8(int8_encoder: SentenceEncoder) -> None:
    tokens, attn = int8_encoder.attentions("Bu film çok güzeldi", max_tokens=16)
    layers = int8_encoder.model.config.num_hidden_layers
    heads = int8_encoder.model.config.num_attention_heads
    assert attn.shape == (layers, heads, len(tokens), len(tokens))
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-4)  # each row is a distribution
    vectors = int8_encoder.encode(["Bu film çok güzeldi"])  # the kernel switched back
    assert np.isfinite(vectors).all()


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        load_encoder("minilm", device="cpu", precision="int4")  # type: ignore[arg-type]


def test_the_setting_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).encoder_precision == "fp32"
    monkeypatch.setenv("DIKKAT_ENCODER_PRECISION", "int8")
    assert Settings(_env_file=None).encoder_precision == "int8"
    monkeypatch.setenv("DIKKAT_ENCODER_PRECISION", "int4")
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None)


def test_int8_is_cpu_only_and_ignored_elsewhere(
    make_tiny_bert, caplog: pytest.LogCaptureFixture
) -> None:
    folder = make_tiny_bert(["bu", "film", "iyi"])
    # the meta device stands in for a GPU: any device that is not the CPU keeps float weights
    with caplog.at_level("INFO", logger="dikkat.models.encoder"):
        encoder = SentenceEncoder.from_pretrained(folder, device="meta", precision="int8")
    assert encoder.precision == "fp32"
    assert "|int8" not in encoder.feature_key
    assert any(type(m) is torch.nn.Linear for m in encoder.model.modules())
    assert "int8 is CPU-only" in caplog.text
