"""DIKKAT_ROLE: a frontend serves through a backend it is given, a trainer retrains without
serving, an inference process serves without a Router; all over one database."""

from __future__ import annotations

import shutil
from pathlib import Path

from dikkat.app import App
from dikkat.bot.types import ButtonPress, Request


def request(command: str, args: str = "", user: str = "1") -> Request:
    return Request("telegram", user, "chat", command, args, "en")


async def test_frontend_answers_through_the_backend_it_is_given(
    bot, settings, minilm_encoder
) -> None:
    frontend_settings = settings.model_copy(update={"role": "frontend"})
    async with App(frontend_settings, backend=bot.service) as frontend:
        assert frontend.router is not None and frontend.service is None
        reply = await frontend.router.handle(request("sentiment", "Harika bir ürün, bayıldım"))
        data = next(b.data for b in reply.buttons if b.data.endswith("positive"))
        vote = await frontend.router.handle_button(ButtonPress("telegram", "7", "chat", data))
        assert "positive" in vote.text.lower() or "olumlu" in vote.text.lower()
        requested = await frontend.router.handle(request("retrain"))
        assert "requested" in requested.text  # the trainer runs it
        assert await frontend.store.take_retrain_request() == (1, "telegram:1")
        healthy, detail = await frontend.health()
        assert healthy and detail["database"] == "ok"
    assert await bot.store.feedback_count() == 1  # the vote landed in the shared database


async def test_trainer_retrains_and_inference_serves_without_a_router(
    settings, minilm_encoder, seed_features_db: Path, cast_vote
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    trainer_settings = settings.model_copy(update={"role": "trainer"})
    async with App(trainer_settings, encoder=minilm_encoder) as trainer:
        assert trainer.router is None and trainer.service is None
        assert trainer.retrainer is not None
        assert (await trainer.retrainer.run("admin", "cli")).status == "skipped"  # no vote yet
        await cast_vote(trainer.store)
        run = await trainer.retrainer.run("admin", "cli")
        assert run.status in ("promoted", "rejected")
        assert (await trainer.health())[0]
    inference_settings = settings.model_copy(update={"role": "inference"})
    async with App(inference_settings, encoder=minilm_encoder) as inference:
        assert inference.router is None and inference.retrainer is None
        assert inference.service is not None
        answer = await inference.service.sentiment("Kargo çok geç geldi")
        assert answer.label in ("negative", "neutral", "positive")


async def test_rate_limits_run_on_the_clock_the_app_is_given(
    settings, minilm_encoder, seed_features_db: Path
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    now = [1000.0]
    limited = settings.model_copy(update={"rate_limit_burst": 1, "rate_limit_per_minute": 1})
    async with App(limited, encoder=minilm_encoder, clock=lambda: now[0]) as app:
        first = await app.router.handle(request("sort", "CBABBC", user="5"))
        refused = await app.router.handle(request("sort", "CBABBC", user="5"))
        now[0] += 61  # a minute later on the given clock, no real waiting
        again = await app.router.handle(request("sort", "CBABBC", user="5"))
    assert "ABBBCC" in first.text and "ABBBCC" not in refused.text and "ABBBCC" in again.text


async def test_run_check_reports_what_a_trainer_has_and_hides_the_password(
    settings, seed_features_db: Path, tmp_path: Path
) -> None:
    from pydantic import SecretStr

    from dikkat.app import _database_shown, check

    shutil.copy(seed_features_db, settings.db_path)
    found = await check(settings.model_copy(update={"role": "trainer"}))
    assert found["healthy"] and found["role"] == "trainer" and "sorter_check" not in found
    assert found["database"] == str(settings.db_path)
    shared = settings.model_copy(
        update={"database_url": SecretStr("postgresql+asyncpg://dikkat:s3cret@db:5432/dikkat")}
    )
    assert _database_shown(shared) == "postgresql+asyncpg://dikkat:***@db:5432/dikkat"


async def test_a_serving_app_shortens_the_gil_switch_interval_and_restores_it(
    settings, minilm_encoder, seed_features_db: Path
) -> None:
    import sys

    shutil.copy(seed_features_db, settings.db_path)
    before = sys.getswitchinterval()
    async with App(settings.model_copy(update={"gil_switch_ms": 2.0}), encoder=minilm_encoder):
        assert sys.getswitchinterval() == 0.002
    assert sys.getswitchinterval() == before
