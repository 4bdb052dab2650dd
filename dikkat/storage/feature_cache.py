"""The Store's features seen from a thread: what training code and offline tools call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dikkat.storage.store import Store

T = TypeVar("T")


@dataclass
class FeatureCache:
    """Blocking get/put of one encoder key's vectors in a Store that runs on an event loop in
    another thread (the App's loop, or a private one for offline tools)."""

    store: Store
    feature_key: str
    loop: asyncio.AbstractEventLoop
    owned_thread: threading.Thread | None = None  # the private loop's, if this cache opened it

    @classmethod
    def of(cls, store: Store, feature_key: str) -> FeatureCache:
        """A view of a Store running on the current event loop, for its worker threads."""
        return cls(store, feature_key, asyncio.get_running_loop())

    @classmethod
    def open(cls, database: Path | str, feature_key: str) -> FeatureCache:
        """A Store of its own (a SQLite file or a database URL), on a private event loop thread."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="feature-cache", daemon=True)
        thread.start()
        try:
            store = asyncio.run_coroutine_threadsafe(Store.open(database), loop).result()
        except BaseException:
            _stop(loop, thread)
            raise
        return cls(store, feature_key, loop, thread)

    def close(self) -> None:
        """Close a Store this cache opened itself (a view leaves its Store alone)."""
        if self.owned_thread is None:
            return
        try:
            self._call(self.store.close())
        finally:
            _stop(self.loop, self.owned_thread)
            self.owned_thread = None

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors for the given text hashes (missing ones are simply absent)."""
        return self._call(self.store.get_features(self.feature_key, list(hashes)))

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        """Store vectors in one transaction (existing entries are replaced)."""
        self._call(self.store.put_features(self.feature_key, vectors))

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            work.close()
            raise RuntimeError("FeatureCache blocks: call it from a worker thread, not the loop")
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
