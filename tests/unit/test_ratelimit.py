"""The per-user token bucket."""

import pytest

from dikkat.bot.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_wait_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.check("u") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("u") == pytest.approx(1.0)
    clock.now = 0.5
    assert limiter.check("u") == pytest.approx(0.5)
    clock.now = 1.0
    assert limiter.check("u") == 0.0


def test_users_are_independent() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=Clock())
    assert limiter.check("a") == 0.0
    assert limiter.check("a") > 0
    assert limiter.check("b") == 0.0


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, max_keys=10)
    for i in range(10):
        limiter.check(f"u{i}")
    clock.now = 5.0
    limiter.check("new")
    assert len(limiter._buckets) == 1


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 1), (1, 0)])
def test_invalid_configuration(per_minute: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_minute=per_minute, burst=burst)
