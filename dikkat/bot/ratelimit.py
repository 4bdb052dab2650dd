"""Per-user token bucket: a burst of requests, refilled at a steady rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dikkat.config import Settings


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`check(key)` returns 0 when allowed, else the seconds to wait for the next token."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")
        self.rate = per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    @classmethod
    def for_settings(
        cls, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """The per-user limit of DIKKAT_RATE_LIMIT_PER_MINUTE and _BURST, on `clock`."""
        return cls(
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            clock=clock,
        )

    def check(self, key: str) -> float:
        """Take one token for `key` if there is one; otherwise say how long to wait."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full_buckets(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_full_buckets(self, now: float) -> None:
        """Drop buckets that have refilled completely: they behave like new ones."""
        refill = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}
