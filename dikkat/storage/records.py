"""What the Store returns and raises: statuses, records read from rows, refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
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
    """The database cannot be opened or migrated (unreadable, read-only, unreachable)."""


class RunInProgress(Exception):
    """Another retraining run is still running."""


class SlotTaken(Exception):
    """A run of this cron slot was already started (by this or another trainer)."""


class Superseded(Exception):
    """The active head changed while a candidate was being judged against it."""


def _from_row(cls: Any, row: Any, **parse: Callable[[Any], Any]) -> Any:
    """A record from the row's columns of the same names, `parse[name]` applied to its value."""
    values = row._asdict()
    return cls(**{f.name: parse.get(f.name, lambda v: v)(values[f.name]) for f in fields(cls)})


def _json(raw: str | None) -> dict[str, Any] | None:
    return None if raw is None else json.loads(raw)


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
    sha256: str | None
    problem: str | None

    @classmethod
    def from_row(cls, row: Any) -> ModelVersion:
        """A model_versions row."""
        return _from_row(cls, row, metrics=json.loads, status=VersionStatus)


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
    slot: str | None  # the cron slot it ran for, None for other triggers

    @classmethod
    def from_row(cls, row: Any) -> RetrainRun:
        """A retrain_runs row."""
        return _from_row(cls, row, status=RunStatus, metrics_before=_json, metrics_after=_json)

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
