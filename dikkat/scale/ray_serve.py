"""What the inference replicas on Ray Serve and their callers share: the deployment's name, the
settings a replica never gets, the shape of an answer, and joining the cluster."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dikkat.config import Settings

log = logging.getLogger(__name__)

DEPLOYMENT = "inference"
SECRET_VARIABLES = frozenset(
    {"DIKKAT_TELEGRAM_TOKEN", "DIKKAT_DISCORD_TOKEN", "DIKKAT_TELEGRAM_WEBHOOK_SECRET"}
)


@dataclass(frozen=True)
class Served:
    """One answer of a replica, with the replica and the size of the batch that produced it."""

    value: Any
    replica: str
    batch_size: int


def connect(settings: Settings) -> None:
    """Join the Ray cluster at DIKKAT_RAY_ADDRESS (or start a local one when it is unset)."""
    import ray

    if ray.is_initialized():
        return
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if settings.ray_address is None:
        options["include_dashboard"] = False  # a local cluster for this process alone
    ray.init(address=settings.ray_address, **options)
