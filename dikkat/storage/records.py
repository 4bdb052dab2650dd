"""What the Store returns and raises: statuses, records and their row mappers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

LABELS = ("negative", "neutral", "positive")
FeedbackOutcome = Literal["created", "changed", "unchanged", "missing"]


class RunStatus(StrEnum):
    """How a retrain run stands or ended."""

    RUNNING = "running"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"
    FAILED = "failed"


class VersionStatus(StrEnum):
    """Where a head version stands (at most one active per encoder)."""

    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"
    REJECTED = "rejected"


class DatabaseOpenError(RuntimeError):
    """The database file cannot be opened or migrated (unreadable, read-only, not SQLite)."""


def open_hint(shown: str, error: BaseException, *, setting: str, otherwise: str) -> str:
    """One line for a database that cannot be opened: which one, what went wrong, what to do
    (`otherwise` when the error is neither a read-only file nor a damaged one)."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    if "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
        advice = "make the file and its folder writable for this user"
    elif "not a database" in text or "malformed" in text:
        advice = "it is not a usable SQLite database: restore a backup"
    else:
        advice = otherwise
    return f"cannot open the database {shown}: {text}; {advice} or set {setting}"


class RunInProgress(Exception):
    """Another retraining run is still running."""


class SlotTaken(Exception):
    """A run of this cron slot was already started (by this or another trainer)."""


class Superseded(Exception):
    """The active head changed while a candidate was being judged against it."""


@dataclass(frozen=True)
class ModelVersion:
    """One saved sentiment head and how it did."""

    id: int
    encoder: str
    dim: int
    path: str
    metrics: dict[str, Any]
    status: VersionStatus
    source: str
    created_at: float
    activated_at: float | None
    sha256: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class RetrainRun:
    """One retraining attempt and its outcome."""

    id: int
    trigger: str
    requested_by: str | None
    status: RunStatus
    started_at: float
    finished_at: float | None
    n_feedback: int
    n_train: int
    metrics_before: dict[str, Any] | None
    metrics_after: dict[str, Any] | None
    candidate_version: int | None
    error: str | None
    slot: str | None = None  # the cron slot it ran for (schema 5), None for other triggers

    def as_json(self) -> dict[str, Any]:
        """The `dikkat retrain --json` shape."""
        return {
            "run_id": self.id,
            "status": self.status,
            "n_feedback": self.n_feedback,
            "n_train": self.n_train,
            "before": self.metrics_before,
            "after": self.metrics_after,
            "candidate_version": self.candidate_version,
            "error": self.error,
        }


@dataclass(frozen=True)
class ForgetResult:
    """How much was deleted for one user."""

    predictions: int
    feedback: int
    features: int


def loads_json(raw: str | None) -> dict[str, Any] | None:
    """A JSON column, None staying None."""
    return None if raw is None else json.loads(raw)


def version_from_row(row: Any) -> ModelVersion:
    """A model_versions row as a ModelVersion."""
    return ModelVersion(
        id=row["id"],
        encoder=row["encoder"],
        dim=row["dim"],
        path=row["path"],
        metrics=json.loads(row["metrics"]),
        status=VersionStatus(row["status"]),
        source=row["source"],
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        sha256=row["sha256"],
        problem=row["problem"],
    )


def run_from_row(row: Any) -> RetrainRun:
    """A retrain_runs row as a RetrainRun."""
    return RetrainRun(
        id=row["id"],
        trigger=row["trigger"],
        requested_by=row["requested_by"],
        status=RunStatus(row["status"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        n_feedback=row["n_feedback"],
        n_train=row["n_train"],
        metrics_before=loads_json(row["metrics_before"]),
        metrics_after=loads_json(row["metrics_after"]),
        candidate_version=row["candidate_version"],
        error=row["error"],
        slot=row["slot"] if "slot" in row.keys() else None,
    )
