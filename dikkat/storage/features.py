"""The encoder feature cache: text hash + encoder id -> float32 vector, in the SQLite database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dikkat.hashing import text_hash
from dikkat.storage.schema import connect_sync

_CHUNK = 500
__all__ = ["FeatureCache", "text_hash"]


class FeatureCache:
    """Synchronous, thread-safe cache used from training threads; one encoder id per instance."""

    def __init__(self, db_path: Path, feature_key: str) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.feature_key = feature_key
        self._conn = connect_sync(str(db_path))
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors for the given hashes (missing ones are simply absent)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT text_hash, vector FROM features WHERE encoder = ? "
                    f"AND text_hash IN ({marks})",
                    (self.feature_key, *chunk),
                )
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors in one transaction (existing entries are replaced)."""
        now = time.time()
        rows = [
            (key, self.feature_key, int(vec.shape[-1]), np.asarray(vec, np.float32).tobytes(), now)
            for key, vec in vectors.items()
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO features (text_hash, encoder, dim, vector, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM features WHERE encoder = ?", (self.feature_key,)
            ).fetchone()
        return int(count)
