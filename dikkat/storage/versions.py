"""Head versions in the Store: register, activate, retire, list."""

from __future__ import annotations

import json
import time
from typing import Any

from dikkat.storage.connection import StoreBase
from dikkat.storage.records import ModelVersion, Superseded, VersionStatus, version_from_row


class VersionsMixin(StoreBase):
    """The model_versions table."""

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
        return version_from_row(row) if row else None

    async def active_version(self, encoder: str) -> ModelVersion | None:
        """The head that serves this encoder now."""
        row = await self._one(
            "SELECT * FROM model_versions WHERE encoder = ? AND status = 'active'", (encoder,)
        )
        return version_from_row(row) if row else None

    async def list_versions(self, encoder: str | None = None) -> list[ModelVersion]:
        """Versions, newest first."""
        if encoder is None:
            rows = await self._all("SELECT * FROM model_versions ORDER BY id DESC")
        else:
            rows = await self._all(
                "SELECT * FROM model_versions WHERE encoder = ? ORDER BY id DESC", (encoder,)
            )
        return [version_from_row(row) for row in rows]
