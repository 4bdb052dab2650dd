"""A frontend's retraining: it trains nothing itself, it leaves a request in the shared database
for the one trainer, and rolls back by activating a version there (replicas follow it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dikkat.storage.records import ModelVersion, RetrainRun
from dikkat.storage.store import Store


class RetrainRequests:
    """The Retrainer of the frontend role: `start` queues a request, `rollback` activates."""

    queued = True  # /retrain answers "requested", not "started"

    def __init__(self, store: Store, encoder_key: str) -> None:
        self.store = store
        self.encoder_key = encoder_key

    async def start(
        self,
        trigger: str,
        requested_by: str | None,
        on_done: Callable[[RetrainRun], Awaitable[None]] | None = None,
    ) -> int:
        """Leave a retrain request for the trainer; returns the request's number."""
        return await self.store.request_retrain(requested_by or trigger)

    async def rollback(self, version_id: int) -> ModelVersion:
        """Activate an older version in the database; every replica's watcher swaps it in
        (a replica that cannot load its file keeps serving the head it has)."""
        version = await self.store.get_version(version_id)
        if version is None or version.encoder != self.encoder_key:
            raise KeyError(version_id)
        return await self.store.activate_version(version_id)
