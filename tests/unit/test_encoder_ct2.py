"""The CTranslate2 int8 path of the encoder on a tiny BERT: close to fp32, batches cut into
length groups (their cost), converted once, its own feature key; and fp32 when ctranslate2 is
missing."""

from __future__ import annotations

import asyncio
import builtins
import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from dikkat.models import ct2_encoder
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.source import ModelSource
from dikkat.training.heads import ShippedReference

pytest.importorskip("ctranslate2")

WORDS = ["bu", "film", "çok", "güzel", "kötü", "iyi", "değil", "ürün", "kargo", "geç"]
TEXTS = ["bu film çok güzel", "kötü", "ürün iyi değil kargo geç", "güzel film", "iyi"]


@pytest.fixture(scope="module")
def tiny_folder(make_tiny_bert) -> Path:
    return make_tiny_bert(WORDS)


def _load(folder: Path, int8_dir: Path, precision: str = "int8", **options) -> SentenceEncoder:
    return SentenceEncoder.from_pretrained(
        folder, "tiny", device="cpu", precision=precision, int8_dir=int8_dir, **options
    )


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two torch threads while the test runs: CTranslate2 then runs two workers."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _pairs(n: int) -> Iterator[tuple[int, int]]:
    return itertools.combinations(range(n), 2)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_ct2_int8_vectors_stay_near_fp32(
    tiny_folder: Path, tmp_path: Path, pooling: str, two_threads: None
) -> None:
    fp32 = _load(tiny_folder, tmp_path, "fp32", pooling=pooling)
    int8 = _load(tiny_folder, tmp_path, pooling=pooling)
    assert int8.precision == "int8" and int8._ct2 is not None
    assert int8.parallel_batches == 2  # the batch below is cut into two length groups
    items = [fp32.tokenize(text) for text in TEXTS]
    reference = fp32._encode_padded(items)
    vectors = int8.encode_tokenized(items)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    # a random tiny BERT's vectors are dominated by LayerNorm: about 0.99998 at the least
    assert _cosines(vectors, reference).min() > 0.999
    assert not np.allclose(vectors, reference, atol=1e-6)  # it really runs int8 weights
    alone = np.concatenate([int8.encode_tokenized([item]) for item in items])
    # padding is masked and every vector comes back in its text's row (the texts differ by more)
    np.testing.assert_allclose(vectors, alone, atol=1e-5)
    assert min(np.abs(vectors[i] - vectors[j]).max() for i, j in _pairs(len(items))) > 1e-3


def test_ct2_int8_reports_grouped_cost_and_its_own_feature_key(
    tiny_folder: Path, tmp_path: Path, two_threads: None
) -> None:
    fp32 = _load(tiny_folder, tmp_path, "fp32")
    int8 = _load(tiny_folder, tmp_path)
    assert torch.get_num_threads() == 2  # loading CTranslate2 leaves torch's threads alone
    assert int8.runtime == "ctranslate2" and fp32.runtime == "torch"
    assert (int8.parallel_batches, fp32.parallel_batches) == (2, 1)
    assert int8.packs is False  # CTranslate2 pads each run of texts to its longest
    assert int8.padded_tokens([3, 7, 5]) == 5 * 2 + 7  # runs [3, 5] and [7], one per worker
    assert int8.feature_key == f"{fp32.feature_key}|int8-ct2"  # apart from torch int8 vectors


def test_the_conversion_is_cached_and_redone_for_other_weights(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    convert = ct2_encoder.convert_int8

    def counted(source: Path, out_dir: Path, config_overrides=None) -> None:
        calls.append(out_dir)
        convert(source, out_dir, config_overrides)

    monkeypatch.setattr(ct2_encoder, "convert_int8", counted)
    (tmp_path / ".tiny-ct2-int8.killed").mkdir()  # what a conversion killed midway leaves
    first = _load(tiny_folder, tmp_path)
    second = _load(tiny_folder, tmp_path)
    assert len(calls) == 1
    assert first._ct2.folder == second._ct2.folder == tmp_path / "tiny-ct2-int8"
    assert (first._ct2.folder / "model.bin").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["tiny-ct2-int8"]  # no temp left
    moved = shutil.copytree(tiny_folder, tmp_path / "elsewhere" / "tiny")
    _load(moved, tmp_path)  # the same weights from another folder
    assert len(calls) == 1

    retrained = _retrained_copy(tiny_folder, tmp_path / "retrained")  # other weights, same id
    _load(retrained, tmp_path)
    assert len(calls) == 2
    (first._ct2.folder / ct2_encoder.FINGERPRINT_FILE).write_text("of another kind\n")
    _load(retrained, tmp_path)  # a folder converted by an older Dikkat: converted once more
    assert len(calls) == 3
    _load(retrained, tmp_path)
    assert len(calls) == 3


def _retrained_copy(folder: Path, to: Path) -> Path:
    """The tiny BERT with other weights (as a retrain would leave it), saved to `to`."""
    shutil.copytree(folder, to)
    model = transformers.AutoModel.from_pretrained(folder)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(2.0)
    model.save_pretrained(to)
    return to


def test_a_current_conversion_encodes_without_the_torch_model(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted = _load(tiny_folder, tmp_path)
    reference = converted.encode(TEXTS)
    loads: list[str] = []
    real_load = transformers.AutoModel.from_pretrained

    def refuse(name, *args, **kwargs):
        loads.append(str(name))
        raise AssertionError("the torch model was loaded")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    int8 = _load(tiny_folder, tmp_path)
    assert int8.runtime == "ctranslate2" and int8._model is None
    assert int8.dim == 32 and int8.max_length == 64  # from the config alone
    np.testing.assert_allclose(int8.encode(TEXTS), reference, atol=1e-6)
    assert int8.token_counts(TEXTS) == converted.token_counts(TEXTS) and not loads
    assert int8.feature_key == converted.feature_key

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", real_load)
    tokens, attn = int8.attentions("bu film güzel", max_tokens=16)  # loads it now, once
    assert attn.shape == (2, 2, len(tokens), len(tokens))
    np.testing.assert_allclose(int8.encode(TEXTS), reference, atol=1e-6)  # still CTranslate2


def test_the_source_fingerprint_follows_the_weight_files_not_the_folder(
    tiny_folder: Path, tmp_path: Path
) -> None:
    fingerprint = ModelSource(str(tiny_folder)).fingerprint()
    moved = shutil.copytree(tiny_folder, tmp_path / "moved")
    (moved / "tokenizer.json").write_text("{}")  # the tokenizer is not converted
    assert ModelSource(str(moved)).fingerprint() == fingerprint
    assert ModelSource(str(moved), {"add_pooling_layer": False}).fingerprint() != fingerprint
    for weights in moved.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(FileNotFoundError, match="no weight files"):
        ModelSource(str(moved)).fingerprint()


def test_the_torch_model_comes_back_for_attention_pictures(
    tiny_folder: Path, tmp_path: Path
) -> None:
    int8 = _load(tiny_folder, tmp_path)
    assert int8._model is None  # released after the conversion
    tokens, attn = int8.attentions("bu film güzel", max_tokens=16)
    assert attn.shape == (2, 2, len(tokens), len(tokens))
    np.testing.assert_allclose(attn.sum(-1), 1.0, atol=1e-4)
    assert any(type(m) is torch.nn.Linear for m in int8.model.modules())  # fp32, not quantized
    (words,), hidden = int8.hidden_states(["bu film"], 16)
    assert hidden.shape == (1, len(words.input_ids), int8.dim) and words.words == ["bu", "film"]


def test_without_ctranslate2_int8_falls_back_to_fp32_with_one_log_line(
    tiny_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_import = builtins.__import__

    def no_ctranslate2(name, *args, **kwargs):
        if name == "ctranslate2" or name.startswith("ctranslate2."):
            raise ImportError("No module named 'ctranslate2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ctranslate2)
    with caplog.at_level("INFO", logger="dikkat.models"):
        encoder = _load(tiny_folder, tmp_path)
    assert encoder.precision == "fp32" and encoder.runtime == "torch"
    assert any(type(m) is torch.nn.Linear for m in encoder.model.modules())
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ctranslate2 is not installed" in warnings[0].getMessage()
    assert caplog.text.count("Traceback") == 0 and not list(tmp_path.iterdir())
    assert encoder.feature_key == _load(tiny_folder, tmp_path, "fp32").feature_key


@pytest.mark.slow
def test_the_served_e5_encoder_on_ct2_int8_stays_close_to_fp32_and_rehearses_in_int8(
    e5_model_dir: Path,
) -> None:
    from dikkat.models.loading import load_encoder

    fp32 = load_encoder("e5", device="cpu", model_dir=e5_model_dir)
    int8 = load_encoder("e5", device="cpu", model_dir=e5_model_dir, precision="int8")
    assert int8.runtime == "ctranslate2"
    texts = ["Bu ürün gerçekten çok güzel.", "Kargo çok geç geldi, hiç memnun kalmadım.", "iyi"]
    items = [fp32.tokenize(text) for text in texts]
    # about 0.9986 at the least on 512 store reviews (torch's dynamic int8: 0.948)
    assert _cosines(int8.encode_tokenized(items), fp32._encode_padded(items)).min() > 0.99
    # its retrains rehearse on int8 features of the shipped buffer's rows, not on fp32 ones
    shipped = ShippedReference.load(int8)
    assert shipped.head is not None and shipped.rehearsal is not None
    assert shipped.rehearsal.encoder_key == int8.feature_key
    assert ShippedReference.load(fp32).rehearsal.encoder_key == fp32.feature_key


@pytest.mark.slow
def test_an_int8_e5_start_hashes_its_weights_once(
    prepared_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dikkat.models import checksum, e5_image, source
    from dikkat.models.loading import load_encoder

    hashed: list[str] = []

    def counting(path: Path) -> str:
        hashed.append(Path(path).name)
        return checksum.file_sha256(path)

    monkeypatch.setattr(e5_image, "file_sha256", counting)
    monkeypatch.setattr(source, "file_sha256", counting)
    encoder = load_encoder("e5", device="cpu", model_dir=prepared_model_dir, precision="int8")
    assert encoder.runtime == "ctranslate2"
    # checked against the folder's manifest; the conversion's fingerprint reuses that digest
    assert hashed.count("model.safetensors") == 1


async def test_the_sentiment_service_runs_a_batch_per_ct2_worker(
    tiny_folder: Path, tmp_path: Path, two_threads: None
) -> None:
    from dikkat.config import Settings
    from dikkat.hashing import text_hash
    from dikkat.inference.sentiment import SentimentPipeline
    from dikkat.inference.service import InferenceService
    from dikkat.models.head import SentimentHead
    from dikkat.models.sorter import Sorter

    int8 = _load(tiny_folder, tmp_path)
    pipeline = SentimentPipeline(int8, SentimentHead(int8.dim), None)
    settings = Settings(db_path=tmp_path / "d.db", model_dir=tmp_path / "models")
    service = InferenceService(settings, Sorter.from_checkpoint(device="cpu"), pipeline)
    batcher = next(b for b in service.batchers if b.name == "sentiment")
    assert batcher.parallel_batches == 2
    await service.start()
    try:
        results = await asyncio.gather(*(service.sentiment(text) for text in TEXTS * 3))
    finally:
        await service.stop()
    assert [r.text_hash for r in results] == [text_hash(text) for text in TEXTS * 3]
    alone = [pipeline.predict_batch([int8.tokenize(text)])[0] for text in TEXTS]
    served = [list(r.probabilities.values()) for r in results[: len(TEXTS)]]
    np.testing.assert_allclose(served, [list(a.probabilities.values()) for a in alone], atol=1e-5)
