"""Hot swap of the sentiment head under load: no request lost, every result names its head."""

import asyncio
import copy

from dikkat.models.head import SentimentHead


async def test_swapping_heads_under_load_loses_no_request(bot) -> None:
    service = bot.service
    texts = [f"Sipariş {i} geldi, ürün {'çok güzel' if i % 2 else 'berbat'}" for i in range(300)]
    original = service.sentiment_pipeline._active.head
    heads = {1: original}
    for version in (101, 102, 103):
        heads[version] = SentimentHead(original.dim).eval()

    async def swap_repeatedly() -> None:
        for version in (101, 102, 103):
            await asyncio.sleep(0.05)
            service.swap_head(copy.deepcopy(heads[version]), version)

    results, _ = await asyncio.gather(
        asyncio.gather(*(service.sentiment(text) for text in texts)), swap_repeatedly()
    )
    assert len(results) == 300
    assert {r.head_version for r in results} <= {1, 101, 102, 103}
    assert service.head_version == 103
    after = await service.sentiment("bir tane daha")
    assert after.head_version == 103
