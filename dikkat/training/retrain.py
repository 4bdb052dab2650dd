"""The retrain job: seed corpus + feedback -> candidate head -> same evaluation -> promote?"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from dikkat.config import Settings
from dikkat.hashing import text_hash
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import HeadLoadError, SentimentHead, save_head
from dikkat.storage.coordination import LEASE_S
from dikkat.storage.errors import StoreError
from dikkat.storage.feature_cache import FeatureCache
from dikkat.storage.records import ModelVersion, RetrainRun, RunStatus, Superseded, VersionStatus
from dikkat.storage.store import Store
from dikkat.training.background import train_head_in_worker
from dikkat.training.candidate import train_candidate
from dikkat.training.heads import (
    ShippedReference,
    head_file,
    head_versions_dir,
    load_head_for,
    register_head,
)
from dikkat.training.profile import RunProfile
from dikkat.training.promotion import decide
from dikkat.training.sentiment import make_meta
from dikkat.training.serving import HeadServer
from dikkat.training.votes import resolve_votes

log = logging.getLogger(__name__)

OnDone = Callable[[RetrainRun], Awaitable[None]]


class RetrainJob:
    """Runs one retraining at a time (the database enforces it across processes)."""

    queued = False  # `start` runs the retrain in this process

    def __init__(
        self,
        store: Store,
        service: HeadServer,
        settings: Settings,
        *,
        encoder: SentenceEncoder,
        cache: FeatureCache,
    ) -> None:
        self.store = store
        self.service = service
        self.settings = settings
        self.cache = cache
        self.encoder = encoder
        self.last_profile: RunProfile | None = None  # of the latest run this job started
        self._shipped_reference: ShippedReference | None = None
        self._tasks: set[asyncio.Task[RetrainRun]] = set()

    @property
    def busy(self) -> bool:
        """True while a run this job started is still going."""
        return bool(self._tasks)

    async def start(
        self,
        trigger: str,
        requested_by: str | None,
        on_done: OnDone | None = None,
        *,
        slot: str | None = None,
    ) -> int:
        """Record a run and start it in the background; raises RunInProgress if one runs, and
        SlotTaken if a run of this schedule `slot` already happened (any process)."""
        run_id = await self.store.start_run(trigger, requested_by, slot=slot)
        task = asyncio.create_task(
            self._execute(run_id, trigger, on_done), name=f"retrain-{run_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run_id

    async def run(self, trigger: str, requested_by: str | None = None) -> RetrainRun:
        """Start a run and wait for its outcome."""
        done: asyncio.Future[RetrainRun] = asyncio.get_running_loop().create_future()

        async def resolve(run: RetrainRun) -> None:
            done.set_result(run)

        await self.start(trigger, requested_by, resolve)
        return await done

    async def stop(self) -> None:
        """Interrupt running work: the active head stays, the run is recorded as failed."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def rollback(self, version_id: int) -> ModelVersion:
        """Activate an older version and hot-swap it.

        Raises KeyError for an unknown version and HeadLoadError (recorded on the version) when
        its file is missing, damaged or differs from its checksum.
        """
        version = await self.store.get_version(version_id)
        if version is None or version.encoder != self.encoder.feature_key:
            raise KeyError(version_id)
        try:
            path = await head_file(self.store, version)
            head = await asyncio.to_thread(self._load, path, version.sha256)
        except HeadLoadError as error:
            await self.store.mark_unloadable(version_id, str(error))
            raise
        activated = await self.store.activate_version(version_id)
        self.service.swap_head(head, version_id)
        return activated

    def _load(self, path: Path, sha256: str | None = None) -> SentimentHead:
        return load_head_for(path, self.encoder, sha256=sha256)

    async def _execute(self, run_id: int, trigger: str, on_done: OnDone | None) -> RetrainRun:
        heartbeat = asyncio.create_task(self._renew_lease(run_id), name=f"lease-{run_id}")
        profile = self.last_profile = RunProfile(run_id)
        try:
            await self._train_and_decide(run_id, trigger, profile)
        except asyncio.CancelledError:
            await asyncio.shield(
                self.store.finish_run(
                    run_id, status=RunStatus.FAILED, error="interrupted (the bot is stopping)"
                )
            )
            if on_done is not None:  # tell whoever started it, if that still works
                run = await asyncio.shield(self.store.get_run(run_id))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(on_done(run)), 5)
            raise
        except Exception as error:
            log.exception("retrain run %d failed", run_id)
            await self.store.finish_run(
                run_id, status=RunStatus.FAILED, error=f"{type(error).__name__}: {error}"
            )
        finally:
            heartbeat.cancel()
            profile.observe()
        run = await self.store.get_run(run_id)
        assert run is not None
        log.info("retrain run %d: %s", run_id, run.status)
        if on_done is not None:
            await on_done(run)
        return run

    async def _renew_lease(self, run_id: int) -> None:
        """Tell other processes this run is alive (they reclaim it only when the lease ends)."""
        while True:
            await asyncio.sleep(LEASE_S / 4)
            try:
                await self.store.renew_lease(run_id)
            except StoreError as error:  # retried; the lease has slack for three misses
                log.warning("could not renew the lease of retrain run %d: %s", run_id, error)
            except Exception:
                log.warning("could not renew the lease of retrain run %d", run_id, exc_info=True)

    async def _train_and_decide(self, run_id: int, trigger: str, profile: RunProfile) -> None:
        with profile.phase("gather"):
            previous = await self.store.last_run(finished=True)
            since = previous.started_at if previous is not None else 0.0
            n_new = await self.store.feedback_count(since)
            feedback = await asyncio.to_thread(
                resolve_votes,
                await self.store.feedback_votes(),
                self.settings.retrain_max_labels_per_user,
            )
        if not feedback or (trigger == "cron" and n_new < self.settings.retrain_min_feedback):
            # nothing to learn: a candidate would be the shipped recipe again
            await self.store.finish_run(run_id, status=RunStatus.SKIPPED, n_feedback=len(feedback))
            return
        with profile.phase("gather"):
            active_version = await self.store.active_version(self.encoder.feature_key)
            if active_version is None:
                raise RuntimeError("no active head to compare against")
            active = await asyncio.to_thread(
                self._load, Path(active_version.path), active_version.sha256
            )
        with profile.phase("features"):
            await asyncio.to_thread(self._remember_recent, [text for text, _ in feedback])
            cached = await self.store.count_features(self.encoder.feature_key)
            shipped = await asyncio.to_thread(self._shipped)
        report = await asyncio.to_thread(
            train_candidate,
            self.encoder,
            self.cache,
            active,
            feedback,
            holdout_share=self.settings.retrain_feedback_holdout,
            profile=profile,
            fit=functools.partial(train_head_in_worker, nice=self.settings.retrain_nice),
            shipped=shipped.head,
            rehearsal=shipped.rehearsal,
            feedback_weight=self.settings.retrain_feedback_weight,
        )
        encoded = await self.store.count_features(self.encoder.feature_key) - cached
        profile.encoded_texts = encoded  # features_for stores what it encodes
        tolerance = self.settings.retrain_tolerance
        decision = decide(
            report.before,
            report.after,
            held=report.held,
            floor=None if report.shipped_fixed is None else report.shipped_fixed - tolerance,
            confidence=self.settings.retrain_confidence,
            tolerance=tolerance,
            min_feedback_eval=self.settings.retrain_min_feedback_eval,
        )
        promote = decision.promote
        report.after["promotion"] = decision.record()
        log.info(
            "retrain run %d: %s: %s", run_id, "promote" if promote else "reject", decision.reason
        )
        meta = make_meta(
            self.encoder,
            report.after,
            report.data,
            source=f"retrain run {run_id}",
            n_train=len(report.data),
            n_feedback=len(feedback),
        )
        path = head_versions_dir(self.settings) / f"run-{run_id}.pt"
        with profile.phase("save"):
            await asyncio.to_thread(save_head, report.head, path, meta)
            version_id = await register_head(
                self.store,
                path,
                encoder=self.encoder.feature_key,
                dim=self.encoder.dim,
                metrics=report.after,
                status=VersionStatus.CANDIDATE,
                source=f"retrain #{run_id} ({trigger})",
            )
        status = RunStatus.PROMOTED if promote else RunStatus.REJECTED
        error = None
        if promote:
            try:
                await self.store.activate_version(version_id, expected_active=active_version.id)
            except Superseded as changed:
                status, error = (
                    RunStatus.SUPERSEDED,
                    f"judged against #{active_version.id}; {changed}",
                )
                log.warning("retrain run %d not promoted: %s", run_id, error)
            else:
                self.service.swap_head(report.head.to(self.encoder.device).eval(), version_id)
        if status != RunStatus.PROMOTED:
            await self.store.set_version_status(version_id, VersionStatus.REJECTED)
        await self.store.finish_run(
            run_id,
            status=status,
            error=error,
            n_feedback=len(feedback),
            n_train=len(report.data),
            metrics_before=report.before,
            metrics_after=report.after,
            candidate_version=version_id,
        )

    def _shipped(self) -> ShippedReference:
        """The shipped head and its rehearsal buffer for this encoder, read once."""
        if self._shipped_reference is None:
            self._shipped_reference = ShippedReference.load(self.encoder)
        return self._shipped_reference

    def _remember_recent(self, texts: list[str]) -> None:
        """Put features the service still remembers into the cache, so they are not re-encoded."""
        hashes = {text_hash(text) for text in texts}
        missing = hashes - self.cache.get_many(hashes).keys()
        fresh: dict[str, np.ndarray] = {}
        for key in missing:
            vector = self.service.recent_features(key)
            if vector is not None:
                fresh[key] = vector
        if fresh:
            self.cache.put_many(fresh)
