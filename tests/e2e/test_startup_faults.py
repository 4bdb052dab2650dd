"""Start-up faults as an operator meets them: a clear line naming the file, exit 1, no hang,
and never a configured secret on screen."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web

TOKEN = "123456:REVOKED-secret-token-value"


def dikkat(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dikkat", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def environment(tmp_path: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIKKAT_")}
    env.update(
        DIKKAT_DB_PATH=str(tmp_path / "dikkat.db"),
        DIKKAT_MODEL_DIR=str(model_dir),
        DIKKAT_DEVICE="cpu",
        HF_HUB_OFFLINE="1",
        **extra,
    )
    return env


def test_a_database_of_random_bytes_is_one_clear_line_and_exit_1(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    (tmp_path / "dikkat.db").write_bytes(os.urandom(8192))
    env = environment(tmp_path, prepared_model_dir)
    for args in (["ask", "/sort CBABBC"], ["run", "--check"]):
        done = dikkat(args, env, tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"cannot open the database {tmp_path / 'dikkat.db'}" in done.stderr
        assert "restore a backup or set DIKKAT_DB_PATH" in done.stderr
    assert done.stderr.startswith("check failed:")


async def test_a_revoked_telegram_token_is_named_but_never_printed(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    async def unauthorized(request: web.Request) -> web.Response:
        body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
        return web.json_response(body, status=401)

    api = web.Application()
    api.router.add_post("/bot{token}/{method}", unauthorized)
    runner = web.AppRunner(api)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    env = environment(
        tmp_path,
        prepared_model_dir,
        DIKKAT_TELEGRAM_TOKEN=TOKEN,
        DIKKAT_TELEGRAM_API_URL=f"http://127.0.0.1:{port}/bot",
        DIKKAT_HTTP_PORT="0",
        DIKKAT_LOG_LEVEL="DEBUG",
    )
    try:
        done = await asyncio.to_thread(dikkat, ["run"], env, tmp_path)
    finally:
        await runner.cleanup()
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-2000:]
    assert "Telegram rejected the token (401 Unauthorized): check DIKKAT_TELEGRAM_TOKEN" in output
    assert TOKEN not in output and TOKEN.split(":")[1] not in output


def test_run_without_a_token_or_any_input_says_what_to_set_and_exits_2(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dikkat", "run"],
        env=environment(tmp_path, prepared_model_dir),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "DIKKAT_TELEGRAM_TOKEN" in done.stderr and "Traceback" not in done.stderr
    piped = subprocess.run(
        [sys.executable, "-m", "dikkat", "run"],
        env=environment(tmp_path, prepared_model_dir),
        cwd=tmp_path,
        input="/sort CBABBC\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert piped.returncode == 0 and "ABBBCC" in piped.stdout


def sigterm_once_logged(env: dict[str, str], cwd: Path, *words: str) -> tuple[int, str]:
    """`dikkat run` (its input left open, as a console's), SIGTERM once a log line has one of
    `words`; its exit code and everything it logged."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dikkat", "run"],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in process.stderr:
            seen.append(line)
            if any(word in line for word in words):
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return process.returncode, "".join(seen) + stderr


def test_sigterm_during_start_up_is_a_clean_exit(tmp_path: Path) -> None:
    """SIGTERM while the encoder is being prepared (a fresh model dir: several seconds)."""
    env = environment(tmp_path, tmp_path / "fresh-models", DIKKAT_LOG_LEVEL="INFO")
    code, stderr = sigterm_once_logged(env, tmp_path, "sorter", "encoder", "building")
    assert code == 0, stderr[-2000:]
    assert "stopped during start-up" in stderr and "Traceback" not in stderr


# `dikkat run` with SIGTERM sent to itself while its modules load, before any event loop runs:
# load_settings is called right after the heavy imports, so the signal always lands in that gap.
SIGTERM_WHILE_IMPORTING = """
import os, signal, sys
import dikkat.cli.serve as serve
original = serve.load_settings
def load_after_a_stop(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)
serve.load_settings = load_after_a_stop
from dikkat.cli import app
app(["run"], prog_name="dikkat")
"""


def test_sigterm_before_the_event_loop_runs_is_a_clean_exit(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_WHILE_IMPORTING],
        env=environment(tmp_path, prepared_model_dir, DIKKAT_LOG_LEVEL="INFO"),
        cwd=tmp_path,
        stdin=subprocess.PIPE,  # open: a started console would wait here for input
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped during start-up" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_to_a_waiting_console_is_a_clean_exit(
    tmp_path: Path, prepared_model_dir: Path
) -> None:
    env = environment(tmp_path, prepared_model_dir, DIKKAT_LOG_LEVEL="INFO")
    code, stderr = sigterm_once_logged(env, tmp_path, "starting the console")
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stderr
