"""`dikkat bench soak`: the bot in one process under mixed traffic for a long time; does anything
grow, does anything break?

Users drive the Router, the path every frontend takes: /sentiment and a vote on its answer
(sometimes changed), /sort, /attention pictures (worked example, nano-GPT, encoder), /explain,
/help and now and then /forget. Beside them an admin sends /retrain every minute, another process
activates an older head version (as a rollback from another host does) and another process holds
the database's write lock for a few seconds, every `long_lock_every`-th time past the busy timeout
so that the refusal paths run too. The process is sampled every 10 s (soak_sampling). At the end:
was every request answered, is every acknowledged vote in the database, does the bot serve the
active head, and which WARNING+ log records, tracebacks above all, were written.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dikkat.app import App
from dikkat.bench.common import loadavg, machine_info, percentiles, write_json
from dikkat.bench.soak_logs import LogCapture
from dikkat.bench.soak_plot import soak_png
from dikkat.bench.soak_report import format_report, trend, verdict
from dikkat.bench.soak_sampling import (
    Sample,
    Sampler,
    census_growth,
    memory_in_use_mb,
    samples_json,
)
from dikkat.bot.i18n import LABEL_NAMES, MESSAGES, t
from dikkat.bot.types import ButtonPress, Reply, Request
from dikkat.config import Settings
from dikkat.models.encoder import SentenceEncoder
from dikkat.storage.legacy_schema import BUSY_TIMEOUT_MS
from dikkat.storage.store import LABELS, VersionStatus
from dikkat.training.data import load_labelled_csv, seed_corpus_path
from dikkat.training.heads import head_versions_dir, register_head

__all__ = ["SoakConfig", "format_report", "run_soak"]

PLATFORM = "telegram"
ADMIN = "soak-admin"
# "please try again" answers: a full model queue, a slow request, a database that stayed locked
POLITE = tuple(
    key
    for key in ("busy", "timeout", "unavailable", "store_busy", "database_busy")
    if key in set(MESSAGES)
)
VOTED = ("created", "changed", "unchanged")  # what acknowledges a vote as stored
_MARK = "\x00"

# Another process: holds the write lock for argv[2] seconds (prints how long it waited for it).
LOCK_SCRIPT = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=120)
asked = time.monotonic()
conn.execute("BEGIN IMMEDIATE")
print(f"{time.monotonic() - asked:.3f}", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""
# Another process: activates head version argv[2] through the Store, as a rollback elsewhere does.
ACTIVATE_SCRIPT = """
import asyncio, sys
from pathlib import Path
from dikkat.storage.store import Store

async def main():
    store = await Store.open(Path(sys.argv[1]))
    try:
        await store.activate_version(int(sys.argv[2]))
    finally:
        await store.close()

asyncio.run(main())
"""


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


def _matches(text: str, key: str, lang: str, *fields: str) -> bool:
    """Whether `text` is message `key` with any values in its `fields`."""
    pieces = t(key, lang, **dict.fromkeys(fields, _MARK)).split(_MARK)
    if len(pieces) == 1:
        return text == pieces[0]
    at = len(pieces[0]) if text.startswith(pieces[0]) else -1
    for piece in pieces[1:-1]:
        at = -1 if at < 0 else text.find(piece, at)
    return at >= 0 and text.endswith(pieces[-1]) and len(text) >= at + len(pieces[-1])


def _kind(command: str, reply: Reply, lang: str) -> str:
    """ok, polite (a "try again"), or error (the internal-error text or a reply without what
    the command must give)."""
    if any(reply.text == t(key, lang) for key in POLITE):
        return "polite"
    if reply.text == t("internal_error", lang):
        return "error"
    if command == "sentiment" and not reply.buttons:
        return "error"
    if command in ("attention", "explain") and reply.image is None:
        return "error"
    return "ok"


@dataclass
class Tally:
    """Everything the run counts."""

    requests: list[tuple[float, str, str, float]] = field(default_factory=list)  # t, cmd, kind, s
    odd_replies: Counter[str] = field(default_factory=Counter)  # error/unanswered, by text
    votes: Counter[str] = field(default_factory=Counter)
    expected: dict[tuple[str, int], str] = field(default_factory=dict)  # (user, prediction)
    checked: set[tuple[str, int]] = field(default_factory=set)  # compared with the database
    missing: list[tuple[str, int]] = field(default_factory=list)
    forgets: int = 0
    retrains: Counter[str] = field(default_factory=Counter)
    notices: int = 0
    activations: list[dict[str, Any]] = field(default_factory=list)
    locks: list[dict[str, Any]] = field(default_factory=list)


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
            kind = _kind(command, reply, lang)
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
            "refused" if _kind("vote", answer, lang) == "polite" else "other",
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
            if answer is not None and _matches(
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
        if _matches(reply.text, "retrain_started", "en", "run_id"):
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
        rc, out = await _run_python(ACTIVATE_SCRIPT, str(self.store.path), str(version))
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
        rc, out = await _run_python(LOCK_SCRIPT, str(self.store.path), f"{hold:.3f}")
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
            "requests": _requests(tally),
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


def _requests(tally: Tally) -> dict[str, Any]:
    by_command: dict[str, dict[str, Any]] = {}
    for command in sorted({r[1] for r in tally.requests}):
        rows = [r for r in tally.requests if r[1] == command]
        kinds = Counter(r[2] for r in rows)
        p50, p99 = percentiles([r[3] * 1000 for r in rows if r[2] != "unanswered"])
        by_command[command] = {
            "n": len(rows),
            **{k: kinds[k] for k in ("ok", "polite", "error", "unanswered")},
            "p50_ms": None if p50 is None else round(p50, 1),
            "p99_ms": None if p99 is None else round(p99, 1),
        }
    kinds = Counter(r[2] for r in tally.requests)
    return {
        "total": len(tally.requests),
        **{k: kinds[k] for k in ("ok", "polite", "error", "unanswered")},
        "by_command": by_command,
        "odd_replies": dict(tally.odd_replies.most_common(20)),
    }


async def _run_python(script: str, *args: str) -> tuple[int, str]:
    """Run `script` in another Python process; its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode(errors="replace")


class Progress:
    """A rich progress bar on stderr and a status line every minute (plain lines without a
    terminal, e.g. under nohup)."""

    def __init__(self, config: SoakConfig, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.config, self.enabled = config, enabled
        self.console = Console(stderr=True, highlight=False)
        self.bar = Bar(
            TextColumn("soak"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            disable=not enabled,
        )
        total = config.minutes * 60 if config.minutes is not None else None
        self.task = self.bar.add_task("soak", total=total, status="")
        self.tally: Tally | None = None
        self._next_line = 0.0

    def sampled(self, sample: Any) -> None:
        tally = self.tally
        done = len(tally.requests) if tally else 0
        status = (
            f"{done} requests, RSS {sample.rss_mb:.0f} MiB, tasks {sample.tasks}, "
            f"fds {sample.fds}, threads {sample.threads}"
        )
        self.bar.update(self.task, completed=sample.t_s, status=status)
        if sample.t_s >= self._next_line:
            self._next_line = sample.t_s + 60
            self.say(status)

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"[{time.strftime('%H:%M:%S')}] {message}", markup=False)


def _texts(seed: int) -> list[tuple[str, str]]:
    """The seed corpus's Turkish sentences with their labels, shuffled."""
    df = load_labelled_csv(seed_corpus_path())
    order = np.random.default_rng(seed).permutation(len(df))
    return [(str(df["text"].iloc[i]), str(df["label"].iloc[i])) for i in order]


async def _soak(
    config: SoakConfig,
    settings: Settings,
    encoder: SentenceEncoder,
    workdir: Path,
    features_db: Path | None,
    progress: Progress,
) -> dict[str, Any]:
    db = workdir / "soak.db"
    if features_db is not None:  # its feature cache: the seed corpus is not encoded again
        shutil.copy(features_db, db)
    run_settings = settings.model_copy(
        update={
            "db_path": db,
            "model_dir": workdir / "models",
            "admins": f"{PLATFORM}:{ADMIN}",
            "head_poll_s": config.head_poll_s,
            "database_url": None,
            "role": "all",
        }
    )
    report: dict[str, Any] = {
        "benchmark": "soak",
        "config": asdict(config),
        "machine": machine_info(device=str(encoder.device), encoder=encoder.feature_key),
        "settings": {
            k: getattr(run_settings, k)
            for k in (
                "max_batch_size",
                "max_queue",
                "request_timeout_s",
                "head_poll_s",
                "retrain_nice",
                "retrain_tolerance",
            )
        },
    }
    report["settings"]["busy_timeout_ms"] = config.busy_timeout_ms or BUSY_TIMEOUT_MS
    with LogCapture() as logs:
        app = App(run_settings, encoder=encoder)
        await app.start()
        try:
            # one older head always there for the other process to activate
            assert app.store and app.service
            first = await app.store.active_version(encoder.feature_key)
            assert first is not None
            copy = head_versions_dir(run_settings) / "soak-copy.pt"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(first.path, copy)
            await register_head(
                app.store,
                copy,
                encoder=encoder.feature_key,
                dim=encoder.dim,
                metrics=first.metrics,
                status=VersionStatus.RETIRED,
                source="soak: a copy for the other process",
            )
            soak = Soak(app, config, _texts(config.seed))
            progress.tally = soak.tally
            with progress.bar:
                report |= await soak.run(progress)
        finally:
            await app.stop()
        report["logs"] = logs.summary()
    warmup_s = config.warmup_fraction * report["duration_s"]
    report["trend"] = trend([Sample(**s) for s in report["samples"]], warmup_s)
    report["machine"]["loadavg_end"] = loadavg()
    report["verdict"] = verdict(report)
    return report


def run_soak(
    config: SoakConfig,
    *,
    encoder: SentenceEncoder,
    settings: Settings | None = None,
    features_db: Path | None = None,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the soak with `encoder` on a scratch database (the other settings from `settings`);
    write the JSON report and the figure if asked."""
    settings = settings or Settings()
    with tempfile.TemporaryDirectory(prefix="dikkat-bench-soak-") as tmp:
        report = asyncio.run(
            _soak(config, settings, encoder, Path(tmp), features_db, Progress(config, progress))
        )
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        Path(plot_path).parent.mkdir(parents=True, exist_ok=True)
        Path(plot_path).write_bytes(soak_png(report))
    return report
