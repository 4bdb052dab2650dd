"""The whole bot on the SQL store: DIKKAT_DATABASE_URL on SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import SecretStr

from dikkat.app import App
from dikkat.bot.types import ButtonPress, Request


async def test_sentiment_vote_and_retrain_on_the_sql_store(
    db_url: str, settings, minilm_encoder, seed_features_db: Path
) -> None:
    shutil.copy(seed_features_db, settings.db_path)  # the feature cache stays a local file
    shared = settings.model_copy(update={"database_url": SecretStr(db_url)})
    async with App(shared, encoder=minilm_encoder) as app:
        assert type(app.store).__name__ == "SqlStore"
        reply = await app.router.handle(
            Request("telegram", "1", "chat", "sentiment", "Harika bir ürün, bayıldım", "en")
        )
        data = next(b.data for b in reply.buttons if b.data.endswith("negative"))
        await app.router.handle_button(ButtonPress("telegram", "1", "chat", data, "en"))
        assert await app.store.feedback_count() == 1
        run = await app.retrainer.run("admin", "telegram:1")
        assert run.status in ("promoted", "rejected", "skipped")
        versions = await app.store.list_versions(app.service.feature_key)
        assert versions and versions[-1].source.startswith("shipped")


async def test_a_host_without_the_head_file_fetches_it_from_the_database(
    db_url: str, settings, minilm_encoder, seed_features_db: Path
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    shared = settings.model_copy(update={"database_url": SecretStr(db_url)})
    async with App(shared, encoder=minilm_encoder) as first:
        active = await first.store.active_version(first.service.feature_key)
        expected = await first.service.sentiment("Kargo çok geç geldi")
    Path(active.path).unlink()  # the next process runs on a host that never had the file
    async with App(shared, encoder=minilm_encoder) as second:
        assert second.service.head_version == active.id  # no new version installed
        assert Path(active.path).is_file()
        again = await second.service.sentiment("Kargo çok geç geldi")
    assert again.probabilities == expected.probabilities
