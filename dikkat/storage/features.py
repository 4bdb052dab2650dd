"""Encoder features in the Store: text hash + encoder key -> float32 vector."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import sqlalchemy as sa

from dikkat.storage.engine import StoreBase
from dikkat.storage.tables import features

_CHUNK = 500
_fc = features.c
# A text hash -> (encoder key, vector) when the caller still has the text's features.
FeatureLookup = Callable[[str], tuple[str, np.ndarray] | None]


def feature_row(text_hash: str, feature_key: str, vector: np.ndarray, now: float) -> dict:
    """One row of the features table."""
    return {
        "text_hash": text_hash,
        "encoder": feature_key,
        "dim": int(vector.shape[-1]),
        "vector": np.asarray(vector, np.float32).tobytes(),
        "created_at": now,
    }


class FeaturesMixin(StoreBase):
    """The features table: vectors written at vote time and by training, read by training."""

    async def get_features(self, feature_key: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors for the given text hashes (missing ones are simply absent)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), _CHUNK):
            rows = await self._rows(
                sa.select(_fc.text_hash, _fc.vector).where(
                    _fc.encoder == feature_key, _fc.text_hash.in_(wanted[start : start + _CHUNK])
                )
            )
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    async def put_features(self, feature_key: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Store vectors in one transaction (existing ones for the same text are replaced)."""
        if not vectors:
            return
        now = time.time()
        rows = [feature_row(key, feature_key, vector, now) for key, vector in vectors.items()]
        async with self._transaction() as db:
            await db.execute(self._feature_upsert(), rows)

    def _feature_upsert(self) -> Any:
        """INSERT of feature rows that replaces a text's earlier vector for the same encoder."""
        insert = self._insert(features)
        return insert.on_conflict_do_update(
            index_elements=["text_hash", "encoder"],
            set_={
                "dim": insert.excluded.dim,
                "vector": insert.excluded.vector,
                "created_at": insert.excluded.created_at,
            },
        )

    async def count_features(self, feature_key: str) -> int:
        """How many texts have vectors for this encoder key."""
        row = await self._first(
            sa.select(sa.func.count()).select_from(features).where(_fc.encoder == feature_key)
        )
        return 0 if row is None else int(row[0])
