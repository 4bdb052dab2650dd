"""The frontend role's InferenceBackend: the same calls as InferenceService, over Serve handles."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from dikkat.config import Settings
from dikkat.inference.backend import forwards_model_calls
from dikkat.inference.batcher import Overloaded
from dikkat.scale.ray_serve import Served, connect

T = TypeVar("T")


@forwards_model_calls
class RayBackend:
    """Calls the inference replicas of a Ray Serve application (every model call of
    InferenceBackend goes through `_call`); figures are drawn here."""

    def __init__(self, handle: Any, feature_key: str) -> None:
        self._handle = handle
        self._feature_key = feature_key
        self._render = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self.served_by: Counter[str] = Counter()
        self.batch_sizes: list[int] = []

    @classmethod
    async def connect(cls, settings: Settings) -> RayBackend:
        """Join the cluster at DIKKAT_RAY_ADDRESS and take a handle to DIKKAT_RAY_APP."""
        from ray import serve

        await asyncio.to_thread(connect, settings)
        handle = await asyncio.to_thread(serve.get_app_handle, settings.ray_app)
        backend = cls(handle, "")
        backend._feature_key = await handle.feature_key.remote()
        return backend

    @property
    def feature_key(self) -> str:
        """The replicas' encoder feature key."""
        return self._feature_key

    async def _call(self, method: str, *args: Any) -> Any:
        from ray.serve.exceptions import BackPressureError

        try:
            served: Served = await self._handle.call.remote(method, *args)
        except BackPressureError as error:  # the handle's queue is full: "busy", not a hang
            raise Overloaded(str(error)) from None
        self.served_by[served.replica] += 1
        self.batch_sizes.append(served.batch_size)
        return served.value

    def recent_features(self, text_hash: str) -> np.ndarray | None:
        """Features live in the replicas: None (a voted text is encoded once at retrain)."""
        return None

    async def render(self, draw: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a figure-drawing function on this process's render thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._render, lambda: draw(*args, **kwargs))

    async def close(self) -> None:
        """Stop the render thread (the cluster connection stays for the process)."""
        self._render.shutdown(wait=True)
