"""The one trainer: wait for leadership, take over from a dead leader, then run the cron
schedule and the retrain requests that frontends leave in the database. A database that cannot
be reached ends a turn as leader or standby, never the trainer: it tries again until it leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dikkat.aio import Backoff, unless_stopped
from dikkat.config import Settings
from dikkat.scale.leader import Leadership
from dikkat.storage.errors import StoreError
from dikkat.storage.records import RunInProgress, RunStatus
from dikkat.storage.store import Store
from dikkat.training.retrain import RetrainJob
from dikkat.training.schedule import build_scheduler

log = logging.getLogger(__name__)

REQUEST_POLL_S = 2.0
RETRY_FIRST_S = 0.5  # the pause after a failed turn, doubled after each further failure
RETRY_MAX_S = 30.0  # a database back from an outage is found at most this late

Request = tuple[int, str]  # a frontend's retrain request: (id, requested_by)


async def lead_retraining(
    job: RetrainJob, store: Store, settings: Settings, stop: asyncio.Event
) -> None:
    """Lead retraining whenever this process holds the leadership, until `stop` is set; then
    return at once, whatever the turn was waiting for (the lock, the database, a pause).

    A turn waits for the leadership and leads until the lock or the database is lost; a turn
    that failed is followed by a pause (see `_Retry`), never by the end of the trainer."""
    retry = _Retry()
    taken: list[Request] = []  # taken from the database, not started when it went away
    while not stop.is_set():
        try:
            await unless_stopped(_turn(job, store, settings, stop, retry, taken), stop)
        except Exception as error:
            await unless_stopped(asyncio.sleep(retry.failed(error)), stop)


async def _turn(
    job: RetrainJob,
    store: Store,
    settings: Settings,
    stop: asyncio.Event,
    retry: _Retry,
    taken: list[Request],
) -> None:
    leadership = Leadership(settings)
    try:
        try:
            await leadership.acquire()
        except StoreError:
            if leadership.reached:  # a standby that waited on a live database lost it: anew
                retry.recovered(quietly=True)
            raise
        await _take_over(store)
        log.info("this process leads retraining (cron %s)", settings.retrain_cron)
        await _lead(job, store, settings, stop, leadership.lost, retry, taken)
    finally:  # also when a stop cancels the turn: the lock goes, a standby takes over
        await leadership.release()


class _Retry:
    """The pause after a failed turn (a Backoff from RETRY_FIRST_S to RETRY_MAX_S, reset once
    the database has served a turn). An outage is one line when it begins and one when this
    process leads again; another error is logged with its traceback, at the pace of the
    pauses."""

    def __init__(self) -> None:
        self.backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        self.outage = False  # the database could not be reached, and has not served since

    def failed(self, error: Exception) -> float:
        """Log `error`; the seconds to wait before the next turn."""
        if not isinstance(error, StoreError):
            log.error("retrain leadership failed; trying again", exc_info=error)
        elif not self.outage:
            self.outage = True
            log.warning("retraining waits for the database: %s: %s", type(error).__name__, error)
        else:
            log.debug("the database still cannot be reached: %s", error)
        return self.backoff.next()

    def recovered(self, *, quietly: bool = False) -> None:
        """The database served this turn: a later failure is a new outage."""
        if self.outage and not quietly:
            log.info("retraining: the database answers again")
        self.outage = False
        self.backoff.reset()


async def _take_over(store: Store) -> None:
    """Fail the runs a dead leader left behind: those whose lease expired or whose owner died
    on this host. A run whose owner still renews its lease (a `dikkat retrain` from the CLI, a
    leader that is only slow) is left to finish; no new run starts beside it."""
    interrupted = await store.fail_unfinished_runs()
    if interrupted:
        log.warning("%d retrain run(s) were interrupted by the previous leader's stop", interrupted)


async def _lead(
    job: RetrainJob,
    store: Store,
    settings: Settings,
    stop: asyncio.Event,
    lost: asyncio.Event,
    retry: _Retry,
    taken: list[Request],
) -> None:
    scheduler = build_scheduler(job, settings.retrain_cron)
    scheduler.start()
    try:
        while not stop.is_set() and not lost.is_set():
            await _serve_one_request(job, store, taken)
            retry.recovered()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REQUEST_POLL_S):
                    await unless_stopped(lost.wait(), stop)
    finally:
        scheduler.shutdown(wait=False)


async def _serve_one_request(job: RetrainJob, store: Store, taken: list[Request]) -> None:
    """Start the oldest retrain request a frontend left, when no run is going on: one that
    this process took before the database went away first."""
    if job.busy or await _run_going_on(store):
        return
    request = taken.pop() if taken else await store.take_retrain_request()
    if request is None:
        return
    request_id, requested_by = request
    try:
        run_id = await job.start("admin", requested_by)
    except RunInProgress as busy:  # a run that cron started meanwhile
        again = await store.request_retrain(requested_by)  # not lost: asked again, for later
        log.info("retrain request %d not started (%s); queued again as %d", request_id, busy, again)
        return
    except StoreError:  # taken, not started: kept for when this process leads again
        taken.append(request)
        raise
    await store.attach_request_run(request_id, run_id)


async def _run_going_on(store: Store) -> bool:
    """A run of another process (a CLI retrain) is still going on: requests wait for it."""
    run = await store.last_run()
    return run is not None and run.status == RunStatus.RUNNING
