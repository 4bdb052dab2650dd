"""The console frontend through real subprocesses, as a person or a script would use it."""

import asyncio
import io
import os
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest

from dikkat.bot.console import ConsoleFrontend

DIKKAT = [sys.executable, "-m", "dikkat"]


@pytest.fixture
def model_dir(prepared_model_dir: Path) -> Path:
    return prepared_model_dir


def run(
    args: list[str], tmp_path: Path, model_dir: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIKKAT_")}
    env.update(DIKKAT_DB_PATH=str(tmp_path / "d.db"), DIKKAT_MODEL_DIR=str(model_dir))
    env.update(HF_HUB_OFFLINE="1")  # tests talk to 127.0.0.1 only: no hub probe
    return subprocess.run(
        DIKKAT + args,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def test_ask_sorts(tmp_path: Path, model_dir: Path) -> None:
    done = run(["ask", "/sort CBABBC"], tmp_path, model_dir)
    assert done.returncode == 0, done.stderr
    assert "ABBBCC" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("message", ["/sort ABCD", "/sort XYZXYZ"])
def test_ask_with_bad_input_prints_usage_and_exits_zero(
    tmp_path: Path, model_dir: Path, message: str
) -> None:
    done = run(["ask", message], tmp_path, model_dir)
    assert done.returncode == 0
    assert "/sort CBABBC" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_console_answers_all_729_lines_from_a_pipe(tmp_path: Path, model_dir: Path) -> None:
    inputs = ["".join(p) for p in product("ABC", repeat=6)]
    done = run(["console"], tmp_path, model_dir, stdin="".join(f"/sort {s}\n" for s in inputs))
    assert done.returncode == 0, done.stderr
    answers = [line for line in done.stdout.splitlines() if "→" in line]
    assert len(answers) == 729
    for letters, line in zip(inputs, answers, strict=True):
        assert line.endswith(f"{letters} → {''.join(sorted(letters))}")


def test_ask_takes_a_message_that_starts_with_a_dash_and_answers_an_empty_one(
    tmp_path: Path, model_dir: Path
) -> None:
    dash = run(["ask", "-5 puan verdim, berbat"], tmp_path, model_dir)
    assert dash.returncode == 0, dash.stderr
    assert "Olumsuz" in dash.stdout and "No such option" not in dash.stderr
    empty = run(["ask", ""], tmp_path, model_dir)
    assert empty.returncode == 0 and "/sort CBABBC" in empty.stdout


async def test_the_console_prints_a_retrain_result_when_it_comes(bot, tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleFrontend(bot.router, image_dir=tmp_path / "images", out=out)
    reply = await console.answer("/retrain")
    assert "#1" in reply
    async with asyncio.timeout(120):  # only a hang: a retrain takes seconds
        while "Yeniden eğitim #1" not in out.getvalue():
            await asyncio.sleep(0.05)
    assert "Makro-F1" in out.getvalue()
