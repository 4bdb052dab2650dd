"""One process of the shared-work races: concurrent claims released at one instant.

Usage: python shared_work_worker.py URL START_AT updates|requests N
`updates`: N concurrent `record_telegram_update(i)` for i in 0..N-1 (in an order of its own),
each claimed one finished at once; `requests`: N concurrent takers that each call
`take_retrain_request` until None.
Prints {"claimed": [...]} (the update ids or request ids this process got).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time

from dikkat.storage.store import Store


async def race(url: str, start_at: float, mode: str, n: int) -> None:
    store = await Store.open(url, upgrade=False, pool_size=10)
    await asyncio.gather(*(store.ping() for _ in range(10)))  # warm the pool
    await asyncio.sleep(max(0.0, start_at - time.time()))
    claimed: list[int] = []
    if mode == "updates":

        async def claim(update_id: int) -> None:
            if await store.record_telegram_update(update_id):
                claimed.append(update_id)
                await store.finish_telegram_update(update_id)

        order = list(range(n))
        random.Random(os.getpid()).shuffle(order)  # the two processes meet everywhere
        await asyncio.gather(*(claim(i) for i in order))
    else:

        async def taker() -> None:
            while (request := await store.take_retrain_request()) is not None:
                claimed.append(request[0])

        await asyncio.gather(*(taker() for _ in range(n)))
    print(json.dumps({"claimed": claimed}), flush=True)
    await store.close()


if __name__ == "__main__":
    url, start, mode, count = sys.argv[1:5]
    asyncio.run(race(url, float(start), mode, int(count)))
