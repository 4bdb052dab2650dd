"""The inference role on Ray Serve: every replica runs an App in the inference role, so Dikkat's
own DynamicBatcher (token budget, padding rule, instant "busy") batches inside each replica."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from dikkat.app import App
from dikkat.config import Settings
from dikkat.inference.backend import MODEL_CALLS
from dikkat.inference.batcher import last_batch_size
from dikkat.scale.ray_serve import DEPLOYMENT, SECRET_VARIABLES, Served, connect
from dikkat.stopping import stop_on_signals

log = logging.getLogger(__name__)


class InferenceReplica:
    """One Ray Serve replica: an App in the inference role (models, batchers, head watcher)."""

    async def __init__(self, environment: dict[str, str]) -> None:
        os.environ.update(environment)
        import torch
        from ray import serve

        from dikkat.logs import configure_logging

        settings = Settings(role="inference")
        configure_logging(settings.log_level, settings.log_format, [], settings.debug_loggers)
        torch.set_num_threads(settings.ray_torch_threads)
        self._app = App(settings)
        await self._app.start()
        assert self._app.service is not None
        self._service = self._app.service
        self._replica = serve.get_replica_context().replica_id.unique_id

    async def _call(self, method: str, *args: Any) -> Served:
        value = await getattr(self._service, method)(*args)
        return Served(value, self._replica, last_batch_size.get())

    async def call(self, method: str, *args: Any) -> Served:
        """One model call of InferenceBackend by name (what RayBackend sends)."""
        if method not in MODEL_CALLS:
            raise ValueError(f"not a model call: {method!r}")
        return await self._call(method, *args)

    async def feature_key(self) -> str:
        """The running encoder's feature key."""
        return self._service.feature_key

    async def check_health(self) -> None:
        """Serve's health check: every batcher still running."""
        healthy, detail = await self._app.health()
        if not healthy:
            raise RuntimeError(f"replica unhealthy: {detail}")

    async def __del__(self) -> None:
        await self._app.stop()


def replica_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The DIKKAT_* settings a replica starts with (chat secrets left out: replicas need none)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("DIKKAT_") and name not in SECRET_VARIABLES
    }
    environment.update(extra or {})
    environment["DIKKAT_ROLE"] = "inference"
    return environment


def build_app(args: dict[str, str] | None = None) -> Any:
    """The Serve application (also `serve.yaml`'s import path): replicas, CPUs, queue limits.

    `args` are DIKKAT_* settings for the replicas, on top of this process's environment.
    """
    from ray import serve

    environment = replica_environment(args)
    overrides = {
        name.removeprefix("DIKKAT_").lower(): value for name, value in (args or {}).items()
    }
    settings = Settings(**overrides)  # the rest comes from this process's environment
    deployment = serve.deployment(InferenceReplica).options(
        name=DEPLOYMENT,
        num_replicas=settings.ray_replicas,
        # Ray's default of 5 ongoing requests would cap each replica's batches at 5.
        max_ongoing_requests=2 * settings.max_batch_size,
        max_queued_requests=settings.max_queue,
        ray_actor_options={"num_cpus": settings.ray_replica_cpus},
        health_check_period_s=10,
    )
    return deployment.bind(environment)


async def deploy_replicas(settings: Settings) -> None:
    """`dikkat run` with DIKKAT_ROLE=inference: deploy the replicas, wait for SIGINT/SIGTERM,
    remove them."""
    from ray import serve

    stop = asyncio.Event()
    stop_on_signals(stop)

    await asyncio.to_thread(connect, settings)
    await asyncio.to_thread(serve.start, proxy_location="Disabled")  # frontends use handles
    app = build_app()
    await asyncio.to_thread(
        serve.run, app, name=settings.ray_app, route_prefix=None, blocking=False
    )
    log.info(
        "ready: Ray Serve application %r with %d inference replica(s)",
        settings.ray_app,
        settings.ray_replicas,
    )
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(serve.delete, settings.ray_app)
        log.info("stopped: Ray Serve application %r removed", settings.ray_app)
