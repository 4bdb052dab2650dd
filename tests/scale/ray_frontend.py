"""A frontend process of the Ray scenario: RayBackend.connect, N concurrent /sentiment calls."""

from __future__ import annotations

import asyncio
import json
import sys

from dikkat.config import Settings
from dikkat.scale.ray_backend import RayBackend


async def main(texts: list[str], concurrency: int) -> dict:
    backend = await RayBackend.connect(Settings())
    limit = asyncio.Semaphore(concurrency)

    async def one(text: str) -> dict[str, float]:
        async with limit:
            return (await backend.sentiment(text)).probabilities

    probabilities = await asyncio.gather(*(one(text) for text in texts))
    await backend.close()
    return {
        "probabilities": probabilities,
        "served_by": dict(backend.served_by),
        "batch_sizes": backend.batch_sizes,
    }


if __name__ == "__main__":
    texts = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(main(texts, int(sys.argv[1])))))
