"""The whole bot on a shared database: DIKKAT_DATABASE_URL on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from dikkat.app import App
from dikkat.bot.types import ButtonPress, Request
from dikkat.inference.sentiment import RecentFeatures
from dikkat.storage.store import Store

VOTED_TEXTS = 40


@pytest.fixture
async def shared(db_url: str, settings, minilm_encoder, seed_features_db: Path):
    """Settings on the database at `db_url`, which holds the seed corpus's features already
    (encoded once per session)."""
    key = minilm_encoder.feature_key
    source, target = await Store.open(seed_features_db), await Store.open(db_url)
    try:
        query = "SELECT text_hash, vector FROM features WHERE encoder = :key"
        rows = await source._read(query, {"key": key})
        await target.put_features(key, {h: np.frombuffer(blob, np.float32) for h, blob in rows})
    finally:
        await source.close()
        await target.close()
    return settings.model_copy(update={"database_url": SecretStr(db_url)})


async def test_a_retrain_reads_the_features_stored_with_the_votes(shared, minilm_encoder) -> None:
    async with App(shared, encoder=minilm_encoder) as app:
        for i in range(VOTED_TEXTS):
            reply = await app.router.handle(
                Request("telegram", str(i), "chat", "sentiment", f"Ürün {i} harika, bayıldım", "en")
            )
            data = next(b.data for b in reply.buttons if b.data.endswith("negative"))
            await app.router.handle_button(ButtonPress("telegram", str(i), "chat", data, "en"))
        assert await app.store.feedback_count() == VOTED_TEXTS
        app.service.sentiment_pipeline.recent = RecentFeatures()  # as a trainer elsewhere
        run = await app.retrainer.run("admin", "telegram:1")
        assert run.status in ("promoted", "rejected", "skipped")
        assert app.retrainer.last_profile.encoded_texts == 0
        versions = await app.store.list_versions(app.service.feature_key)
        assert versions and versions[-1].source.startswith("shipped")


async def test_a_host_without_the_head_file_fetches_it_from_the_database(
    shared, minilm_encoder
) -> None:
    async with App(shared, encoder=minilm_encoder) as first:
        active = await first.store.active_version(first.service.feature_key)
        expected = await first.service.sentiment("Kargo çok geç geldi")
    Path(active.path).unlink()  # the next process runs on a host that never had the file
    async with App(shared, encoder=minilm_encoder) as second:
        assert second.service.head_version == active.id  # no new version installed
        assert Path(active.path).is_file()
        again = await second.service.sentiment("Kargo çok geç geldi")
    assert again.probabilities == expected.probabilities
