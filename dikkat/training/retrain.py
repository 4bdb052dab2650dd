"""The retrain job: seed corpus + feedback -> candidate head -> same evaluation -> promote?"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import Summary

from dikkat.config import Settings
from dikkat.models.checksum import file_sha256
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import (
    HeadLoadError,
    HeadMismatchError,
    SentimentHead,
    default_head_path,
    head_file_name,
    load_head,
    save_head,
)
from dikkat.storage.features import FeatureCache, text_hash
from dikkat.storage.store import (
    LEASE_S,
    ModelVersion,
    RetrainRun,
    RunStatus,
    Store,
    Superseded,
    VersionStatus,
)
from dikkat.training.data import load_labelled_csv, seed_corpus_path, split_train_val
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.sentiment import TrainResult, make_meta, train_head
from dikkat.training.serving import HeadServer
from dikkat.training.votes import resolve_votes

log = logging.getLogger(__name__)

OnDone = Callable[[RetrainRun], Awaitable[None]]
EVAL_FRACTION = 0.25
EVAL_SEED = 0
INNER_VAL_FRACTION = 0.15
PHASES = ("gather", "features", "train", "evaluate", "save")
PHASE_SECONDS = Summary(
    "dikkat_retrain_phase_seconds", "Wall seconds of one retrain run's phase.", ["phase"]
)


@dataclass
class RunProfile:
    """Where one retrain run spent its time (seconds per phase of PHASES) and what it computed."""

    run_id: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None  # training epochs of the candidate
    encoded_texts: int = 0  # texts encoded because neither cached nor remembered

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to phase `name`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def observe(self) -> None:
        """Record each phase's seconds in the dikkat_retrain_phase_seconds summary."""
        for name, seconds in self.seconds.items():
            PHASE_SECONDS.labels(phase=name).observe(seconds)


def seed_split(seed: int = EVAL_SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed corpus as (training part, fixed evaluation set): stratified 75/25."""
    return split_train_val(load_labelled_csv(seed_corpus_path()), EVAL_FRACTION, seed)


def load_head_for(
    path: Path, encoder: SentenceEncoder, *, sha256: str | None = None
) -> SentimentHead:
    """A stored head checked against `encoder` (id, dimension, pooling) and `sha256`, on the
    encoder's device. Raises HeadLoadError or HeadMismatchError."""
    head, _ = load_head(
        path,
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        pooling=encoder.pooling,
        device=encoder.device,
        sha256=sha256,
    )
    return head


def head_versions_dir(settings: Settings) -> Path:
    """Where head versions live."""
    return settings.model_dir / "heads"


def merge_training_data(seed_train: pd.DataFrame, feedback: list[tuple[str, str]]) -> pd.DataFrame:
    """Seed training rows plus feedback; a feedback label overrides the seed label of its text."""
    corrected = pd.DataFrame(feedback, columns=["text", "label"])
    kept = seed_train[~seed_train["text"].isin(set(corrected["text"]))]
    return pd.concat([kept, corrected], ignore_index=True)


def is_held_out(text: str, share: float) -> bool:
    """Whether a feedback text belongs to the held-out evaluation share (stable: by text hash)."""
    return int(text_hash(text)[:8], 16) < share * 0x1_0000_0000


def split_feedback(
    feedback: list[tuple[str, str]], share: float
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training feedback, held-out feedback): a text never moves between the two."""
    train: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for row in feedback:
        (held if is_held_out(row[0], share) else train).append(row)
    return train, held


def train_on_inner_split(
    data: pd.DataFrame,
    encoder: SentenceEncoder,
    cache: FeatureCache | None,
    *,
    seed: int = 0,
    progress: bool = False,
    profile: RunProfile | None = None,
    **options: Any,
) -> TrainResult:
    """Train a head on `data`, early-stopping on a stratified inner split of it (options go to
    train_head): the recipe of retrain candidates, the shipped head and the benchmarks."""
    profile = profile or RunProfile()
    fit, inner_val = split_train_val(data, INNER_VAL_FRACTION, seed)
    with profile.phase("features"):
        X_fit = features_for(fit["text"].tolist(), encoder, cache, progress=progress)
        X_inner = features_for(inner_val["text"].tolist(), encoder, cache, progress=progress)
    with profile.phase("train"):
        result = train_head(X_fit, fit["label"], X_inner, inner_val["label"], seed=seed, **options)
    profile.epochs = len(result.history)
    return result


@dataclass
class CandidateReport:
    """A trained candidate and both heads' metrics on the fixed set and on held-out feedback."""

    head: SentimentHead
    before: dict[str, Any]
    after: dict[str, Any]
    data: pd.DataFrame


def train_candidate(
    encoder: SentenceEncoder,
    cache: FeatureCache | None,
    active: SentimentHead | None,
    feedback: list[tuple[str, str]],
    *,
    holdout_share: float = 0.0,
    seed: int = 0,
    torch_threads: int | None = None,
    progress: bool = False,
    profile: RunProfile | None = None,
) -> CandidateReport:
    """Train on seed-train + the training share of feedback; score both heads on the fixed set
    and on the held-out feedback share.

    The candidate starts from the active head's weights (the shipped head learnt from public
    sets that are not here at run time); with no active head it starts from scratch and
    `before` is empty. Early stopping uses an inner split of the training rows. `profile`, if
    given, receives the seconds of the features, train and evaluate phases.
    """
    profile = profile or RunProfile()
    seed_train, evaluation = seed_split()
    train_feedback, held_feedback = split_feedback(feedback, holdout_share)
    held = pd.DataFrame(held_feedback, columns=["text", "label"])
    excluded = set(evaluation["text"]) | set(held["text"])
    data = merge_training_data(seed_train, train_feedback)
    data = data[~data["text"].isin(excluded)]
    result = train_on_inner_split(
        data,
        encoder,
        cache,
        seed=seed,
        progress=progress,
        torch_threads=torch_threads,
        init=active,
        profile=profile,
    )
    with profile.phase("features"):
        X_eval = features_for(evaluation["text"].tolist(), encoder, cache, progress=progress)
        X_held = features_for(held["text"].tolist(), encoder, cache, progress=progress)

    def scores(head: SentimentHead) -> dict[str, Any]:
        on_feedback = evaluate(head, X_held, held["label"]).summary() if len(held) else {"n": 0}
        return {
            "fixed": evaluate(head, X_eval, evaluation["label"]).summary(),
            "feedback": on_feedback,
        }

    with profile.phase("evaluate"):
        before = {} if active is None else scores(active)
        after = scores(result.head)
    return CandidateReport(head=result.head, before=before, after=after, data=data)


def fixed_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The fixed-set part of a metrics record (older records hold only that, unnested)."""
    if not metrics:
        return {}
    return metrics.get("fixed", metrics)


def should_promote(
    before: dict[str, Any], after: dict[str, Any], *, tolerance: float, min_feedback_eval: int
) -> tuple[bool, str]:
    """Promote? Better on held-out feedback (when there is enough of it) and no worse than
    `tolerance` on the fixed set; with too little held-out feedback the fixed set decides."""
    fixed_before = fixed_metrics(before)["macro_f1"]
    fixed_after = fixed_metrics(after)["macro_f1"]
    fixed_ok = fixed_after >= fixed_before - tolerance
    fixed_note = f"fixed set {fixed_before:.3f} -> {fixed_after:.3f} (tolerance {tolerance:g})"
    held_before, held_after = before.get("feedback", {}), after.get("feedback", {})
    n_held = int(held_after.get("n", 0))
    if n_held < min_feedback_eval:
        reason = f"{fixed_note}; {n_held} held-out feedback rows (< {min_feedback_eval}, not used)"
        return fixed_ok, reason
    better = held_after["macro_f1"] > held_before["macro_f1"] or (
        held_after["macro_f1"] == held_before["macro_f1"] and fixed_after > fixed_before
    )
    reason = (
        f"held-out feedback {held_before['macro_f1']:.3f} -> {held_after['macro_f1']:.3f} "
        f"(n={n_held}); {fixed_note}"
    )
    return fixed_ok and better, reason


class RetrainJob:
    """Runs one retraining at a time (the database enforces it across processes)."""

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
        self._tasks: set[asyncio.Task[RetrainRun]] = set()

    async def start(
        self, trigger: str, requested_by: str | None, on_done: OnDone | None = None
    ) -> int:
        """Record a run and start it in the background; raises RunInProgress if one runs."""
        run_id = await self.store.start_run(trigger, requested_by)
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
            head = await asyncio.to_thread(self._load, Path(version.path), version.sha256)
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
            except Exception:  # a missed renewal is retried; the lease has slack for three
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
        if trigger == "cron" and n_new < self.settings.retrain_min_feedback:
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
            cached = len(self.cache)
        report = await asyncio.to_thread(
            train_candidate,
            self.encoder,
            self.cache,
            active,
            feedback,
            holdout_share=self.settings.retrain_feedback_holdout,
            profile=profile,
        )
        profile.encoded_texts = len(self.cache) - cached  # features_for caches what it encodes
        promote, reason = should_promote(
            report.before,
            report.after,
            tolerance=self.settings.retrain_tolerance,
            min_feedback_eval=self.settings.retrain_min_feedback_eval,
        )
        log.info("retrain run %d: %s: %s", run_id, "promote" if promote else "reject", reason)
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
            version_id = await self.store.add_model_version(
                encoder=self.encoder.feature_key,
                dim=self.encoder.dim,
                path=str(path),
                metrics=report.after,
                status=VersionStatus.CANDIDATE,
                source=f"retrain #{run_id} ({trigger})",
                sha256=await asyncio.to_thread(file_sha256, path),
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

    def _remember_recent(self, texts: list[str]) -> None:
        """Put features the service still remembers into the cache, so they are not re-encoded."""
        cached = self.cache.get_many(text_hash(text) for text in texts)
        fresh: dict[str, np.ndarray] = {}
        for text in texts:
            vector = None if text_hash(text) in cached else self.service.recent_features(text)
            if vector is not None:
                fresh[text_hash(text)] = vector
        if fresh:
            self.cache.put_many(fresh)


def evaluation_metrics(
    encoder: SentenceEncoder, cache: FeatureCache | None, head: SentimentHead
) -> dict[str, Any]:
    """A head's metrics on the fixed evaluation set (the seed corpus's held-out quarter)."""
    _, evaluation = seed_split()
    X_eval = features_for(evaluation["text"].tolist(), encoder, cache, progress=False)
    return evaluate(head, X_eval, evaluation["label"]).summary()


async def ensure_active_head(
    store: Store, encoder: SentenceEncoder, cache: FeatureCache, settings: Settings
) -> tuple[SentimentHead, int]:
    """The head to serve: the active version; if its file cannot be loaded, the newest earlier
    version that loads (the bad one is marked); else the shipped head; else one trained now."""
    key = encoder.feature_key
    checks = dict(
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        pooling=encoder.pooling,
        device=encoder.device,
    )
    active = await store.active_version(key)
    if active is not None:
        fallbacks = [
            v
            for v in await store.list_versions(key)
            if v.status == VersionStatus.RETIRED
            and v.problem is None
            and v.activated_at is not None
        ]
        fallbacks.sort(key=lambda v: v.activated_at or 0.0, reverse=True)
        for version in [active, *fallbacks]:
            try:
                head = await asyncio.to_thread(
                    load_head_for, Path(version.path), encoder, sha256=version.sha256
                )
            except (HeadLoadError, HeadMismatchError) as error:
                log.error("head #%d cannot be served: %s", version.id, error)
                await store.mark_unloadable(version.id, str(error))
                continue
            if version.id != active.id:
                await store.activate_version(version.id)
                log.warning("serving head #%d instead of the damaged #%d", version.id, active.id)
            return head, version.id
        log.error("no stored head for %s can be loaded; installing a new one", key)
    shipped = default_head_path(encoder.encoder_id, encoder.pooling)
    if shipped is not None:
        head, meta = await asyncio.to_thread(load_head, shipped, **checks)
        source = f"shipped {shipped.name}"
        log.info("installing the shipped sentiment head %s", shipped.name)
    else:
        log.info("no sentiment head for %s yet: training one on the seed corpus", key)
        report = await asyncio.to_thread(train_candidate, encoder, cache, None, [], progress=True)
        head, source = report.head, "trained at start-up on the seed corpus"
        meta = make_meta(encoder, report.after, report.data, source=source)
    metrics = meta.metrics
    if "macro_f1" not in metrics and "fixed" not in metrics:
        metrics = await asyncio.to_thread(evaluation_metrics, encoder, cache, head)
        meta.metrics = metrics
    path = head_versions_dir(settings) / f"{head_file_name(key)[:-3]}-{int(time.time())}.pt"
    await asyncio.to_thread(save_head, head, path, meta)
    version = await store.add_model_version(
        encoder=key,
        dim=encoder.dim,
        path=str(path),
        metrics=metrics,
        status=VersionStatus.ACTIVE,
        source=source,
        sha256=await asyncio.to_thread(file_sha256, path),
    )
    log.info(
        "sentiment head #%d active (macro-F1 %.3f on the fixed evaluation set)",
        version,
        fixed_metrics(metrics)["macro_f1"],
    )
    return head.to(encoder.device).eval(), version
