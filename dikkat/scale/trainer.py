"""The one trainer: wait for leadership, take over from a dead leader, then run the cron
schedule and the retrain requests that frontends leave in the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dikkat.aio import unless_stopped
from dikkat.config import Settings
from dikkat.scale.leader import Leadership
from dikkat.storage.store import RunInProgress, RunStatus, Store
from dikkat.training.retrain import RetrainJob
from dikkat.training.schedule import build_scheduler

log = logging.getLogger(__name__)

REQUEST_POLL_S = 2.0


async def lead_retraining(
    job: RetrainJob, store: Store, settings: Settings, stop: asyncio.Event
) -> None:
    """Lead retraining whenever this process holds the leadership, until `stop` is set."""
    while not stop.is_set():
        leadership = Leadership(settings)
        if not await unless_stopped(leadership.acquire(), stop):
            await leadership.release()
            return
        try:
            await _take_over(store)
            log.info("this process leads retraining (cron %s)", settings.retrain_cron)
            await _lead(job, store, settings, stop, leadership.lost)
        finally:
            await leadership.release()


async def _take_over(store: Store) -> None:
    """Fail the runs a dead leader left behind: those whose lease expired or whose owner died
    on this host. A run whose owner still renews its lease (a `dikkat retrain` from the CLI, a
    leader that is only slow) is left to finish; no new run starts beside it."""
    interrupted = await store.fail_unfinished_runs()
    if interrupted:
        log.warning("%d retrain run(s) were interrupted by the previous leader's stop", interrupted)


async def _lead(
    job: RetrainJob, store: Store, settings: Settings, stop: asyncio.Event, lost: asyncio.Event
) -> None:
    scheduler = build_scheduler(job, settings.retrain_cron)
    scheduler.start()
    try:
        while not stop.is_set() and not lost.is_set():
            await _serve_one_request(job, store)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REQUEST_POLL_S):
                    await unless_stopped(lost.wait(), stop)
    finally:
        scheduler.shutdown(wait=False)


async def _serve_one_request(job: RetrainJob, store: Store) -> None:
    """Start the oldest retrain request a frontend left, when no run is going on."""
    if job.busy or await _run_going_on(store):
        return
    request = await store.take_retrain_request()
    if request is None:
        return
    request_id, requested_by = request
    try:
        run_id = await job.start("admin", requested_by)
    except RunInProgress as busy:  # a run that cron started meanwhile
        again = await store.request_retrain(requested_by)  # not lost: asked again, for later
        log.info("retrain request %d not started (%s); queued again as %d", request_id, busy, again)
        return
    await store.attach_request_run(request_id, run_id)


async def _run_going_on(store: Store) -> bool:
    """A run of another process (a CLI retrain) is still going on: requests wait for it."""
    run = await store.last_run()
    return run is not None and run.status == RunStatus.RUNNING
