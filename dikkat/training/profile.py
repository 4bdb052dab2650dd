"""Where a retrain run spends its time: phase timings per run and as a Prometheus summary."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import Summary

PHASES = ("gather", "features", "train", "evaluate", "save")


PHASE_SECONDS = Summary(
    "dikkat_retrain_phase_seconds", "Wall seconds of one retrain run's phase.", ["phase"]
)


@dataclass
class RunProfile:
    """Where one retrain run spent its time (seconds per phase of PHASES) and what it computed."""

    run_id: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None  # training epochs of the candidate
    encoded_texts: int = 0  # texts encoded because neither cached nor remembered

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to phase `name`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def observe(self) -> None:
        """Record each phase's seconds in the dikkat_retrain_phase_seconds summary."""
        for name, seconds in self.seconds.items():
            PHASE_SECONDS.labels(phase=name).observe(seconds)
