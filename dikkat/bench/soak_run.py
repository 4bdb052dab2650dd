"""One soak run: the users' traffic through the Router, the background events beside it (an
admin's /retrain, another process's head activation and write lock), and the checks at the end."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from dikkat.app import App
from dikkat.bench.soak_processes import activate_version, hold_write_lock
from dikkat.bench.soak_sampling import Sampler, census_growth, memory_in_use_mb, samples_json
from dikkat.bench.soak_tally import VOTED, Tally, is_message, judge, requests_summary
from dikkat.bot.i18n import LABEL_NAMES, t
from dikkat.bot.types import ButtonPress, Reply, Request
from dikkat.storage.legacy_schema import BUSY_TIMEOUT_MS
from dikkat.storage.records import LABELS, VersionStatus

__all__ = ["ADMIN", "PLATFORM", "Soak", "SoakConfig"]

PLATFORM = "telegram"
ADMIN = "soak-admin"


@dataclass(frozen=True)
class SoakConfig:
    """How long, how many users, and how often each background event comes."""

    minutes: float | None = 30.0
    rounds: int | None = None  # each user's rounds; when set, the run ends after them instead
    users: int = 4
    think_s: float = 0.5  # mean pause between one user's requests
    sample_s: float = 10.0
    warmup_fraction: float = 0.2
    retrain_every_s: float = 60.0
    activate_every_s: float = 90.0
    lock_every_s: float = 40.0
    lock_hold_s: tuple[float, float] = (2.0, 5.0)
    long_lock_every: int = 4  # every n-th hold lasts busy timeout + lock_hold_s[0]; 0: never
    busy_timeout_ms: int | None = None  # the store's busy timeout (None: the product's)
    forget_every: int = 10  # rounds
    head_poll_s: float = 5.0
    answer_timeout_s: float = 180.0  # a request unanswered after this counts as unanswered
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.minutes is None) == (self.rounds is None):
            raise ValueError("give minutes or rounds")
        if self.users < 1 or self.sample_s <= 0 or not 0 <= self.warmup_fraction < 1:
            raise ValueError("users >= 1, sample_s > 0 and 0 <= warmup_fraction < 1")


class Soak:
    """One run: the users, the background events, the checks at the end."""

    def __init__(self, app: App, config: SoakConfig, texts: list[tuple[str, str]]) -> None:
        assert app.router and app.store and app.service
        self.app, self.config, self.texts = app, config, texts
        self.router, self.store, self.service = app.router, app.store, app.service
        self.stop = asyncio.Event()
        self.tally = Tally()
        self.started = time.monotonic()
        self.rng = np.random.default_rng(config.seed)
        busy_ms = config.busy_timeout_ms or BUSY_TIMEOUT_MS
        self.long_hold_s = busy_ms / 1000 + config.lock_hold_s[0]

    # requests

    async def ask(self, user: str, lang: str, command: str, args: str = "") -> Reply | None:
        request = Request(PLATFORM, user, user, command, args, lang)
        return await self._answer(command, lang, self.router.handle(request))

    async def _answer(self, command: str, lang: str, answering: Any) -> Reply | None:
        started = time.monotonic()
        try:
            reply = await asyncio.wait_for(answering, self.config.answer_timeout_s)
        except Exception as error:  # no answer in time, or a Router that raised
            reply, kind = None, "unanswered"
            self.tally.odd_replies[f"/{command}: {type(error).__name__}: {error}"[:200]] += 1
        else:
            kind = judge(command, reply, lang)
            if kind == "error":
                self.tally.odd_replies[f"/{command}: {reply.text}"[:200]] += 1
        now = time.monotonic()
        self.tally.requests.append((started - self.started, command, kind, now - started))
        return reply

    async def vote(self, user: str, lang: str, reply: Reply, label: str) -> None:
        data = next(b.data for b in reply.buttons if b.data.endswith(f":{label}"))
        press = ButtonPress(PLATFORM, user, user, data, lang)
        self.tally.votes["pressed"] += 1
        answer = await self._answer("vote", lang, self.router.handle_button(press))
        if answer is None:
            return
        name = LABEL_NAMES.text(label, lang)
        outcome = next(
            (o for o in (*VOTED, "missing") if answer.text == t(f"feedback_{o}", lang, label=name)),
            "refused" if judge("vote", answer, lang) == "polite" else "other",
        )
        self.tally.votes[outcome] += 1
        if outcome in VOTED:
            self.tally.expected[(user, int(data.split(":")[1]))] = label

    async def check_votes(self, user: str | None = None) -> dict[tuple[str, int], str]:
        """Compare the votes acknowledged to `user` (None: everyone) with the feedback rows;
        returns the stored votes."""
        rows = await self.store.feedback_rows()
        stored = {
            (r["user_id"], r["prediction_id"]): r["label"]
            for r in rows
            if r["platform"] == PLATFORM
        }
        for key, label in self.tally.expected.items():
            if (user is None or key[0] == user) and key not in self.tally.checked:
                self.tally.checked.add(key)
                if stored.get(key) != label:
                    self.tally.missing.append(key)
        return stored

    async def pause(self, rng: np.random.Generator) -> bool:
        """Think for a moment; False when the run is ending."""
        if self.stop.is_set():
            return False
        await asyncio.sleep(self.config.think_s * rng.uniform(0.5, 1.5))
        return not self.stop.is_set()

    async def user(self, k: int) -> None:
        user, lang = f"soak-{k}", ("tr", "en")[k % 2]
        rng = np.random.default_rng([self.config.seed, k])
        r = 0
        while not self.stop.is_set() and (self.config.rounds is None or r < self.config.rounds):
            await self.one_round(user, lang, rng, r)
            r += 1

    async def one_round(self, user: str, lang: str, rng: np.random.Generator, r: int) -> None:
        text, label = self.texts[int(rng.integers(len(self.texts)))]
        letters = "".join(rng.choice(list("ABC"), 6))
        reply = await self.ask(user, lang, "sentiment", text)
        if reply is not None and reply.buttons:
            await self.vote(user, lang, reply, label)
            if rng.random() < 0.2:  # a change of mind
                await self.vote(
                    user, lang, reply, str(rng.choice([x for x in LABELS if x != label]))
                )
        if not await self.pause(rng):
            return
        await self.ask(user, lang, "sort", letters)
        if not await self.pause(rng):
            return
        picture = (
            ("attention", ""),
            ("attention", letters),
            ("attention", text),
            ("explain", letters),
        )[r % 4]
        await self.ask(user, lang, *picture)
        if r % 5 == 4 and await self.pause(rng):
            await self.ask(user, lang, "help")
        if r % self.config.forget_every == self.config.forget_every - 1 and await self.pause(rng):
            await self.check_votes(user)  # before /forget deletes them
            answer = await self.ask(user, lang, "forget")
            if answer is not None and is_message(
                answer.text, "forget_done", lang, "predictions", "feedback"
            ):
                self.tally.forgets += 1
                for key in [key for key in self.tally.expected if key[0] == user]:
                    del self.tally.expected[key]
        await self.pause(rng)

    # background events

    async def every(self, period_s: float, action: Any) -> None:
        """`action(n)` at once, then every `period_s` seconds until the run ends."""
        n = 0
        while True:  # at least once, however short the run
            await action(n)
            n += 1
            try:
                await asyncio.wait_for(self.stop.wait(), period_s)
                return
            except TimeoutError:
                pass

    async def retrain(self, n: int) -> None:
        reply = await self.ask(ADMIN, "en", "retrain")
        self.tally.retrains["requested"] += 1
        if reply is None:
            return
        if is_message(reply.text, "retrain_started", "en", "run_id"):
            self.tally.retrains["started"] += 1
        elif reply.text == t("retrain_busy", "en"):
            self.tally.retrains["busy"] += 1
        else:
            self.tally.retrains["other"] += 1

    async def activate(self, n: int) -> None:
        """Another process activates a retired or rejected head version."""
        active = await self.store.active_version(self.service.feature_key)
        choices = [
            v.id
            for v in await self.store.list_versions(self.service.feature_key)
            if v.status in (VersionStatus.RETIRED, VersionStatus.REJECTED)
            and v.problem is None
            and (active is None or v.id != active.id)
        ]
        if not choices:
            return
        version = int(self.rng.choice(choices))
        started = time.monotonic()
        rc, out = await activate_version(str(self.store.path), version)
        event = {"t_s": round(started - self.started, 1), "version": version, "rc": rc}
        if rc != 0:
            event["error"] = out[-500:]
        else:  # the bot's watcher notices it within its poll interval
            deadline = time.monotonic() + 2 * self.config.head_poll_s + 10
            while self.service.head_version != version and time.monotonic() < deadline:
                if self.stop.is_set():
                    break
                await asyncio.sleep(0.1)
            if self.service.head_version == version:
                event["seen_after_s"] = round(time.monotonic() - started, 2)
        self.tally.activations.append(event)

    async def hold_lock(self, n: int) -> None:
        """Another process holds the write lock; every `long_lock_every`-th time past the busy
        timeout."""
        every = self.config.long_lock_every
        long = every > 0 and n % every == every - 1
        hold = self.long_hold_s if long else float(self.rng.uniform(*self.config.lock_hold_s))
        started = time.monotonic()
        rc, out = await hold_write_lock(str(self.store.path), hold)
        event = {"t_s": round(started - self.started, 1), "hold_s": round(hold, 2), "long": long}
        event |= {"rc": rc, "waited_s": float(out.split()[0])} if rc == 0 else {"error": out[-500:]}
        self.tally.locks.append(event)

    async def notified(self, chat_id: str, reply: Reply) -> None:
        self.tally.notices += 1

    # the run

    async def run(self, progress: Any) -> dict[str, Any]:
        self.router.set_notifier(PLATFORM, self.notified)
        self.router.rate_limiter.burst = 10**9  # benchmark users are not people
        if self.config.busy_timeout_ms is not None:
            await self.store.sqlite_pragma(f"PRAGMA busy_timeout = {self.config.busy_timeout_ms}")
        minutes = self.config.minutes
        warmup_s = 0.0 if minutes is None else self.config.warmup_fraction * minutes * 60
        sampler = Sampler(self.config.sample_s, progress.sampled, census_at_s=warmup_s)
        self.started = time.monotonic()
        sampler.start()
        users = [
            asyncio.create_task(self.user(k), name=f"soak-user-{k}")
            for k in range(self.config.users)
        ]
        background = [
            asyncio.create_task(self.every(period, action), name=f"soak-{action.__name__}")
            for period, action in (
                (self.config.retrain_every_s, self.retrain),
                (self.config.activate_every_s, self.activate),
                (self.config.lock_every_s, self.hold_lock),
            )
        ]
        try:
            if self.config.minutes is not None:
                await asyncio.wait(users, timeout=self.config.minutes * 60)
            else:
                await asyncio.wait(users)
        finally:
            await sampler.stop()  # the last sample while the traffic still runs
            self.stop.set()
            await asyncio.gather(*users, *background)
        duration = time.monotonic() - self.started
        progress.say("traffic stopped; waiting for the running retrain, then checking")
        retrainer = self.app.retrainer
        deadline = time.monotonic() + 600
        while retrainer is not None and retrainer.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        if self.app.watcher is not None:
            await self.app.watcher.check()
        checks = await self.final_checks()
        return {
            "duration_s": round(duration, 1),
            "samples": samples_json(sampler.samples),
            "census": sampler.censuses,
            "census_growth": census_growth(sampler.censuses),
            "memory_at_end": memory_in_use_mb(),
            **checks,
        }

    async def final_checks(self) -> dict[str, Any]:
        tally = self.tally
        stored = await self.check_votes()
        last = await self.store.last_run()
        runs = [await self.store.get_run(i) for i in range(1, (last.id if last else 0) + 1)]
        active = await self.store.active_version(self.service.feature_key)
        return {
            "requests": requests_summary(tally),
            "votes": {
                "pressed": tally.votes["pressed"],
                "acknowledged": sum(tally.votes[o] for o in VOTED),
                "outcomes": dict(tally.votes),
                "refused_busy": tally.votes["refused"],
                "checked": len(tally.checked),  # distinct (user, prediction) votes
                "missing": len(tally.missing),
                "missing_examples": [list(k) for k in tally.missing[:10]],
                "stored_at_end": len(stored),
                "unexpected_at_end": len(set(stored) - set(tally.expected)),
            },
            "forgets": tally.forgets,
            "retrains": {
                **{k: tally.retrains[k] for k in ("requested", "started", "busy", "other")},
                "results_posted": tally.notices,
                "outcomes": dict(Counter(str(run.status) for run in runs if run is not None)),
            },
            "activations": {
                "ok": sum(1 for a in tally.activations if a["rc"] == 0),
                "failed": sum(1 for a in tally.activations if a["rc"] != 0),
                "seen": sum(1 for a in tally.activations if "seen_after_s" in a),
                "events": tally.activations,
            },
            "locks": {
                "held": sum(1 for e in tally.locks if e.get("rc") == 0),
                "long": sum(1 for e in tally.locks if e["long"] and e.get("rc") == 0),
                "long_hold_s": round(self.long_hold_s, 2),
                "events": tally.locks,
            },
            "head": {
                "served": self.service.head_version,
                "active": None if active is None else active.id,
                "in_step": active is not None and active.id == self.service.head_version,
            },
        }
