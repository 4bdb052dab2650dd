"""Issue 14, acceptance check 4: Telegram through a round-robin proxy to 2 `dikkat run`
replicas in webhook mode on one shared database, fed by a local fake Telegram.

500 updates from 300 group chats (each chat's updates one after the other, as Telegram does),
10% of them delivered twice (half again after their 200, half twice at once), 40 deliveries
in flight; one replica is SIGKILLed halfway (while its handlers wait on the Bot API) and
restarted, as a supervisor would; the proxy passes a dead replica's requests to the other and
the fake Telegram re-sends every non-2xx. Every update is answered exactly once, each chat's
answers come in order, and both replicas did work: each answered updates that the proxy gave it
(which replica gets what share depends on the machine's speed, so no share is asserted).

Nothing here waits a fixed time for something to have happened: the test waits for the event
itself, with deadlines (far above a normal run) that only catch a hang. The sends are paced,
as Telegram's are, but nothing relies on the pace.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dikkat.config import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:REPLICAS-token-never-logged"
BOT = {"id": 123456, "is_bot": True, "first_name": "Dikkat", "username": "dikkat_bot"}
N_UPDATES, N_CHATS, N_RESENT = 500, 300, 50
IN_FLIGHT = 40  # Telegram's max_connections default
PACE_S = 1 / 25  # a new update every 40 ms (every 125 ms while a replica is down)
SECRET = "replicas-Secret_1"
DELIVERY_S = 300  # sending and answering all (normally ~30 s, restart included): a hang


async def until(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Wait (polling) until `condition()` holds; `timeout_s` only catches a hang."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still waiting after {timeout_s} s for {what}")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeBotApi:
    """The Bot API the replicas call: records every answer (which replica, which chat, which
    message it quotes); a replica marked `held` gets no answer to sendMessage any more."""

    def __init__(self, halfway: int) -> None:
        self.answers: list[tuple[str, int, int]] = []  # (replica, chat id, quoted message id)
        self.calls: collections.Counter[str] = collections.Counter()
        self.webhooks: list[tuple[str, dict[str, Any]]] = []  # (who, parameters)
        self.held: set[str] = set()
        self.n_held = 0
        self.halfway = asyncio.Event()
        self._halfway_at = halfway
        self._release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        replica, method = request.match_info["replica"], request.match_info["method"]
        assert request.match_info["token"] == TOKEN
        payload: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        self.calls[method] += 1
        result: Any = True
        if method == "getMe":
            result = BOT
        elif method == "setWebhook":
            self.webhooks.append((replica, payload))
        elif method == "getWebhookInfo":
            result = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        elif method == "sendMessage":
            if replica in self.held:  # this replica is about to be killed mid-processing
                self.n_held += 1
                await self._release.wait()
                return web.json_response({"ok": False, "error_code": 500}, status=500)
            chat_id = int(payload["chat_id"])
            quoted = json.loads(payload["reply_parameters"])["message_id"]
            self.answers.append((replica, chat_id, quoted))
            if len(self.answers) >= self._halfway_at:
                self.halfway.set()
            chat = {"id": chat_id, "type": "group", "title": "g"}
            result = {"message_id": 1, "date": 0, "chat": chat, "from": BOT, "text": "x"}
        return web.json_response({"ok": True, "result": result})

    def release(self) -> None:
        self._release.set()

    def answered_by(self, replica: str) -> set[int]:
        """The updates (ids) that `replica` answered."""
        return {quoted - 1 for who, _, quoted in self.answers if who == replica}


class RoundRobinProxy:
    """The load balancer: each request to the next replica; one that cannot be reached (or
    drops the connection) passes the request to the other; any answer goes back as it is.
    It logs which replica answered each update with which status, and knows which updates
    each replica is working on right now."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = 0
        self.log: list[tuple[int, int, int]] = []  # (update id, replica index, its status)
        self.in_flight: collections.Counter[tuple[int, int]] = collections.Counter()
        self.passed_on = 0
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        assert self.session is not None
        body = await request.read()
        update_id = json.loads(body)["update_id"]
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-tele")}
        headers["Content-Type"] = "application/json"
        first, self.turn = self.turn, self.turn + 1
        for index in ((first + i) % len(self.ports) for i in range(len(self.ports))):
            url = f"http://127.0.0.1:{self.ports[index]}/telegram"
            self.in_flight[index, update_id] += 1
            try:
                async with self.session.post(url, data=body, headers=headers) as response:
                    self.log.append((update_id, index, response.status))
                    return web.Response(status=response.status)
            except (aiohttp.ClientError, OSError):
                self.passed_on += 1
            finally:
                self.in_flight[index, update_id] -= 1
        return web.Response(status=502)

    def busy_with(self, index: int, update_ids: set[int]) -> bool:
        """Whether replica `index` has not yet answered a request for one of `update_ids`."""
        return any(self.in_flight[index, update_id] > 0 for update_id in update_ids)


class Replica:
    """One `dikkat run` process (webhook mode, shared SQLite database)."""

    def __init__(self, index: int, env: dict[str, str], logs: Path) -> None:
        self.index, self.env, self.logs = index, env, logs
        self.port = int(env["DIKKAT_HTTP_PORT"])
        self.process: asyncio.subprocess.Process | None = None
        self.generation = 0

    async def start(self, api_port: int) -> None:
        self.generation += 1
        name = f"r{self.index}g{self.generation}"  # the Bot API tells the processes apart
        env = self.env | {"DIKKAT_TELEGRAM_API_URL": f"http://127.0.0.1:{api_port}/{name}/bot"}
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - the child writes it
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dikkat", "run", env=env, cwd=ROOT, stdout=log, stderr=log
        )
        log.close()
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                assert self.process.returncode is None, (self.logs / f"{name}.log").read_text()
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"replica {name} did not become healthy")

    @property
    def name(self) -> str:
        return f"r{self.index}g{self.generation}"

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()  # reaped: its claims' owner is gone for the other replica

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def plan(seed: int = 14) -> tuple[list[int], set[int], set[int]]:
    """The chat of each update (update i quotes message i + 1), and the re-sent updates."""
    rng = random.Random(seed)
    chats = list(range(N_CHATS)) + rng.sample(range(N_CHATS), N_UPDATES - N_CHATS)
    rng.shuffle(chats)
    resent = rng.sample(range(N_UPDATES), N_RESENT)
    return chats, set(resent[: N_RESENT // 2]), set(resent[N_RESENT // 2 :])


def update_payload(update_id: int, chat: int) -> dict[str, Any]:
    letters = "".join(random.Random(update_id).choice("ABC") for _ in range(6))
    text = f"/sort {letters}"
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id + 1,
            "date": int(time.time()),
            "chat": {"id": -1000 - chat, "type": "group", "title": f"g{chat}"},
            "from": {"id": 5000 + chat, "is_bot": False, "first_name": "U", "language_code": "tr"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }


async def test_two_webhook_replicas_answer_every_update_once_in_order(tmp_path: Path) -> None:
    started = time.monotonic()
    api = FakeBotApi(halfway=N_UPDATES // 2)
    api_app = web.Application()
    api_app.router.add_post("/{replica}/bot{token}/{method}", api.handle)
    replica_ports = [free_port(), free_port()]
    proxy = RoundRobinProxy(replica_ports)
    proxy_app = web.Application()
    proxy_app.router.add_post("/telegram", proxy.handle)
    runners = [web.AppRunner(api_app), web.AppRunner(proxy_app)]
    api_port, proxy_port = free_port(), free_port()
    for runner, port in zip(runners, (api_port, proxy_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIKKAT_")}
    env |= {
        "DIKKAT_DB_PATH": str(tmp_path / "var" / "dikkat.db"),
        "DIKKAT_MODEL_DIR": str(tmp_path / "var" / "models"),
        "DIKKAT_SENTIMENT_ENCODER": "minilm",
        "DIKKAT_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "DIKKAT_TELEGRAM_TOKEN": TOKEN,
        "DIKKAT_TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{proxy_port}/telegram",
        "DIKKAT_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "DIKKAT_TELEGRAM_REGISTER_WEBHOOK": "false",
        "DIKKAT_RATE_LIMIT_PER_MINUTE": "10000",
        "DIKKAT_RATE_LIMIT_BURST": "1000",
        "DIKKAT_LOG_LEVEL": "WARNING",
    }
    replicas = [
        Replica(i, env | {"DIKKAT_HTTP_PORT": str(port)}, tmp_path)
        for i, port in enumerate(replica_ports)
    ]
    chats, resent_after, resent_at_once = plan()
    statuses: collections.Counter[int] = collections.Counter()
    acked: set[int] = set()
    timings: dict[str, float] = {}
    down = asyncio.Event()
    try:
        # the webhook is registered once, by the command, not by the replicas
        register = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from dikkat.cli.telegram import telegram_app; telegram_app()",
            "set-webhook",
            "--max-connections",
            str(IN_FLIGHT),
            env=env | {"DIKKAT_TELEGRAM_API_URL": f"http://127.0.0.1:{api_port}/cli/bot"},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await register.communicate()
        assert register.returncode == 0, err.decode()
        for replica in replicas:  # one after the other: the first prepares the database
            await replica.start(api_port)
        timings["replicas_up_s"] = time.monotonic() - started

        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as telegram,
            # the proxy passes on what a replica refuses or drops, not what is slow to answer
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DELIVERY_S)) as upstream,
            asyncio.timeout(DELIVERY_S),
        ):
            proxy.session = upstream
            slots = asyncio.Semaphore(IN_FLIGHT)
            url = f"http://127.0.0.1:{proxy_port}/telegram"
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

            async def deliver(update_id: int) -> None:
                """What Telegram does: send until the answer is a 2xx."""
                payload = update_payload(update_id, chats[update_id])
                while True:
                    async with slots:
                        try:
                            async with telegram.post(url, json=payload, headers=headers) as r:
                                status = r.status
                        except aiohttp.ClientError:
                            status = 0
                    statuses[status] += 1
                    if 200 <= status < 300:
                        return
                    await asyncio.sleep(0.1)

            previous: dict[int, asyncio.Task[None]] = {}

            async def in_chat_order(update_id: int, before: asyncio.Task[None] | None) -> None:
                if before is not None:
                    await before  # Telegram sends a chat's next update after the last one's 2xx
                if update_id in resent_at_once:  # a timeout made Telegram send it twice
                    await asyncio.gather(deliver(update_id), deliver(update_id))
                else:
                    await deliver(update_id)
                acked.add(update_id)
                if update_id in resent_after:  # its 200 was lost: sent again later
                    await deliver(update_id)

            async def kill_halfway() -> None:
                await api.halfway.wait()
                victim = replicas[0]
                api.held.add(victim.name)  # from now on its handlers wait on the Bot API
                # Killed between its answer and recording the update as done, a process would
                # have the re-sent update answered twice (nothing can prevent that), so the
                # kill waits until every update it answered got its 2xx back to the proxy
                # (the ledger is written first), and until a handler waits on the Bot API.
                await until(
                    lambda: (
                        api.n_held >= 1
                        and not proxy.busy_with(victim.index, api.answered_by(victim.name))
                    ),
                    "the victim to hold an update and finish those it answered",
                    60,
                )
                timings["held_at_kill"] = api.n_held
                down.set()
                timings["killed_at_s"] = time.monotonic() - started
                await victim.kill()
                api.release()
                await victim.start(api_port)  # the supervisor restarts it
                timings["restarted_after_s"] = time.monotonic() - started - timings["killed_at_s"]
                down.clear()

            killer = asyncio.create_task(kill_halfway())
            send_started = time.monotonic()
            for update_id in range(N_UPDATES):
                chat = chats[update_id]
                previous[chat] = asyncio.create_task(in_chat_order(update_id, previous.get(chat)))
                await asyncio.sleep(PACE_S * (3 if down.is_set() else 1))
            await asyncio.gather(*previous.values())
            await killer
            # a re-sent copy can be acknowledged before the replica that processed the
            # original copy has answered the proxy: its log is complete once none is open
            await until(lambda: not any(proxy.in_flight.values()), "the proxy's last answers", 60)
            timings["delivery_s"] = time.monotonic() - send_started
    finally:
        for replica in replicas:
            await replica.stop()
        api.release()
        for runner in runners:
            await runner.cleanup()
    timings["total_s"] = time.monotonic() - started

    answered = collections.Counter(quoted - 1 for _, _, quoted in api.answers)
    assert sorted(answered) == list(range(N_UPDATES)), "an update was never answered"
    assert [u for u, n in answered.items() if n > 1] == [], "an update was answered twice"
    by_chat: dict[int, list[int]] = collections.defaultdict(list)
    for _, chat_id, quoted in api.answers:
        by_chat[chat_id].append(quoted - 1)
    assert all(ids == sorted(ids) for ids in by_chat.values()), "a chat's order was broken"
    assert all(-1000 - chats[u] == chat for chat, ids in by_chat.items() for u in ids)
    assert acked == set(range(N_UPDATES))
    # Both replicas did work: each answered updates the proxy gave it, and every answer came
    # from a replica that the proxy handed that update to and that answered that request 2xx.
    # (How many each gets depends on the machine's speed: no share is asserted.)
    share = collections.Counter(replica[:2] for replica, _, _ in api.answers)
    assert share["r0"] >= 1 and share["r1"] >= 1, share
    assert api.answered_by("r0g1"), "the replica to be killed answered nothing before the kill"
    succeeded = {(update_id, index) for update_id, index, status in proxy.log if status == 200}
    unsent = [a for a in api.answers if (a[2] - 1, int(a[0][1])) not in succeeded]
    assert unsent == [], "an answer came from a replica that did not answer that update 200"
    per_replica = collections.Counter((index, status) for _, index, status in proxy.log)
    assert {index for _, index in succeeded} == {0, 1}, per_replica
    # registered once, with the options of `dikkat telegram set-webhook`; no replica did
    [(_, hook)] = [(who, hook) for who, hook in api.webhooks if who == "cli"]
    assert hook["url"].endswith("/telegram") and hook["max_connections"] == str(IN_FLIGHT)
    if "telegram_register_webhook" in Settings.model_fields:  # DIKKAT_TELEGRAM_REGISTER_WEBHOOK
        assert [who for who, _ in api.webhooks] == ["cli"]
    report = {
        "answers_per_replica": dict(share),
        "http_statuses": dict(statuses),
        "answered_by": {r: len(api.answered_by(r)) for r in ("r0g1", "r0g2", "r1g1")},
        "proxy_log": {f"r{index}:{status}": n for (index, status), n in per_replica.items()},
        "proxy_passed_on": proxy.passed_on,
        **{k: round(v, 1) for k, v in timings.items()},
    }
    print(json.dumps(report))
