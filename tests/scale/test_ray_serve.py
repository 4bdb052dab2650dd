"""The inference role on Ray Serve, proven on one machine inside a loopback-only namespace."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from netns import netns_unavailable_reason, ray_unavailable_reason, run_in_netns

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def isolated() -> None:
    reason = ray_unavailable_reason() or netns_unavailable_reason()
    if reason:
        pytest.skip(reason)


def test_two_replicas_serve_two_frontends_like_the_local_path(isolated, tmp_path: Path) -> None:
    environment = {
        "DIKKAT_DB_PATH": str(tmp_path / "dikkat.db"),
        "DIKKAT_MODEL_DIR": str(tmp_path / "models"),
        "DIKKAT_SENTIMENT_ENCODER": "minilm",
        "DIKKAT_DEVICE": "cpu",
        "DIKKAT_RAY_REPLICAS": "2",
        "DIKKAT_RAY_REPLICA_CPUS": "0.5",
        "DIKKAT_HEAD_POLL_S": "0",
        "DIKKAT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(HERE),
    }
    proc = run_in_netns(
        [sys.executable, str(HERE / "ray_scenario.py")], timeout=420, env=environment
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["answers"] == 400
    assert result["max_difference"] <= 1e-5
    assert len(result["served_by"]) == 2 and min(result["served_by"].values()) > 0
    assert result["mean_batch"] > 1
