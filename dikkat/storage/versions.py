"""Head versions in the Store: register, activate, retire, list, their weights (blobs), and the
PostgreSQL NOTIFY / LISTEN that tells other processes a head was activated."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dikkat.storage.engine import StoreBase
from dikkat.storage.migrate import asyncpg_dsn
from dikkat.storage.records import ModelVersion, Superseded, VersionStatus
from dikkat.storage.tables import head_blobs, model_versions

HEAD_CHANNEL = "dikkat_head"  # PostgreSQL NOTIFY channel: payload "<encoder> <version id>"
_mv = model_versions.c
log = logging.getLogger(__name__)


class VersionsMixin(StoreBase):
    """The model_versions and head_blobs tables."""

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
        blob: bytes | None = None,
    ) -> int:
        """Register a head (with its file's SHA-256); 'active' retires the current active head.
        With `blob` (the .pt bytes) the weights are stored in the same transaction."""
        now = time.time()
        digest = None if blob is None else hashlib.sha256(blob).hexdigest()
        active = status == VersionStatus.ACTIVE
        version = sa.insert(model_versions).values(
            encoder=encoder,
            dim=dim,
            path=path,
            metrics=json.dumps(metrics),
            status=VersionStatus.CANDIDATE if active else str(status),
            source=source,
            created_at=now,
            sha256=sha256 or digest,
        )
        async with self._transaction() as db:
            version_id = int((await db.execute(version.returning(_mv.id))).scalar_one())
            if blob is not None:
                await self._put_blob(db, version_id, blob, digest, now)
            if active:
                await self._activate(db, version_id, encoder, now, None)
            return version_id

    async def activate_version(
        self, version_id: int, *, expected_active: int | None = None
    ) -> ModelVersion:
        """Make a version the active head of its encoder (the old one is retired); with
        `expected_active`, Superseded unless that version is still the active one."""
        async with self._transaction() as db:
            encoder = await db.scalar(sa.select(_mv.encoder).where(_mv.id == version_id))
            if encoder is None:
                raise KeyError(version_id)
            await self._activate(db, version_id, encoder, time.time(), expected_active)
        return (await self._versions(_mv.id == version_id))[0]

    async def set_version_status(self, version_id: int, status: str) -> None:
        """Mark a candidate rejected (or any non-active status)."""
        await self._write(
            sa.update(model_versions).where(_mv.id == version_id).values(status=str(status))
        )

    async def mark_unloadable(self, version_id: int, problem: str) -> None:
        """Record why a version's file cannot be served; an active one is retired."""
        retire = sa.case((_mv.status == "active", "retired"), else_=_mv.status)
        version = sa.update(model_versions).where(_mv.id == version_id)
        await self._write(version.values(problem=problem, status=retire))

    async def get_version(self, version_id: int) -> ModelVersion | None:
        """One version by id."""
        found = await self._versions(_mv.id == version_id)
        return found[0] if found else None

    async def active_version(self, encoder: str) -> ModelVersion | None:
        """The head that serves this encoder now."""
        found = await self._versions(_mv.encoder == encoder, _mv.status == "active")
        return found[0] if found else None

    async def list_versions(self, encoder: str | None = None) -> list[ModelVersion]:
        """Versions (of `encoder`, or every one), newest first."""
        return await self._versions(*([] if encoder is None else [_mv.encoder == encoder]))

    async def _versions(self, *where: Any) -> list[ModelVersion]:
        query = sa.select(model_versions).where(*where).order_by(_mv.id.desc())
        return [ModelVersion.from_row(row) for row in await self._read(query)]

    async def put_head_blob(self, version_id: int, blob: bytes) -> str:
        """Store (or replace) a version's head weights; returns their SHA-256."""
        digest = hashlib.sha256(blob).hexdigest()
        async with self._transaction() as db:
            if await db.scalar(sa.select(_mv.id).where(_mv.id == version_id)) is None:
                raise KeyError(version_id)
            await self._put_blob(db, version_id, blob, digest, time.time())
        return digest

    async def get_head_blob(self, version_id: int) -> bytes | None:
        """A version's head weights, None when only a file path was registered."""
        rows = await self._read(
            sa.select(head_blobs.c.data).where(head_blobs.c.version_id == version_id)
        )
        return bytes(rows[0].data) if rows else None

    async def _activate(
        self, db: AsyncConnection, version_id: int, encoder: str, now: float, expected: int | None
    ) -> None:
        """`activate_version` in `db`. PostgreSQL: one head change per encoder at a time (SQLite
        writes are serial anyway), and listeners are told on commit."""
        if not self._sqlite:
            key = int.from_bytes(hashlib.sha256(encoder.encode()).digest()[:8], "big", signed=True)
            await db.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        active = sa.and_(_mv.encoder == encoder, _mv.status == "active")
        if expected is not None:
            current = await db.scalar(sa.select(_mv.id).where(active))
            if current != expected:
                raise Superseded(
                    f"the active head is #{current if current else '-'}, not #{expected}"
                )
        await db.execute(sa.update(model_versions).where(active).values(status="retired"))
        version = sa.update(model_versions).where(_mv.id == version_id)
        await db.execute(version.values(status="active", activated_at=now))
        if not self._sqlite:
            await db.execute(sa.select(sa.func.pg_notify(HEAD_CHANNEL, f"{encoder} {version_id}")))

    async def _put_blob(
        self, db: AsyncConnection, version_id: int, blob: bytes, digest: str, now: float
    ) -> None:
        """Store a head's bytes and their SHA-256, replacing any earlier copy."""
        upsert = self._upsert(head_blobs, ("version_id",), ("sha256", "data", "created_at"))
        await db.execute(
            upsert.values(version_id=version_id, sha256=digest, data=blob, created_at=now)
        )


class HeadNotifications:
    """A LISTEN connection of its own; `changed` is set whenever a head version is activated."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.changed = asyncio.Event()

    @classmethod
    async def listen(cls, url: str) -> HeadNotifications:
        """LISTEN on `url` (a postgresql+asyncpg:// URL; asyncpg comes with the `scale` extra)."""
        import asyncpg

        connection = await asyncpg.connect(asyncpg_dsn(url))
        notifications = cls(connection)
        await connection.add_listener(HEAD_CHANNEL, notifications._on_notify)
        return notifications

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        log.debug("head change notified: %s", payload)
        self.changed.set()

    async def close(self) -> None:
        """Stop listening."""
        try:
            await self._connection.remove_listener(HEAD_CHANNEL, self._on_notify)
        finally:
            await self._connection.close()
