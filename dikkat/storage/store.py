"""The Store: typed async access to the SQLite database (aiosqlite, WAL, migrations at open)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import numpy as np

from dikkat.hashing import text_hash
from dikkat.storage.schema import (
    BUSY_TIMEOUT_MS,
    PRAGMAS,
    migration_script,
    pending_migrations,
)

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


class RunInProgress(Exception):
    """Another retraining run is still running."""


class Superseded(Exception):
    """The active head changed while a candidate was being judged against it."""


LEASE_S = 60.0
OWNER = f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str | None) -> bool:
    """True when `owner` is a process on this host that no longer exists."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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


def _loads(raw: str | None) -> dict[str, Any] | None:
    return None if raw is None else json.loads(raw)


class Store:
    """All reads and writes of Dikkat's state; every write is one transaction."""

    def __init__(
        self, conn: aiosqlite.Connection, path: Path, reader: aiosqlite.Connection | None = None
    ) -> None:
        self._conn = conn
        self._reader = reader or conn
        self.path = path
        self._write_lock = asyncio.Lock()
        self._languages: dict[tuple[str, str], str | None] = {}

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database and bring its schema up to date.

        Raises DatabaseOpenError naming the file; the connection's thread is closed first.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except (OSError, sqlite3.Error) as error:
            raise DatabaseOpenError(_open_hint(path, error)) from error
        try:
            conn.row_factory = aiosqlite.Row
            for pragma in PRAGMAS:
                await conn.execute(pragma)
            async with conn.execute("PRAGMA user_version") as cursor:
                (version,) = await cursor.fetchone()
            for target, script in pending_migrations(version):
                await conn.executescript(migration_script(target, script))
            # Reads get their own connection: in WAL mode they never wait behind a write
            # that is itself waiting for another process's lock.
            reader = await aiosqlite.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except BaseException as error:
            await conn.close()
            if isinstance(error, sqlite3.Error | OSError):
                raise DatabaseOpenError(_open_hint(path, error)) from error
            raise
        try:
            reader.row_factory = aiosqlite.Row
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await reader.close()
            await conn.close()
            raise
        return cls(conn, path, reader)

    async def close(self) -> None:
        """Close the connections (pending writes are already committed)."""
        if self._reader is not self._conn:
            await self._reader.close()
        await self._conn.close()

    async def schema_version(self) -> int:
        """The database's `PRAGMA user_version`."""
        return int((await self._one("PRAGMA user_version"))[0])

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        return (await self._one("SELECT 1"))[0] == 1

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._reader.execute(sql, tuple(params)) as cursor:
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._reader.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    # users

    async def get_language(self, platform: str, user_id: str) -> str | None:
        """The language a user chose with /lang, if any (remembered after the first read)."""
        key = (platform, user_id)
        if key not in self._languages:
            row = await self._one(
                "SELECT lang FROM users WHERE platform = ? AND user_id = ?", (platform, user_id)
            )
            if len(self._languages) >= 100_000:
                self._languages.clear()
            self._languages[key] = row["lang"] if row else None
        return self._languages[key]

    async def set_language(self, platform: str, user_id: str, lang: str) -> None:
        """Remember a user's language."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO users (platform, user_id, lang, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (platform, user_id) DO UPDATE SET lang = excluded.lang",
                (platform, user_id, lang, time.time()),
            )
        self._languages[(platform, user_id)] = lang

    # predictions and feedback

    async def log_prediction(
        self,
        *,
        platform: str,
        user_id: str,
        chat_id: str,
        text: str,
        label: str,
        probabilities: dict[str, float],
        head_version: int | None,
    ) -> int:
        """Record one sentiment answer; returns its id for the feedback buttons."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO predictions (platform, user_id, chat_id, text, text_hash, label, "
                "probabilities, head_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    platform,
                    user_id,
                    chat_id,
                    text,
                    text_hash(text),
                    label,
                    json.dumps(probabilities),
                    head_version,
                    time.time(),
                ),
            )
            return int(cursor.lastrowid)

    async def add_feedback(
        self,
        prediction_id: int,
        platform: str,
        user_id: str,
        label: str,
        features: tuple[str, np.ndarray] | None = None,
    ) -> FeedbackOutcome:
        """Record or change one user's vote on a prediction, and in the same transaction the
        voted text's features (encoder key, vector) when given: one write per vote."""
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}")
        now = time.time()
        async with self._transaction() as db:
            async with db.execute("SELECT 1 FROM predictions WHERE id = ?", (prediction_id,)) as c:
                if await c.fetchone() is None:
                    return "missing"
            async with db.execute(
                "SELECT label FROM feedback WHERE prediction_id = ? AND platform = ? "
                "AND user_id = ?",
                (prediction_id, platform, user_id),
            ) as c:
                existing = await c.fetchone()
            if existing is not None and existing["label"] == label:
                return "unchanged"
            await db.execute(
                "INSERT INTO feedback (prediction_id, platform, user_id, label, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (prediction_id, platform, "
                "user_id) DO UPDATE SET label = excluded.label, updated_at = excluded.updated_at",
                (prediction_id, platform, user_id, label, now, now),
            )
            if features is not None:
                encoder, vector = features
                await db.execute(
                    "INSERT OR REPLACE INTO features (text_hash, encoder, dim, vector, created_at) "
                    "SELECT text_hash, ?, ?, ?, ? FROM predictions WHERE id = ?",
                    (
                        encoder,
                        int(vector.shape[-1]),
                        np.asarray(vector, np.float32).tobytes(),
                        now,
                        prediction_id,
                    ),
                )
            return "created" if existing is None else "changed"

    async def feedback_votes(self) -> list[tuple[str, str, str, str]]:
        """Every vote as (text, label, platform, user id), newest first."""
        rows = await self._all(
            "SELECT p.text, f.label, f.platform, f.user_id FROM feedback f "
            "JOIN predictions p ON p.id = f.prediction_id ORDER BY f.updated_at DESC, f.id DESC"
        )
        return [(r["text"], r["label"], r["platform"], r["user_id"]) for r in rows]

    async def prediction_text(self, prediction_id: int) -> str | None:
        """The text a prediction was made for."""
        row = await self._one("SELECT text FROM predictions WHERE id = ?", (prediction_id,))
        return row["text"] if row else None

    async def feedback_count(self, since: float = 0.0) -> int:
        """Votes cast or changed after `since` (a UNIX time)."""
        row = await self._one("SELECT COUNT(*) FROM feedback WHERE updated_at > ?", (since,))
        return int(row[0])

    async def feedback_rows(self) -> list[dict[str, Any]]:
        """Every vote with its text and the bot's answer, for export."""
        rows = await self._all(
            "SELECT f.prediction_id, p.text, p.label AS predicted, f.label, f.platform, "
            "f.user_id, f.created_at, f.updated_at, p.head_version FROM feedback f "
            "JOIN predictions p ON p.id = f.prediction_id ORDER BY f.id"
        )
        return [dict(row) for row in rows]

    async def forget_user(self, platform: str, user_id: str) -> ForgetResult:
        """Delete a user's predictions, votes and language, and features only they needed."""
        async with self._transaction() as db:
            async with db.execute(
                "SELECT DISTINCT text_hash FROM predictions WHERE platform = ? AND user_id = ?",
                (platform, user_id),
            ) as c:
                hashes = [row[0] for row in await c.fetchall()]
            feedback = await db.execute(
                "DELETE FROM feedback WHERE (platform = ? AND user_id = ?) OR prediction_id IN "
                "(SELECT id FROM predictions WHERE platform = ? AND user_id = ?)",
                (platform, user_id, platform, user_id),
            )
            predictions = await db.execute(
                "DELETE FROM predictions WHERE platform = ? AND user_id = ?", (platform, user_id)
            )
            await db.execute(
                "DELETE FROM users WHERE platform = ? AND user_id = ?", (platform, user_id)
            )
            self._languages.pop((platform, user_id), None)
            features = 0
            for key in hashes:
                cursor = await db.execute(
                    "DELETE FROM features WHERE text_hash = ? AND NOT EXISTS (SELECT 1 FROM "
                    "predictions p JOIN feedback f ON f.prediction_id = p.id "
                    "WHERE p.text_hash = ?)",
                    (key, key),
                )
                features += cursor.rowcount
            return ForgetResult(predictions.rowcount, feedback.rowcount, features)

    async def stats(self) -> dict[str, Any]:
        """Counts for /stats: predictions, votes per label, last retrain run."""
        (predictions,) = await self._one("SELECT COUNT(*) FROM predictions")
        votes = {label: 0 for label in LABELS}
        for row in await self._all("SELECT label, COUNT(*) AS n FROM feedback GROUP BY label"):
            votes[row["label"]] = row["n"]
        return {"predictions": predictions, "feedback": votes, "last_run": await self.last_run()}

    # model versions

    async def add_model_version(
        self,
        *,
        encoder: str,
        dim: int,
        path: str,
        metrics: dict[str, Any],
        status: str,
        source: str,
        sha256: str | None = None,
    ) -> int:
        """Register a head (with its file's SHA-256); 'active' retires the current active head."""
        now = time.time()
        async with self._transaction() as db:
            if status == VersionStatus.ACTIVE:
                await db.execute(
                    "UPDATE model_versions SET status = 'retired' "
                    "WHERE encoder = ? AND status = 'active'",
                    (encoder,),
                )
            cursor = await db.execute(
                "INSERT INTO model_versions (encoder, dim, path, metrics, status, source, "
                "created_at, activated_at, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    encoder,
                    dim,
                    path,
                    json.dumps(metrics),
                    status,
                    source,
                    now,
                    now if status == VersionStatus.ACTIVE else None,
                    sha256,
                ),
            )
            return int(cursor.lastrowid)

    async def activate_version(
        self, version_id: int, *, expected_active: int | None = None
    ) -> ModelVersion:
        """Make a version the active head of its encoder (the old one is retired).

        With `expected_active`, raise Superseded unless that version is still the active one
        (checked in the same transaction).
        """
        async with self._transaction() as db:
            async with db.execute(
                "SELECT encoder FROM model_versions WHERE id = ?", (version_id,)
            ) as c:
                row = await c.fetchone()
            if row is None:
                raise KeyError(version_id)
            if expected_active is not None:
                async with db.execute(
                    "SELECT id FROM model_versions WHERE encoder = ? AND status = 'active'",
                    (row["encoder"],),
                ) as c:
                    current = await c.fetchone()
                if current is None or current["id"] != expected_active:
                    raise Superseded(
                        f"the active head is #{current['id'] if current else '-'}, "
                        f"not #{expected_active}"
                    )
            await db.execute(
                "UPDATE model_versions SET status = 'retired' "
                "WHERE encoder = ? AND status = 'active'",
                (row["encoder"],),
            )
            await db.execute(
                "UPDATE model_versions SET status = 'active', activated_at = ? WHERE id = ?",
                (time.time(), version_id),
            )
        version = await self.get_version(version_id)
        assert version is not None
        return version

    async def set_version_status(self, version_id: int, status: str) -> None:
        """Mark a candidate rejected (or any non-active status)."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE model_versions SET status = ? WHERE id = ?", (status, version_id)
            )

    async def mark_unloadable(self, version_id: int, problem: str) -> None:
        """Record why a version's file cannot be served; an active one is retired."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE model_versions SET problem = ?, "
                "status = CASE status WHEN 'active' THEN 'retired' ELSE status END WHERE id = ?",
                (problem, version_id),
            )

    async def get_version(self, version_id: int) -> ModelVersion | None:
        """One version by id."""
        row = await self._one("SELECT * FROM model_versions WHERE id = ?", (version_id,))
        return _version(row) if row else None

    async def active_version(self, encoder: str) -> ModelVersion | None:
        """The head that serves this encoder now."""
        row = await self._one(
            "SELECT * FROM model_versions WHERE encoder = ? AND status = 'active'", (encoder,)
        )
        return _version(row) if row else None

    async def list_versions(self, encoder: str | None = None) -> list[ModelVersion]:
        """Versions, newest first."""
        if encoder is None:
            rows = await self._all("SELECT * FROM model_versions ORDER BY id DESC")
        else:
            rows = await self._all(
                "SELECT * FROM model_versions WHERE encoder = ? ORDER BY id DESC", (encoder,)
            )
        return [_version(row) for row in rows]

    # retrain runs

    async def start_run(self, trigger: str, requested_by: str | None) -> int:
        """Record that a run started, owned by this process; returns its id.

        One run at a time across processes: a running run blocks a new one while its owner
        renews its lease; a run whose lease expired (or whose owner died on this host) is
        recorded as failed first.
        """
        now = time.time()
        async with self._transaction() as db:
            await self._reclaim_abandoned(db, now)
            async with db.execute("SELECT id FROM retrain_runs WHERE status = 'running'") as c:
                running = await c.fetchone()
            if running is not None:
                raise RunInProgress(f"run #{running[0]} is still running")
            cursor = await db.execute(
                "INSERT INTO retrain_runs (trigger, requested_by, status, started_at, owner, "
                "lease_until) VALUES (?, ?, 'running', ?, ?, ?)",
                (trigger, requested_by, now, OWNER, now + LEASE_S),
            )
            return int(cursor.lastrowid)

    async def renew_lease(self, run_id: int) -> None:
        """Keep this process's running run from being reclaimed for another LEASE_S seconds."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE retrain_runs SET lease_until = ? "
                "WHERE id = ? AND status = 'running' AND owner = ?",
                (time.time() + LEASE_S, run_id, OWNER),
            )

    @staticmethod
    async def _reclaim_abandoned(db: aiosqlite.Connection, now: float) -> int:
        async with db.execute(
            "SELECT id, owner, lease_until FROM retrain_runs WHERE status = 'running'"
        ) as cursor:
            rows = await cursor.fetchall()
        abandoned = [
            row["id"]
            for row in rows
            if row["lease_until"] is None or row["lease_until"] < now or _owner_gone(row["owner"])
        ]
        for run_id in abandoned:
            await db.execute(
                "UPDATE retrain_runs SET status = 'failed', finished_at = ?, "
                "error = 'interrupted (its process stopped during the run)' WHERE id = ?",
                (now, run_id),
            )
        return len(abandoned)

    async def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        n_feedback: int = 0,
        n_train: int = 0,
        metrics_before: dict[str, Any] | None = None,
        metrics_after: dict[str, Any] | None = None,
        candidate_version: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a run ended: promoted, rejected, skipped or failed."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE retrain_runs SET status = ?, finished_at = ?, n_feedback = ?, "
                "n_train = ?, metrics_before = ?, metrics_after = ?, candidate_version = ?, "
                "error = ? WHERE id = ?",
                (
                    status,
                    time.time(),
                    n_feedback,
                    n_train,
                    None if metrics_before is None else json.dumps(metrics_before),
                    None if metrics_after is None else json.dumps(metrics_after),
                    candidate_version,
                    error,
                    run_id,
                ),
            )

    async def get_run(self, run_id: int) -> RetrainRun | None:
        """One run by id."""
        row = await self._one("SELECT * FROM retrain_runs WHERE id = ?", (run_id,))
        return _run(row) if row else None

    async def last_run(self, *, finished: bool = False) -> RetrainRun | None:
        """The newest run (optionally only a finished, non-skipped one)."""
        where = "WHERE status NOT IN ('running', 'skipped')" if finished else ""
        row = await self._one(f"SELECT * FROM retrain_runs {where} ORDER BY id DESC LIMIT 1")
        return _run(row) if row else None

    async def fail_unfinished_runs(self) -> int:
        """Mark runs abandoned by a crash or kill as failed (called at start-up); a run that
        another live process is still renewing is left alone."""
        async with self._transaction() as db:
            return await self._reclaim_abandoned(db, time.time())

    # audit and maintenance

    async def audit(self, platform: str, user_id: str, action: str, detail: str = "") -> None:
        """Record an admin action."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO audit (platform, user_id, action, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (platform, user_id, action, detail, time.time()),
            )

    async def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest audit entries."""
        rows = await self._all("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    async def backup(self, destination: Path) -> None:
        """A consistent copy of the live database (SQLite online backup API)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        async with aiosqlite.connect(destination) as target:
            await self._conn.backup(target)


def _open_hint(path: Path, error: BaseException) -> str:
    """One line: which file, what went wrong, what to do."""
    text = str(error)
    if "readonly" in text or "read-only" in text or isinstance(error, PermissionError):
        advice = "make the file and its folder writable for this user, or set DIKKAT_DB_PATH"
    elif "not a database" in text or "malformed" in text:
        advice = "it is not a usable SQLite database: restore a backup or set DIKKAT_DB_PATH"
    else:
        advice = "check the path and permissions, or set DIKKAT_DB_PATH"
    return f"cannot open the database {path}: {text}; {advice}"


def _version(row: aiosqlite.Row) -> ModelVersion:
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


def _run(row: aiosqlite.Row) -> RetrainRun:
    return RetrainRun(
        id=row["id"],
        trigger=row["trigger"],
        requested_by=row["requested_by"],
        status=RunStatus(row["status"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        n_feedback=row["n_feedback"],
        n_train=row["n_train"],
        metrics_before=_loads(row["metrics_before"]),
        metrics_after=_loads(row["metrics_after"]),
        candidate_version=row["candidate_version"],
        error=row["error"],
    )
