"""Exactly one trainer: leadership is a lock that a standby takes over when the leader goes;
the leader serves the retrain requests that frontends leave, and fails a dead leader's run."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from dikkat.app import App
from dikkat.scale.leader import Leadership
from dikkat.scale.remote_retrainer import RetrainRequests
from dikkat.scale.trainer import lead_retraining


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


async def test_a_standby_leads_only_after_the_leader_lets_go(shared_url: str, settings) -> None:
    shared = settings.model_copy(update={"database_url": SecretStr(shared_url)})
    leader, standby = Leadership(shared), Leadership(shared)
    await leader.acquire()
    waiting = asyncio.create_task(standby.acquire())
    await asyncio.sleep(1.0)
    assert leader.held and not waiting.done()  # two trainers never lead together
    released = time.monotonic()
    await leader.release()  # or its process dies: the server / the kernel drops the lock
    await asyncio.wait_for(waiting, 5)
    assert standby.held and time.monotonic() - released < 2.0
    await standby.release()


async def test_the_leader_runs_a_frontends_request_and_fails_a_dead_leaders_run(
    shared_url: str, settings, minilm_encoder, seed_features_db: Path
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    trainer_settings = settings.model_copy(
        update={"database_url": SecretStr(shared_url), "role": "trainer"}
    )
    async with App(trainer_settings, encoder=minilm_encoder) as trainer:
        store = trainer.store
        dead = await store.start_run("cron", None)  # a run its (dead) leader never finished
        frontend = RetrainRequests(store, minilm_encoder.feature_key)
        request_id = await frontend.start("admin", "telegram:1")
        stop = asyncio.Event()
        leading = asyncio.create_task(
            lead_retraining(trainer.retrainer, store, trainer_settings, stop)
        )
        try:
            async with asyncio.timeout(60):
                while True:
                    run = await store.last_run(finished=True)
                    if run is not None and run.id != dead and run.requested_by == "telegram:1":
                        break
                    await asyncio.sleep(0.2)
        finally:
            stop.set()
            await leading
        assert (await store.get_run(dead)).status == "failed"
        assert run.status in ("promoted", "rejected", "skipped") and request_id >= 1
