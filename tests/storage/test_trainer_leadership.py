"""Exactly one trainer: leadership is a lock that a standby takes over when the leader goes;
the leader serves the retrain requests that frontends leave, and fails a dead leader's run."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from dikkat.app import App
from dikkat.scale.leader import LEADER_LOCK_KEY, Leadership
from dikkat.scale.remote_retrainer import RetrainRequests
from dikkat.scale.trainer import lead_retraining
from dikkat.storage.migrate import asyncpg_dsn, sqlite_path

HANG_S = 30.0  # only a hang takes this long (a takeover normally takes under a second)
RETRAIN_HANG_S = 120.0  # a retrain on 2 busy cores: only a hang takes this long


def dead_owner() -> str:
    """The owner string of a process on this host that has already exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


async def _until(
    condition: Callable[[], Awaitable[bool]], what: str, hang_s: float = HANG_S
) -> None:
    """Poll `condition` until it holds; the deadline only catches a hang."""
    try:
        async with asyncio.timeout(hang_s):
            while not await condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"hung: {what} after {hang_s} s") from None


@asynccontextmanager
async def _standby_seen_waiting(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
    """A check that holds once a second Leadership demonstrably waits for the lock. SQLite: its
    non-blocking flock was refused twice (it tried, was refused, kept waiting, tried again).
    PostgreSQL: the server holds a request for the leader lock in this database, not granted."""
    if sqlite_path(url) is not None:
        refusals = 0
        flock = fcntl.flock

        def counting(fd: int, operation: int) -> None:
            nonlocal refusals
            try:
                flock(fd, operation)
            except BlockingIOError:
                refusals += 1
                raise

        async def refused_twice() -> bool:
            return refusals >= 2

        monkeypatch.setattr(fcntl, "flock", counting)
        yield refused_twice
        return
    import asyncpg

    observer = await asyncpg.connect(asyncpg_dsn(url))

    async def server_makes_it_wait() -> bool:
        return bool(
            await observer.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = 0 AND objid = $1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                LEADER_LOCK_KEY,
            )
        )

    try:
        yield server_makes_it_wait
    finally:
        await observer.close()


async def _waiting_or_done(
    standby_waits: Callable[[], Awaitable[bool]], waiting: asyncio.Task[None]
) -> bool:
    """Seen waiting, or its acquire already returned (when nothing stops it: caught below)."""
    return waiting.done() or await standby_waits()


async def test_a_standby_leads_only_after_the_leader_lets_go(
    shared_url: str, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = settings.model_copy(update={"database_url": SecretStr(shared_url)})
    leader, standby = Leadership(shared), Leadership(shared)
    async with _standby_seen_waiting(shared_url, monkeypatch) as standby_waits:
        await leader.acquire()
        waiting = asyncio.create_task(standby.acquire())
        try:
            await _until(
                lambda: _waiting_or_done(standby_waits, waiting),
                "the standby never asked for the lock",
            )
            assert leader.held and not waiting.done()  # two trainers never lead together
            assert not standby.held  # waiting for the lock is not leading
            await leader.release()  # or its process dies: the server / the kernel drops it
            await asyncio.wait([waiting], timeout=HANG_S)  # the takeover: only a hang is slow
            assert waiting.done(), f"hung: no takeover {HANG_S} s after the leader let go"
            waiting.result()
            assert standby.held and not leader.held
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            await leader.release()
            await standby.release()


async def test_the_leader_runs_a_frontends_request_and_fails_a_dead_leaders_run(
    shared_url: str, settings, minilm_encoder, seed_features_db: Path, cast_vote
) -> None:
    shutil.copy(seed_features_db, settings.db_path)
    trainer_settings = settings.model_copy(
        update={"database_url": SecretStr(shared_url), "role": "trainer"}
    )
    async with App(trainer_settings, encoder=minilm_encoder) as trainer:
        store = trainer.store
        await cast_vote(store)
        dead = await store.start_run("cron", None)  # a run its (dead) leader never finished
        await store._write(
            "UPDATE retrain_runs SET owner = :owner WHERE id = :id",
            {"owner": dead_owner(), "id": dead},
        )
        frontend = RetrainRequests(store, minilm_encoder.feature_key)
        request_id = await frontend.start("admin", "telegram:1")
        stop = asyncio.Event()
        leading = asyncio.create_task(
            lead_retraining(trainer.retrainer, store, trainer_settings, stop)
        )
        try:
            async with asyncio.timeout(120):  # a retrain: only a hang takes this long
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


async def test_a_new_leader_leaves_a_live_run_of_another_process_alone(
    shared_url: str, settings, minilm_encoder, seed_features_db: Path, caplog, cast_vote
) -> None:
    caplog.set_level(logging.INFO, logger="dikkat.scale.trainer")
    shutil.copy(seed_features_db, settings.db_path)
    trainer_settings = settings.model_copy(
        update={"database_url": SecretStr(shared_url), "role": "trainer"}
    )
    async with App(trainer_settings, encoder=minilm_encoder) as trainer:
        store = trainer.store
        await cast_vote(store)
        live = await store.start_run("cli", "cli")  # a `dikkat retrain` elsewhere, lease renewed
        await store._write(
            "UPDATE retrain_runs SET owner = 'elsewhere:1' WHERE id = :id", {"id": live}
        )
        await RetrainRequests(store, minilm_encoder.feature_key).start("admin", "telegram:1")
        stop = asyncio.Event()
        leading = asyncio.create_task(
            lead_retraining(trainer.retrainer, store, trainer_settings, stop)
        )
        try:
            await _until(lambda: _logged(caplog, "leads retraining"), "no leader")
            assert (await store.get_run(live)).status == "running"  # not failed by the leader
            assert (await store.last_run()).id == live  # and no run beside it
            await store.finish_run(live, status="skipped")
            await _until(
                lambda: _finished_for(store, "telegram:1"),
                "the request never ran afterwards",
                RETRAIN_HANG_S,
            )
        finally:
            stop.set()
            await leading


async def _logged(caplog: pytest.LogCaptureFixture, words: str) -> bool:
    return any(words in record.getMessage() for record in caplog.records)


async def _finished_for(store, requested_by: str) -> bool:
    run = await store.last_run(finished=True)
    return run is not None and run.requested_by == requested_by


async def test_a_schema_upgrade_does_not_wait_for_the_trainer_leader(pg_url: str, settings) -> None:
    from dikkat.storage.migrate import upgrade

    leader = Leadership(settings.model_copy(update={"database_url": SecretStr(pg_url)}))
    await leader.acquire()
    try:  # the leader holds its lock for as long as it leads; a migration must not need it
        await asyncio.wait_for(upgrade(pg_url), HANG_S)
    finally:
        await leader.release()
