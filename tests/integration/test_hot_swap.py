"""Hot swap of the sentiment head under load: no request lost, every result names its head."""

import asyncio
import copy
import threading

import pytest

from dikkat.models.head import SentimentHead

DEADLINE_S = 60  # only catches a hang


async def test_swapping_heads_under_load_loses_no_request(
    bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = bot.service
    texts = [f"Sipariş {i} geldi, ürün {'çok güzel' if i % 2 else 'berbat'}" for i in range(300)]
    original = service.sentiment_pipeline._active.head
    heads = {1: original}
    for version in (101, 102, 103):
        heads[version] = SentimentHead(original.dim).eval()

    # Swap while a batch is being encoded, with more requests queued behind it: batches 2, 4
    # and 6 (300 texts make at least 10 batches of 32) pause mid-encoding until the loop swapped.
    loop = asyncio.get_running_loop()
    encoder = service.sentiment_pipeline.encoder
    encode = encoder.encode_tokenized
    swap_batches = {2: 101, 4: 102, 6: 103}
    batch_running = {version: asyncio.Event() for version in swap_batches.values()}
    swapped = {version: threading.Event() for version in swap_batches.values()}
    interrupted: dict[int, list[str]] = {}  # texts of the batch running during each swap
    batches = 0

    def encode_with_swaps(items):
        nonlocal batches
        batches += 1
        version = swap_batches.get(batches)
        if version is not None:
            interrupted[version] = [item.text for item in items]
            loop.call_soon_threadsafe(batch_running[version].set)
            assert swapped[version].wait(DEADLINE_S), f"head {version} was never swapped in"
        return encode(items)

    monkeypatch.setattr(encoder, "encode_tokenized", encode_with_swaps)

    async def swap_during_batches() -> None:
        for version in swap_batches.values():
            await asyncio.wait_for(batch_running[version].wait(), DEADLINE_S)
            service.swap_head(copy.deepcopy(heads[version]), version)
            swapped[version].set()

    results, _ = await asyncio.wait_for(
        asyncio.gather(
            asyncio.gather(*(service.sentiment(text) for text in texts)), swap_during_batches()
        ),
        DEADLINE_S,
    )
    assert len(results) == 300
    assert {r.head_version for r in results} <= {1, 101, 102, 103}
    # a batch that was running during a swap finishes with, and names, the head it started with
    named = {text: result.head_version for text, result in zip(texts, results, strict=True)}
    for version, before in ((101, 1), (102, 101), (103, 102)):
        assert interrupted[version] and {named[text] for text in interrupted[version]} == {before}
    assert service.head_version == 103
    after = await service.sentiment("bir tane daha")
    assert after.head_version == 103
