"""The one trainer: wait for leadership, take over from a dead leader, then run the cron
schedule and the retrain requests that frontends leave in the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dikkat.app import unless_stopped
from dikkat.config import Settings
from dikkat.scale.leader import Leadership
from dikkat.storage.runs import INTERRUPTED
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
        log.info("this process leads retraining (cron %s)", settings.retrain_cron)
        try:
            await _take_over(store)
            await _lead(job, store, settings, stop, leadership.lost)
        finally:
            await leadership.release()


async def _take_over(store: Store) -> None:
    """A run still 'running' when leadership changes hands belonged to a leader that died."""
    run = await store.last_run()
    if run is not None and run.status == RunStatus.RUNNING:
        await store.finish_run(run.id, status=RunStatus.FAILED, error=INTERRUPTED)
        log.warning("retrain run %d was interrupted by the previous leader's stop", run.id)


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
    if job.busy:
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
