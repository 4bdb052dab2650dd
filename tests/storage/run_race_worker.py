"""One process of the start-run race: N concurrent `start_run`s released at one instant.

Usage: python run_race_worker.py URL ATTEMPTS START_AT checked|index_only
Prints {"won": [...], "refused": n, "other": [...]} and waits for a line on stdin before it
closes (so its running run's owner stays alive while the other process still tries).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from dikkat.storage import coordination
from dikkat.storage.records import RunInProgress
from dikkat.storage.store import Store


async def race(url: str, attempts: int, start_at: float, mode: str) -> None:
    store = await Store.open(url, upgrade=False, pool_size=10)
    if mode == "index_only":  # skip the SELECT: only the partial unique index stands in the way

        async def sees_nothing(db: object, slot: object) -> None:
            return None

        coordination._refusal = sees_nothing
    await asyncio.gather(*(store.ping() for _ in range(10)))  # warm the pool
    await asyncio.sleep(max(0.0, start_at - time.time()))
    results = await asyncio.gather(
        *(store.start_run("race", str(i)) for i in range(attempts)), return_exceptions=True
    )
    print(
        json.dumps(
            {
                "won": [r for r in results if isinstance(r, int)],
                "refused": sum(isinstance(r, RunInProgress) for r in results),
                "other": [
                    repr(r)
                    for r in results
                    if isinstance(r, Exception) and not isinstance(r, RunInProgress)
                ],
            }
        ),
        flush=True,
    )
    await asyncio.to_thread(sys.stdin.readline)
    await store.close()


if __name__ == "__main__":
    asyncio.run(race(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
