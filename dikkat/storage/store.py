"""The Store: typed async access to the database over SQLAlchemy Core (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from dikkat.hashing import text_hash as hash_text
from dikkat.storage.coordination import CoordinationMixin
from dikkat.storage.records import LABELS, FeedbackOutcome, ForgetResult
from dikkat.storage.tables import audit, features, feedback, predictions, users
from dikkat.storage.versions import VersionsMixin

_p, _f, _fc = predictions.c, feedback.c, features.c
_VOTES = feedback.join(predictions, _p.id == _f.prediction_id)
_CHUNK = 500  # text hashes per features query
# A text hash -> (encoder key, vector) when the caller still has the text's features.
FeatureLookup = Callable[[str], tuple[str, np.ndarray] | None]


class Store(CoordinationMixin, VersionsMixin):
    """All reads and writes of Dikkat's state; every write is one transaction."""

    # users

    async def get_language(self, platform: str, user_id: str) -> str | None:
        """The language a user chose with /lang, if any (remembered after the first read)."""
        key = (platform, user_id)
        if key not in self._languages:
            rows = await self._read(sa.select(users.c.lang).where(_of(users, platform, user_id)))
            if len(self._languages) >= 100_000:
                self._languages.clear()
            self._languages[key] = rows[0].lang if rows else None
        return self._languages[key]

    async def set_language(self, platform: str, user_id: str, lang: str) -> None:
        """Remember a user's language."""
        upsert = self._upsert(users, ("platform", "user_id"), ("lang",))
        await self._write(
            upsert.values(platform=platform, user_id=user_id, lang=lang, created_at=time.time())
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
        text_hash: str | None = None,
    ) -> int:
        """Record one sentiment answer (its text's hash computed unless given); returns its id
        for the feedback buttons."""
        prediction = sa.insert(predictions).values(
            platform=platform,
            user_id=user_id,
            chat_id=chat_id,
            text=text,
            text_hash=text_hash or hash_text(text),
            label=label,
            probabilities=json.dumps(probabilities),
            head_version=head_version,
            created_at=time.time(),
        )
        return int((await self._write(prediction.returning(_p.id))).scalar_one())

    async def add_feedback(
        self,
        prediction_id: int,
        platform: str,
        user_id: str,
        label: str,
        features: FeatureLookup | None = None,
        *,
        chat_id: str | None = None,
    ) -> FeedbackOutcome:
        """Record or change a user's vote, with the text's features from `features(text_hash)`
        in the same transaction; "missing" for a prediction from another `chat_id` or platform."""
        if label not in LABELS:
            raise ValueError(f"unknown label {label!r}")
        now = time.time()
        async with self._transaction() as db:
            query = sa.select(_p.platform, _p.chat_id, _p.text_hash).where(_p.id == prediction_id)
            found = (await db.execute(query)).one_or_none()
            if found is None or (chat_id is not None and tuple(found[:2]) != (platform, chat_id)):
                return "missing"
            theirs = sa.and_(_f.prediction_id == prediction_id, _of(feedback, platform, user_id))
            existing = await db.scalar(sa.select(_f.label).where(theirs))
            if existing == label:
                return "unchanged"
            vote = self._upsert(
                feedback, ("prediction_id", "platform", "user_id"), ("label", "updated_at")
            )
            await db.execute(
                vote.values(
                    prediction_id=prediction_id,
                    platform=platform,
                    user_id=user_id,
                    label=label,
                    created_at=now,
                    updated_at=now,
                )
            )
            remembered = None if features is None else features(found.text_hash)
            if remembered is not None:
                row = _feature_row(found.text_hash, *remembered, now)
                await db.execute(self._features_upsert(), [row])
            return "created" if existing is None else "changed"

    async def feedback_votes(self) -> list[tuple[str, str, str, str]]:
        """Every vote as (text, label, platform, user id), newest first."""
        rows = await self._read(
            sa.select(_p.text, _f.label, _f.platform, _f.user_id)
            .select_from(_VOTES)
            .order_by(_f.updated_at.desc(), _f.id.desc())
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def feedback_count(self, since: float = 0.0) -> int:
        """Votes cast or changed after `since` (a UNIX time)."""
        return await self._count(feedback, _f.updated_at > since)

    async def feedback_rows(self) -> list[dict[str, Any]]:
        """Every vote with its text and the bot's answer, for export."""
        rows = await self._read(
            sa.select(
                _f.prediction_id,
                _p.text,
                _p.label.label("predicted"),
                _f.label,
                _f.platform,
                _f.user_id,
                _f.created_at,
                _f.updated_at,
                _p.head_version,
            )
            .select_from(_VOTES)
            .order_by(_f.id)
        )
        return [row._asdict() for row in rows]

    async def forget_user(self, platform: str, user_id: str) -> ForgetResult:
        """Delete a user's predictions, votes and language, and features only they needed."""
        theirs = _of(predictions, platform, user_id)
        async with self._transaction() as db:
            hashes = (await db.scalars(sa.select(_p.text_hash).where(theirs).distinct())).all()
            on_theirs = _f.prediction_id.in_(sa.select(_p.id).where(theirs))
            votes = sa.or_(_of(feedback, platform, user_id), on_theirs)
            voted = await db.execute(sa.delete(feedback).where(votes))
            predicted = await db.execute(sa.delete(predictions).where(theirs))
            await db.execute(sa.delete(users).where(_of(users, platform, user_id)))
            self._languages.pop((platform, user_id), None)
            removed = 0
            for key in hashes:
                still_voted = sa.exists().select_from(_VOTES).where(_p.text_hash == key)
                orphan = sa.delete(features).where(_fc.text_hash == key, ~still_voted)
                removed += (await db.execute(orphan)).rowcount
            return ForgetResult(predicted.rowcount, voted.rowcount, removed)

    async def stats(self) -> dict[str, Any]:
        """Counts for /stats: predictions, votes per label, last retrain run."""
        votes = dict.fromkeys(LABELS, 0)
        votes.update(await self._read(sa.select(_f.label, sa.func.count()).group_by(_f.label)))
        predicted = await self._count(predictions)
        return {"predictions": predicted, "feedback": votes, "last_run": await self.last_run()}

    # encoder features: text hash + encoder key -> float32 vector

    async def get_features(self, feature_key: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors for the given text hashes (missing ones are simply absent)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        query = sa.select(_fc.text_hash, _fc.vector).where(_fc.encoder == feature_key)
        for start in range(0, len(wanted), _CHUNK):
            rows = await self._read(query.where(_fc.text_hash.in_(wanted[start : start + _CHUNK])))
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    async def put_features(self, feature_key: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Store vectors in one transaction (existing ones for the same text are replaced)."""
        if vectors:
            now = time.time()
            rows = [_feature_row(key, feature_key, vector, now) for key, vector in vectors.items()]
            await self._write(self._features_upsert(), rows)

    async def count_features(self, feature_key: str) -> int:
        """How many texts have vectors for this encoder key."""
        return await self._count(features, _fc.encoder == feature_key)

    def _features_upsert(self) -> Any:
        return self._upsert(features, ("text_hash", "encoder"), ("dim", "vector", "created_at"))

    # audit and maintenance

    async def audit(self, platform: str, user_id: str, action: str, detail: str = "") -> None:
        """Record an admin action."""
        await self._write(
            sa.insert(audit).values(
                platform=platform,
                user_id=user_id,
                action=action,
                detail=detail,
                created_at=time.time(),
            )
        )

    async def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest audit entries."""
        rows = await self._read(sa.select(audit).order_by(audit.c.id.desc()).limit(limit))
        return [row._asdict() for row in rows]

    async def backup(self, destination: Path) -> None:
        """A consistent copy of a SQLite database (online backup API); PostgreSQL: pg_dump."""
        if self.path is None:
            raise NotImplementedError("back up PostgreSQL with pg_dump (see docs/storage.md)")
        destination.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_sqlite_backup, self.path, destination)


def _of(table: sa.Table, platform: str, user_id: str) -> sa.ColumnElement[bool]:
    """The rows of one user in a table with platform and user_id columns."""
    return sa.and_(table.c.platform == platform, table.c.user_id == user_id)


def _feature_row(text_hash: str, feature_key: str, vector: np.ndarray, now: float) -> dict:
    return {
        "text_hash": text_hash,
        "encoder": feature_key,
        "dim": int(vector.shape[-1]),
        "vector": np.asarray(vector, np.float32).tobytes(),
        "created_at": now,
    }


def _sqlite_backup(source: Path, destination: Path) -> None:
    """sqlite3's online backup from a connection of its own."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(destination)) as dst:
        src.backup(dst)
