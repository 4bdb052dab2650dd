"""The retrain job records where its time goes (what `dikkat bench retrain` reads, no patching)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dikkat.training.profile import PHASES


def _count(phase: str) -> float:
    value = REGISTRY.get_sample_value("dikkat_retrain_phase_seconds_count", {"phase": phase})
    return value or 0.0


async def test_a_retrain_run_records_its_phase_timings(bot, cast_vote) -> None:
    await cast_vote(bot.store)
    before = {phase: _count(phase) for phase in PHASES}
    run = await bot.retrainer.run("admin", "telegram:1")
    assert run.status in ("promoted", "rejected")
    profile = bot.retrainer.last_profile
    assert profile is not None and profile.run_id == run.id
    assert list(profile.seconds) == list(PHASES)  # every phase, in the order the run goes
    assert all(seconds >= 0 for seconds in profile.seconds.values())
    assert profile.seconds["train"] > 0
    assert profile.epochs is not None and profile.epochs >= 1
    assert profile.encoded_texts == 1  # the voted text; the seed corpus's features are cached
    for phase in PHASES:  # one observation per phase in the Prometheus summary
        assert _count(phase) == before[phase] + 1
