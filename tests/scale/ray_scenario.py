"""Inside a loopback-only namespace: the local path, then 2 Ray Serve replicas fed by 2 frontend
processes; prints one JSON line with what the test checks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from netns import ray_head

from dikkat.app import App
from dikkat.config import Settings
from dikkat.training.data import load_labelled_csv, seed_corpus_path

HERE = Path(__file__).parent
REQUESTS_PER_FRONTEND = 200


async def local_probabilities(texts: list[str]) -> list[dict[str, float]]:
    """The in-process path (it also installs the shipped head the replicas will serve)."""
    async with App(Settings(role="all")) as app:
        assert app.service is not None
        return [(await app.service.sentiment(text)).probabilities for text in texts]


def main() -> dict:
    texts = load_labelled_csv(seed_corpus_path())["text"].tolist()[: 2 * REQUESTS_PER_FRONTEND]
    local = asyncio.run(local_probabilities(texts))
    with ray_head(num_cpus=2) as address:
        os.environ["DIKKAT_RAY_ADDRESS"] = address
        import ray
        from ray import serve

        from dikkat.ray_replicas import build_app

        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        serve.start(proxy_location="Disabled")
        serve.run(build_app(), name="dikkat", route_prefix=None)
        halves = [texts[:REQUESTS_PER_FRONTEND], texts[REQUESTS_PER_FRONTEND:]]
        frontends = [
            subprocess.Popen(
                [sys.executable, str(HERE / "ray_frontend.py"), "16"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for _ in halves
        ]
        outputs = [
            json.loads(proc.communicate(json.dumps(half), timeout=300)[0].splitlines()[-1])
            for proc, half in zip(frontends, halves, strict=True)
        ]
        serve.shutdown()
        ray.shutdown()
    remote = [p for output in outputs for p in output["probabilities"]]
    served_by: dict[str, int] = {}
    for output in outputs:
        for replica, count in output["served_by"].items():
            served_by[replica] = served_by.get(replica, 0) + count
    batch_sizes = [size for output in outputs for size in output["batch_sizes"]]
    return {
        "answers": len(remote),
        "max_difference": max(
            abs(a[label] - b[label]) for a, b in zip(local, remote, strict=True) for label in a
        ),
        "served_by": served_by,
        "mean_batch": sum(batch_sizes) / len(batch_sizes),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
