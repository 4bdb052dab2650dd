"""Damaged head files: start-up falls back to a loadable version; rollback refuses politely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dikkat.bot.types import Request
from dikkat.models.checksum import file_sha256
from dikkat.models.encoder import SentenceEncoder
from dikkat.storage.feature_cache import FeatureCache
from dikkat.storage.store import Store
from dikkat.training.heads import RELEARN_REQUESTER, ensure_active_head


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
async def store_and_cache(settings, minilm_encoder, seed_features_db):
    shutil.copy(seed_features_db, settings.db_path)
    store = await Store.open(settings.db_path)
    cache = FeatureCache.of(store, minilm_encoder.feature_key)
    yield store, cache
    cache.close()
    await store.close()


async def test_start_up_serves_the_newest_loadable_version_and_marks_the_damaged_ones(
    settings, minilm_encoder, store_and_cache
) -> None:
    store, cache = store_and_cache
    _, shipped_id = await ensure_active_head(store, minilm_encoder, cache, settings)
    first = await store.get_version(shipped_id)
    assert first.sha256 == file_sha256(first.path)
    promoted_path = Path(settings.model_dir) / "heads" / "promoted.pt"
    shutil.copy(first.path, promoted_path)
    promoted = await store.add_model_version(
        encoder=minilm_encoder.feature_key,
        dim=minilm_encoder.dim,
        path=str(promoted_path),
        metrics={},
        status="active",
        source="retrain #1",
        sha256=file_sha256(promoted_path),
    )
    flip_a_byte(promoted_path)  # silent corruption: torch would still load it
    head, serving = await ensure_active_head(store, minilm_encoder, cache, settings)
    assert serving == shipped_id and head is not None
    damaged = await store.get_version(promoted)
    assert damaged.status == "retired" and "SHA-256" in damaged.problem
    assert (await store.active_version(minilm_encoder.feature_key)).id == shipped_id

    Path(first.path).write_bytes(Path(first.path).read_bytes()[:100])  # truncated
    _, fresh = await ensure_active_head(store, minilm_encoder, cache, settings)
    assert fresh not in (shipped_id, promoted)
    assert "SHA-256" in (await store.get_version(shipped_id)).problem
    assert (await store.get_version(fresh)).source.startswith("shipped")


async def test_a_truncated_file_without_a_recorded_checksum_is_caught_too(
    settings, minilm_encoder, store_and_cache
) -> None:
    store, cache = store_and_cache
    path = Path(settings.model_dir) / "old.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    old = await store.add_model_version(
        encoder=minilm_encoder.feature_key, dim=384, path=str(path), metrics={}, status="active",
        source="before checksums",
    )  # fmt: skip
    _, serving = await ensure_active_head(store, minilm_encoder, cache, settings)
    assert serving != old and "cannot read the head file" in (await store.get_version(old)).problem


async def test_rollback_to_a_damaged_version_is_refused_politely(bot) -> None:
    version = await bot.store.get_version(1)
    copy = Path(bot.settings.model_dir) / "v1.pt"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(version.path, copy)
    second = await bot.store.add_model_version(
        encoder=bot.service.feature_key, dim=384, path=str(copy), metrics={}, status="retired",
        source="old", sha256=file_sha256(copy),
    )  # fmt: skip
    flip_a_byte(copy)
    reply = await bot.router.handle(Request("telegram", "1", "chat", "rollback", str(second)))
    assert "bozuk" in reply.text and bot.service.head_version == 1
    assert "SHA-256" in (await bot.store.get_version(second)).problem
    assert "⚠️" in (await bot.router.handle(Request("telegram", "1", "chat", "models", ""))).text


async def test_a_head_installed_for_new_features_asks_the_trainer_to_relearn_the_votes(
    settings, minilm_encoder, store_and_cache
) -> None:
    store, cache = store_and_cache
    await ensure_active_head(store, minilm_encoder, cache, settings)
    assert await store.take_retrain_request() is None  # a new deployment: nothing to relearn
    answer = await store.log_prediction(
        platform="telegram", user_id="7", chat_id="c", text="bayıldım", label="negative",
        probabilities={"negative": 0.6, "neutral": 0.2, "positive": 0.2}, head_version=1,
    )  # fmt: skip
    await store.add_feedback(answer, "telegram", "7", "positive")
    await ensure_active_head(store, minilm_encoder, cache, settings)  # its head still loads
    assert await store.take_retrain_request() is None

    # the same encoder with other features (as a new precision or max length gives) has no head
    shorter = SentenceEncoder(
        minilm_encoder.tokenizer,
        minilm_encoder.source,
        minilm_encoder.encoder_id,
        model=minilm_encoder.model,
        max_length=64,
    )
    assert shorter.feature_key != minilm_encoder.feature_key
    _, installed = await ensure_active_head(
        store, shorter, FeatureCache.of(store, shorter.feature_key), settings
    )
    assert (await store.active_version(shorter.feature_key)).id == installed
    assert (await store.take_retrain_request())[1] == RELEARN_REQUESTER
    # its scores were measured on its own features, not copied from the 128-token ones
    assert await store.count_features(shorter.feature_key) > 0
