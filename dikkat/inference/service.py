"""InferenceService: owns the models and puts every model call behind a DynamicBatcher."""

from __future__ import annotations

import logging

from dikkat.config import Settings
from dikkat.inference.batcher import DynamicBatcher
from dikkat.inference.device import resolve_device
from dikkat.models.sorter import SEQUENCE_LENGTH, Sorter, SortTrace

log = logging.getLogger(__name__)

SORT_COST = 2 * SEQUENCE_LENGTH


class InferenceService:
    """Async facade over the models; every call is batched on the model's worker thread."""

    def __init__(self, settings: Settings, sorter: Sorter) -> None:
        self.settings = settings
        self.sorter = sorter
        batcher_options = dict(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            default_timeout=settings.request_timeout_s,
        )
        self._sort = DynamicBatcher(sorter.sort_batch, name="sorter", **batcher_options)
        self._trace = DynamicBatcher(sorter.trace_batch, name="sorter_trace", **batcher_options)
        self._batchers: list[DynamicBatcher] = [self._sort, self._trace]

    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceService:
        """Load the shipped models on the configured device."""
        device = resolve_device(settings.device)
        log.info("inference device: %s", device)
        return cls(settings, Sorter.from_checkpoint(device=str(device)))

    async def start(self) -> None:
        """Start every batcher's worker."""
        for batcher in self._batchers:
            await batcher.start()

    async def stop(self) -> None:
        """Finish what is queued, then stop every worker thread."""
        for batcher in self._batchers:
            await batcher.stop()

    async def sort(self, letters: str) -> str:
        """Sorted version of six validated letters."""
        return await self._sort.submit(letters, cost=SORT_COST)

    async def sort_trace(self, letters: str) -> SortTrace:
        """Sorted sequence plus the nano-GPT's attention maps."""
        return await self._trace.submit(letters, cost=SORT_COST)
