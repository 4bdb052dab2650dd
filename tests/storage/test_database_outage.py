"""The trainer outlives its database: while PostgreSQL is down or hangs it waits and tries again,
it leads again once the server is back, and a stop ends it at any moment."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pg_cluster import PgCluster, pg_cluster, pg_unavailable_reason
from pydantic import SecretStr

from dikkat.app import App
from dikkat.scale import trainer as trainer_module
from dikkat.scale.leader import Leadership
from dikkat.scale.remote_retrainer import RetrainRequests
from dikkat.scale.trainer import lead_retraining
from dikkat.storage.errors import StoreUnavailable
from dikkat.storage.store import Store

HANG_S = 30.0  # only a hang takes this long (noticing an outage takes a few seconds)
RETRAIN_HANG_S = 120.0  # leading again and starting a retrain on 2 busy cores


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgCluster]:
    """A cluster of this module's own: its tests stop and freeze it."""
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def outage(own_server: PgCluster) -> Iterator[tuple[PgCluster, str]]:
    """The cluster and a fresh database on it; the cluster runs again after the test."""
    name = "t_" + uuid.uuid4().hex[:12]
    own_server.create_database(name)
    yield own_server, own_server.sqlalchemy_url_for(name)
    own_server.thaw()
    if not own_server.running:
        own_server.start()
    own_server.drop_database(name)


async def _until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, hang_s: float = HANG_S
) -> None:
    """Poll `condition` until it holds; the deadline only catches a hang."""
    try:
        async with asyncio.timeout(hang_s):
            while True:
                held = condition()
                if held is True or (held is not False and await held):
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"hung: {what} after {hang_s} s") from None


def _count(caplog: pytest.LogCaptureFixture, words: str) -> int:
    return sum(words in record.getMessage() for record in caplog.records)


def _alive(leading: asyncio.Task[None]) -> None:
    """The trainer did not give up (its error, if it did)."""
    if leading.done():
        error = leading.exception()
        raise AssertionError(f"the trainer stopped leading for good: {error!r}") from error


async def test_acquire_says_the_database_is_unavailable_when_the_server_is_down(
    outage: tuple[PgCluster, str], settings
) -> None:
    pg, url = outage
    await asyncio.to_thread(pg.stop)
    leadership = Leadership(settings.model_copy(update={"database_url": SecretStr(url)}))
    with pytest.raises(StoreUnavailable):
        await leadership.acquire()
    assert not leadership.held
    await leadership.release()


async def test_the_leader_leads_again_after_an_outage_and_serves_a_frontends_request(
    outage: tuple[PgCluster, str], settings, minilm_encoder, seed_features_db: Path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="dikkat.scale.trainer")
    pg, url = outage
    shutil.copy(seed_features_db, settings.db_path)
    trainer_settings = settings.model_copy(
        update={"database_url": SecretStr(url), "role": "trainer"}
    )
    async with App(trainer_settings, encoder=minilm_encoder) as trainer:
        stop = asyncio.Event()
        leading = asyncio.create_task(
            lead_retraining(trainer.retrainer, trainer.store, trainer_settings, stop)
        )
        try:
            await _until(
                lambda: leading.done() or _count(caplog, "leads retraining") == 1, "no leader"
            )
            _alive(leading)
            await asyncio.to_thread(pg.stop)
            await _until(
                lambda: leading.done() or _count(caplog, "waits for the database") == 1,
                "the leader never noticed the outage",
            )
            _alive(leading)
            await asyncio.to_thread(pg.start)
            frontend = await Store.open(url)  # a frontend's own connections
            try:
                await RetrainRequests(frontend, minilm_encoder.feature_key).start(
                    "admin", "telegram:1"
                )
                await _until(
                    lambda: leading.done() or _run_for(frontend, "telegram:1"),
                    "the request left after the outage never ran",
                    RETRAIN_HANG_S,
                )
            finally:
                await frontend.close()
            _alive(leading)
            assert _count(caplog, "leads retraining") >= 2  # led again: the same process
            assert _count(caplog, "waits for the database") == 1  # one line for the outage
        finally:
            stop.set()
            await asyncio.wait_for(leading, HANG_S)


async def _run_for(store: Store, requested_by: str) -> bool:
    run = await store.last_run()
    return run is not None and run.requested_by == requested_by


async def test_a_stop_while_the_database_is_down_returns_at_once(
    outage: tuple[PgCluster, str], settings, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="dikkat.scale.trainer")
    # The pause before the next try outlasts the test: only a stop can end it.
    monkeypatch.setattr(trainer_module, "RETRY_FIRST_S", 3600.0)
    monkeypatch.setattr(trainer_module, "RETRY_MAX_S", 3600.0)
    pg, url = outage
    store = await Store.open(url)
    try:
        await asyncio.to_thread(pg.stop)
        shared = settings.model_copy(update={"database_url": SecretStr(url)})
        stop = asyncio.Event()
        job = SimpleNamespace(busy=False)  # never used: this trainer cannot lead
        leading = asyncio.create_task(lead_retraining(job, store, shared, stop))
        await _until(
            lambda: leading.done() or _count(caplog, "waits for the database") == 1,
            "the trainer never tried the database",
        )
        _alive(leading)
        stop.set()
        await asyncio.wait([leading], timeout=HANG_S)
        assert leading.done(), f"hung: a stop during an outage not obeyed after {HANG_S} s"
        assert leading.result() is None
    finally:
        await store.close()


async def test_a_stop_while_the_database_hangs_returns(
    outage: tuple[PgCluster, str], settings, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="dikkat.scale.trainer")
    pg, url = outage
    store = await Store.open(url)
    frozen, asking, in_flight = False, asyncio.Event(), 0
    last_run = store.last_run

    async def last_run_seen(**options: bool):  # the leader's poll: seen asking a frozen server
        nonlocal in_flight
        if frozen:
            asking.set()
        in_flight += 1
        try:
            return await last_run(**options)
        finally:
            in_flight -= 1

    monkeypatch.setattr(store, "last_run", last_run_seen)
    shared = settings.model_copy(update={"database_url": SecretStr(url)})
    stop = asyncio.Event()
    job = SimpleNamespace(busy=False)  # polls for requests; none comes
    leading = asyncio.create_task(lead_retraining(job, store, shared, stop))
    try:
        await _until(lambda: leading.done() or _count(caplog, "leads retraining") == 1, "no leader")
        _alive(leading)
        pg.freeze()
        frozen = True
        if in_flight:  # a poll sent before the freeze now waits for the frozen server
            asking.set()
        await _until(lambda: leading.done() or asking.is_set(), "the leader never polled")
        _alive(leading)
        stop.set()
        await asyncio.wait([leading], timeout=HANG_S)
        assert leading.done(), f"hung: a stop while the database hangs not obeyed after {HANG_S} s"
        assert leading.result() is None
    finally:
        pg.thaw()
        stop.set()
        await asyncio.wait([leading], timeout=HANG_S)
        await store.close()


class _FlakyJob:
    """A retrain job whose first start meets a database that just went away."""

    busy = False

    def __init__(self) -> None:
        self.starts: list[str | None] = []

    async def start(self, trigger: str, requested_by: str | None) -> int:
        self.starts.append(requested_by)
        if len(self.starts) == 1:
            raise StoreUnavailable("connection is closed")
        return 42


class _OneRequest:
    """A store with one frontend's request in it, which can be taken once."""

    def __init__(self) -> None:
        self.requests = [(7, "telegram:1")]
        self.attached = asyncio.Event()
        self.attachments: list[tuple[int, int]] = []

    async def fail_unfinished_runs(self) -> int:
        return 0

    async def last_run(self) -> None:
        return None

    async def take_retrain_request(self) -> tuple[int, str] | None:
        return self.requests.pop() if self.requests else None

    async def attach_request_run(self, request_id: int, run_id: int) -> None:
        self.attachments.append((request_id, run_id))
        self.attached.set()


async def test_a_request_taken_as_the_database_went_away_runs_when_it_is_back(settings) -> None:
    job, store, stop = _FlakyJob(), _OneRequest(), asyncio.Event()
    leading = asyncio.create_task(lead_retraining(job, store, settings, stop))
    try:
        await _until(lambda: leading.done() or store.attached.is_set(), "the request never ran")
        _alive(leading)
        assert job.starts == ["telegram:1", "telegram:1"]  # tried again, not lost
        assert store.attachments == [(7, 42)]
    finally:
        stop.set()
        await asyncio.wait_for(leading, HANG_S)


async def test_a_trainer_started_while_the_database_is_down_waits_then_leads(
    outage: tuple[PgCluster, str], tmp_path: Path, prepared_model_dir: Path
) -> None:
    import os
    import signal
    import sys

    cluster, url = outage
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIKKAT_")}
    env |= {
        "DIKKAT_ROLE": "trainer",
        "DIKKAT_DATABASE_URL": url,
        "DIKKAT_DB_PATH": str(tmp_path / "dikkat.db"),
        "DIKKAT_MODEL_DIR": str(prepared_model_dir),
        "DIKKAT_DEVICE": "cpu",
        "DIKKAT_LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
    }
    await asyncio.to_thread(cluster.stop)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dikkat", "run", env=env, cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    seen: list[str] = []

    async def line_with(words: str) -> None:
        while not any(words in line for line in seen):
            line = (await process.stderr.readline()).decode()
            if not line:
                raise AssertionError("dikkat run ended:\n" + "".join(seen[-20:]))
            seen.append(line)

    try:
        await asyncio.wait_for(line_with("waiting for the database"), RETRAIN_HANG_S)
        await asyncio.to_thread(cluster.start)
        await asyncio.wait_for(line_with("leads retraining"), RETRAIN_HANG_S)
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), RETRAIN_HANG_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    logs = "".join(seen) + rest.decode()
    assert process.returncode == 0, logs[-3000:]
    assert logs.count("waiting for the database") == 1 and "Traceback" not in logs
