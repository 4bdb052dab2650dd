"""The Store: typed async access to the SQLite database (aiosqlite, WAL, migrations at open)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np

from dikkat.hashing import text_hash
from dikkat.storage.connection import StoreBase
from dikkat.storage.coordination import TELEGRAM_CLAIM_S, CoordinationMixin
from dikkat.storage.records import (
    LABELS,
    DatabaseOpenError,
    FeedbackOutcome,
    ForgetResult,
    ModelVersion,
    RetrainRun,
    RunInProgress,
    RunStatus,
    SlotTaken,
    Superseded,
    VersionStatus,
)
from dikkat.storage.runs import LEASE_S, OWNER, RunsMixin
from dikkat.storage.versions import VersionsMixin

__all__ = [
    "LABELS",
    "LEASE_S",
    "OWNER",
    "TELEGRAM_CLAIM_S",
    "DatabaseOpenError",
    "FeedbackOutcome",
    "ForgetResult",
    "ModelVersion",
    "RetrainRun",
    "RunInProgress",
    "RunStatus",
    "SlotTaken",
    "Store",
    "Superseded",
    "VersionStatus",
]


class Store(CoordinationMixin, VersionsMixin, RunsMixin, StoreBase):
    """All reads and writes of Dikkat's state; every write is one transaction."""

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
        *,
        chat_id: str | None = None,
    ) -> FeedbackOutcome:
        """Record or change one user's vote on a prediction, and in the same transaction the
        voted text's features (encoder key, vector) when given: one write per vote. With
        `chat_id`, a prediction made in another chat or on another platform is "missing"."""
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}")
        now = time.time()
        async with self._transaction() as db:
            async with db.execute(
                "SELECT platform, chat_id FROM predictions WHERE id = ?", (prediction_id,)
            ) as c:
                found = await c.fetchone()
            if found is None or (
                chat_id is not None and (found["platform"], found["chat_id"]) != (platform, chat_id)
            ):
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
