"""Admin commands: /retrain, /models, /rollback, /stats (the Router checks the rights)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dikkat.bot.i18n import LABEL_NAMES, STATUS_NAMES, t
from dikkat.bot.types import Reply, Request, parse_id
from dikkat.inference.backend import InferenceBackend
from dikkat.storage.records import (
    LABELS,
    ModelVersion,
    RetrainRun,
    RunInProgress,
    RunStatus,
    VersionStatus,
)
from dikkat.storage.store import Store

log = logging.getLogger(__name__)


class Retrainer(Protocol):
    """What the admin commands need from the retraining job (implemented in training)."""

    queued: bool  # True: `start` leaves a request for another process, it does not run one

    async def start(
        self,
        trigger: str,
        requested_by: str | None,
        on_done: Callable[[RetrainRun], Awaitable[None]] | None = None,
    ) -> int: ...

    async def rollback(self, version_id: int) -> ModelVersion:
        """Activate an older version; when its file cannot be loaded, record that as the
        version's `problem` in the store, then raise."""
        ...


Notify = Callable[[str, str, Reply], Awaitable[None]]


def _status(status: str, lang: str) -> str:
    """A version or run status for people; an unknown one as it is stored."""
    return STATUS_NAMES.text(status, lang) if status in STATUS_NAMES else status


def _f1(metrics: dict[str, Any] | None) -> str:
    return "–" if not metrics or "macro_f1" not in metrics else f"{metrics['macro_f1']:.3f}"


def scores_text(metrics: dict[str, Any] | None, lang: str) -> str:
    """Macro-F1 on the fixed set, and on held-out feedback when that was measured."""
    if not metrics:
        return "–"
    fixed = metrics.get("fixed", metrics)  # records before feedback evaluation are flat
    parts = [t("scores_fixed", lang, f1=_f1(fixed))]
    feedback = metrics.get("feedback") or {}
    if feedback.get("n"):
        parts.append(t("scores_feedback", lang, f1=_f1(feedback), n=feedback["n"]))
    promotion = metrics.get("promotion") or {}
    if promotion.get("p_better") is not None:
        parts.append(
            t(
                "scores_p_better",
                lang,
                p=f"{promotion['p_better']:.2f}",
                needed=f"{promotion['confidence']:.2f}",
            )
        )
    if promotion.get("fixed_floor") is not None:
        parts.append(t("scores_floor", lang, floor=f"{promotion['fixed_floor']:.3f}"))
    return ", ".join(parts)


def outcome_text(outcome: RetrainRun, lang: str) -> str:
    """A retraining result for people: status and macro-F1 before and after."""
    if outcome.status == RunStatus.FAILED:
        return t("retrain_failed", lang, run_id=outcome.id, error=outcome.error or "?")
    return t(
        "retrain_result",
        lang,
        run_id=outcome.id,
        status=STATUS_NAMES.text(outcome.status, lang),
        n_feedback=outcome.n_feedback,
        before=scores_text(outcome.metrics_before, lang),
        after=scores_text(outcome.metrics_after, lang),
    )


class AdminCommands:
    """The replies of the admin commands; every action is written to the audit table."""

    def __init__(
        self,
        store: Store,
        service: InferenceBackend,
        retrainer: Retrainer | None,
        notify: Notify,
    ) -> None:
        self.store = store
        self.service = service
        self.retrainer = retrainer
        self.notify = notify

    async def retrain(self, request: Request, lang: str) -> Reply:
        """Starts a retraining run now and posts its result when it ends."""
        if self.retrainer is None:
            return Reply(t("retrain_unavailable", lang), private=True)

        async def post_result(outcome: RetrainRun) -> None:
            reply = Reply(outcome_text(outcome, lang), private=True)
            await self.notify(request.platform, request.chat_id, reply)

        who = f"{request.platform}:{request.user_id}"
        try:
            run_id = await self.retrainer.start("admin", who, post_result)
        except RunInProgress:
            return Reply(t("retrain_busy", lang), private=True)
        if self.retrainer.queued:  # a frontend: the trainer will run it
            await self.store.audit(
                request.platform, request.user_id, "retrain", f"request {run_id}"
            )
            return Reply(t("retrain_requested", lang, request_id=run_id), private=True)
        await self.store.audit(request.platform, request.user_id, "retrain", f"run {run_id}")
        return Reply(t("retrain_started", lang, run_id=run_id), private=True)

    async def models(self, request: Request, lang: str) -> Reply:
        """Lists the head versions of the running encoder with their metrics and status."""
        encoder = self.service.feature_key
        versions = await self.store.list_versions(encoder)
        await self.store.audit(request.platform, request.user_id, "models")
        if not versions:
            return Reply(t("models_empty", lang), private=True)
        lines = [t("models_header", lang, encoder=encoder)]
        for v in versions[:20]:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(v.created_at))
            marker = "✅" if v.status == VersionStatus.ACTIVE else "⚠️" if v.problem else "·"
            lines.append(
                f"{marker} #{v.id} {_status(v.status, lang)} — "
                f"macro-F1 {scores_text(v.metrics, lang)} — {v.source} — {when} UTC"
            )
        return Reply("\n".join(lines), private=True)

    async def rollback(self, request: Request, lang: str) -> Reply:
        """Activates an older head version (hot swap, no restart)."""
        arg = request.args.strip().lstrip("#")
        version_id = parse_id(arg)
        if version_id is None:
            return Reply(t("rollback_usage", lang), private=True)
        existing = await self.store.get_version(version_id)
        if (
            self.retrainer is None
            or existing is None
            or existing.encoder != self.service.feature_key
        ):
            return Reply(t("rollback_unknown", lang, version=version_id), private=True)
        try:
            await self.retrainer.rollback(version_id)
        except Exception:
            if not await self._unloadable(version_id):
                raise
            log.warning("rollback to #%d refused: its head file is damaged", version_id)
            return Reply(t("rollback_damaged", lang, version=version_id), private=True)
        await self.store.audit(
            request.platform, request.user_id, "rollback", f"version {version_id}"
        )
        return Reply(t("rollback_done", lang, version=version_id), private=True)

    async def _unloadable(self, version_id: int) -> bool:
        """Whether the retrainer recorded that this version's file cannot be loaded."""
        version = await self.store.get_version(version_id)
        return version is not None and version.problem is not None

    async def stats(self, request: Request, lang: str) -> Reply:
        """Predictions, feedback per label and the last retraining run."""
        stats = await self.store.stats()
        await self.store.audit(request.platform, request.user_id, "stats")
        feedback = ", ".join(
            f"{LABEL_NAMES.text(label, lang)} {stats['feedback'][label]}" for label in LABELS
        )
        run = stats["last_run"]
        last = t("none", lang)
        if run is not None:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(run.started_at))
            last = f"#{run.id} {_status(run.status, lang)} ({when} UTC)"
        return Reply(
            t("stats", lang, predictions=stats["predictions"], feedback=feedback, last_run=last),
            private=True,
        )
