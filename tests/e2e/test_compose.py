"""The compose files are valid for Docker Compose v2 (`docker compose config`), when it is here."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> list[str] | None:
    """`docker compose` when the plugin answers, else a standalone v2 `docker-compose`."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version"], capture_output=True, text=True).stdout
        if "v2." in version:
            return [standalone]
    return None


@pytest.mark.parametrize("name", ["compose.yaml", "compose.scale.yaml"])
def test_compose_file_is_valid(name: str) -> None:
    compose = _compose()
    if compose is None:
        pytest.skip("Docker Compose v2 is not installed here (docker compose / docker-compose)")
    environment = {**os.environ, "POSTGRES_PASSWORD": "example"}
    checked = subprocess.run(
        [*compose, "-f", str(ROOT / name), "config", "-q"],
        capture_output=True, text=True, env=environment, cwd=ROOT,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
