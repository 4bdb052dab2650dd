"""Composition root: builds the models, the service and the Router; starts and stops them."""

from __future__ import annotations

import asyncio
import logging

from dikkat.bot.router import Router
from dikkat.config import Settings
from dikkat.inference.service import InferenceService

log = logging.getLogger(__name__)


class App:
    """Everything a frontend needs, started and stopped in the right order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: InferenceService | None = None
        self.router: Router | None = None

    async def start(self) -> Router:
        """Load models (off the event loop), start the batchers, build the Router."""
        self.service = await asyncio.to_thread(InferenceService.from_settings, self.settings)
        await self.service.start()
        self.router = Router(self.service, self.settings)
        return self.router

    async def stop(self) -> None:
        """Finish in-flight requests and release every worker."""
        if self.service is not None:
            await self.service.stop()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
