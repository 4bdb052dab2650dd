"""The nightly retrain: an APScheduler cron job that skips itself when a run is in progress."""

from __future__ import annotations

import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dikkat.config import cron_slot, cron_trigger
from dikkat.storage.errors import StoreError
from dikkat.storage.records import RunInProgress, SlotTaken
from dikkat.training.retrain import RetrainJob

log = logging.getLogger(__name__)


async def scheduled_retrain(job: RetrainJob) -> None:
    """One cron-triggered run (skipped inside the job when there is too little new feedback).

    Its slot is the cron minute (the second, for a 6-field crontab): a second scheduler firing
    the same slot is refused by the database, whichever process it runs in."""
    slot = cron_slot(job.settings.retrain_cron, time.time())
    try:
        run_id = await job.start("cron", None, slot=slot)
    except (RunInProgress, SlotTaken) as busy:
        log.info("scheduled retrain skipped: %s", busy)
        return
    except StoreError as error:  # the database is away: the leader waits for it anyway
        log.warning("scheduled retrain skipped: the database failed (%s)", error)
        return
    log.info("scheduled retrain run %d started (%s)", run_id, slot)


def build_scheduler(job: RetrainJob, cron: str) -> AsyncIOScheduler:
    """A scheduler (not started) with the retrain job: coalesced, at most one instance."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        scheduled_retrain,
        cron_trigger(cron),
        args=[job],
        id="retrain",
        name="retrain the sentiment head",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=3600,
        replace_existing=True,
    )
    return scheduler
