"""The e5 folder's light tokenizer: the fast tokenizer's ids, without its memory."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
import transformers

from dikkat.models.e5_image import ensure_e5_folder
from dikkat.models.loading import load_encoder
from dikkat.models.piece_tokenizer import PieceTokenizer
from dikkat.models.text_tokenizer import FastTokenizer
from dikkat.models.word_vectors import word_vectors

TEXTS = [
    "Bu film gerçekten harikaydı, herkese tavsiye ederim!",
    "Kargo çok geç geldi ve ürün kırık çıktı.",
    "ÇOK KÖTÜ bir deneyimdi 😡 bir daha asla",
    "  çok   boşluk  var  ",
    " baştaki boşluk",
    "sekme\tve\nsatır\r\nsonu",
    "ＡＢＣ ｶﾀｶﾅ ﬁ ½ ² ™",
    "e\u0301 café İstanbul ıI ß",
    "sıfır\u200bgenişlik\u00a0boşluk\u3000geniş",
    "😀👍🏽 ok!! ∞≠≈ 日本語 مرحبا",
    "hiç beğenmedim " * 80,  # cut at the encoder's 128 tokens
    "",
]


def _e5_folder(model_dir: Path) -> Path:
    return ensure_e5_folder(model_dir, progress=False)[0]


def test_the_light_tokenizer_gives_the_fast_tokenizers_ids(e5_model_dir: Path) -> None:
    folder = _e5_folder(e5_model_dir)
    fast = transformers.AutoTokenizer.from_pretrained(folder)
    light = PieceTokenizer(folder)
    for text in TEXTS:
        for full, limit in ((text, 1 << 16), ("query: " + text, 129)):
            expected = fast(full, truncation=True, max_length=limit)["input_ids"]
            assert light.ids(full, limit) == expected, full


def test_ties_keep_the_same_pieces_and_special_names_stay_text(e5_model_dir: Path) -> None:
    folder = _e5_folder(e5_model_dir)
    fast = transformers.AutoTokenizer.from_pretrained(folder)
    light = PieceTokenizer(folder)
    tied = "Teşekkürler...."  # "." + "..." and "..." + "." score the same
    assert sorted(light.ids(tied, 129)) == sorted(fast(tied)["input_ids"])
    ids = light.ids("</s> <mask> <pad> <unk>", 129)
    specials = {light.bos_id, light.eos_id, light.pad_token_id, fast.mask_token_id, 3}
    assert ids[0] == light.bos_id and ids[-1] == light.eos_id
    assert not specials & set(ids[1:-1])


def test_the_e5_encoder_never_loads_the_transformers_tokenizer(
    prepared_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    original = transformers.AutoTokenizer.from_pretrained

    def counted(name, *args, **kwargs):
        loads.append(str(name))
        return original(name, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", counted)
    encoder = load_encoder("e5", device="cpu", model_dir=prepared_model_dir)
    vectors = encoder.encode(["Kargo çok geç geldi.", "Harika bir ürün, çok memnunum!"])
    assert vectors.shape == (2, encoder.dim)
    assert encoder.token_count("Kargo çok geç geldi.") == 8
    tokens, attention = encoder.attentions("Bu film harikaydı!")
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and attention.shape[-1] == len(tokens)
    (vectors,) = word_vectors(encoder, ["Bu film harikaydı, bayıldım!"])
    assert vectors.words == ["Bu", "film", "harikaydı,", "bayıldım!"]
    assert loads == []


def test_words_are_split_as_the_fast_tokenizer_splits_them(e5_model_dir: Path) -> None:
    folder = _e5_folder(e5_model_dir)
    fast = FastTokenizer(transformers.AutoTokenizer.from_pretrained(folder))
    light = PieceTokenizer(folder)
    for text in TEXTS:
        expected, got = fast.words(text, 64), light.words(text, 64)
        assert got.input_ids == expected.input_ids and got.word_of_token == expected.word_of_token
        if unicodedata.normalize("NFKC", text) == text:  # words read as normalised
            assert got.words == expected.words, text
        assert light.tokens(got.input_ids) == fast.tokens(expected.input_ids)
