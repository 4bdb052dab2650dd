"""/healthz, /metrics and the webhook endpoint of the HTTP server."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from dikkat.http import SECRET_HEADER, TELEGRAM_WEBHOOK_PATH, HttpServer


async def healthy() -> tuple[bool, dict[str, Any]]:
    return True, {"models": "loaded"}


async def unhealthy() -> tuple[bool, dict[str, Any]]:
    return False, {"database": "unreachable"}


async def broken() -> tuple[bool, dict[str, Any]]:
    raise RuntimeError("boom")


@asynccontextmanager
async def webhook_url(webhook) -> AsyncIterator[str]:
    """A running server with secret 's3' that hands webhook payloads to `webhook`; its URL."""
    server = HttpServer(
        host="127.0.0.1", port=0, health=healthy, telegram_webhook=webhook, webhook_secret="s3"
    )
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}{TELEGRAM_WEBHOOK_PATH}"
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("check", "status", "ok"), [(healthy, 200, True), (unhealthy, 503, False), (broken, 503, False)]
)
async def test_healthz(check, status: int, ok: bool) -> None:
    server = HttpServer(host="127.0.0.1", port=0, health=check)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                assert response.status == status
                assert (await response.json())["ok"] is ok
    finally:
        await server.stop()


async def test_metrics_are_prometheus_text() -> None:
    import dikkat.inference.metrics  # noqa: F401  (registers the batcher metrics)

    server = HttpServer(host="127.0.0.1", port=0, health=healthy)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                assert "dikkat_batch_size" in await response.text()
    finally:
        await server.stop()


async def test_webhook_checks_the_secret_token() -> None:
    received: list[dict[str, Any]] = []

    async def webhook(payload: dict[str, Any]) -> None:
        received.append(payload)

    async with webhook_url(webhook) as url:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"update_id": 1}) as response:
                assert response.status == 403
            async with session.post(url, data="not json", headers={SECRET_HEADER: "s3"}) as r:
                assert r.status == 400
            async with session.post(url, json={"update_id": 2}, headers={SECRET_HEADER: "s3"}) as r:
                assert r.status == 200
    assert received == [{"update_id": 2}]


async def test_webhook_refuses_odd_secrets_and_bodies_without_a_500() -> None:
    async def webhook(payload: dict[str, Any]) -> None:
        if "message" in payload:
            raise ValueError("malformed message")

    async with webhook_url(webhook) as url:
        async with aiohttp.ClientSession() as session:
            raw_header = {SECRET_HEADER: "şifre".encode().decode("latin-1")}
            async with session.post(url, json={"update_id": 1}, headers=raw_header) as r:
                assert r.status == 403
            for body in (
                "null",
                "[]",
                '"x"',
                "{}",
                '{"update_id": "x"}',
                '{"update_id": 1.5}',
                '{"update_id": 99999999999999999999999}',
                '{"update_id": -1}',
            ):
                headers = {SECRET_HEADER: "s3", "Content-Type": "application/json"}
                async with session.post(url, data=body, headers=headers) as r:
                    assert r.status == 400, body
            bad = {"update_id": 3, "message": {"chat": "?"}}
            async with session.post(url, json=bad, headers={SECRET_HEADER: "s3"}) as r:
                assert r.status == 400


async def test_a_stop_refuses_new_updates_and_waits_for_those_in_flight() -> None:
    HANG_S = 60  # only a hang takes this long
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(payload: dict[str, Any]) -> int:
        entered.set()
        await release.wait()
        return 200

    server = HttpServer(
        host="127.0.0.1", port=0, health=healthy, telegram_webhook=slow, webhook_secret="s3"
    )
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession(headers={SECRET_HEADER: "s3"}) as session:
            in_flight = asyncio.ensure_future(
                session.post(url + TELEGRAM_WEBHOOK_PATH, json={"update_id": 1})
            )
            await asyncio.wait_for(entered.wait(), HANG_S)
            draining = asyncio.ensure_future(server.drain_webhook(HANG_S))
            async with session.post(url + TELEGRAM_WEBHOOK_PATH, json={"update_id": 2}) as late:
                assert late.status == 503  # Telegram sends it again later
            async with session.get(url + "/healthz") as health:
                assert health.status == 200
            assert not draining.done()
            release.set()
            assert await asyncio.wait_for(draining, HANG_S) == 0
            async with await asyncio.wait_for(in_flight, HANG_S) as answered:
                assert answered.status == 200
    finally:
        await server.stop()
