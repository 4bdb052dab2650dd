"""The small HTTP server: /healthz, /metrics and, in webhook mode, the Telegram webhook."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from dikkat.aio import InFlight

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
# Returns the HTTP status to answer (None: 200); raising means a malformed update (400).
WebhookHandler = Callable[[dict[str, Any]], Awaitable[int | None]]
TELEGRAM_WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class HttpServer:
    """aiohttp server on one port; start() and stop() run inside the bot's event loop."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        health: HealthCheck,
        telegram_webhook: WebhookHandler | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._health = health
        self._webhook = telegram_webhook
        self._secret = webhook_secret
        self._runner: web.AppRunner | None = None
        self._webhooks = InFlight()

    async def start(self) -> None:
        """Bind the port and serve."""
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self._webhook is not None:
            app.router.add_post(TELEGRAM_WEBHOOK_PATH, self._telegram)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0 and site._server is not None:  # tests ask for any free port
            self.port = site._server.sockets[0].getsockname()[1]
        log.info("http server listening on %s:%d", self.host, self.port)

    async def drain_webhook(self, timeout: float) -> int:
        """Refuse new webhook updates (503: Telegram sends them again, to this bot once it is
        back or to another replica) and wait for those in flight, at most `timeout` seconds;
        the number still in flight then. /healthz and /metrics keep answering."""
        return await self._webhooks.drain(timeout)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            healthy, detail = await self._health()
        except Exception as error:  # a failing check is an unhealthy service, not a 500
            healthy, detail = False, {"error": type(error).__name__}
        return web.json_response({"ok": healthy, **detail}, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _telegram(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if self._secret and not hmac.compare_digest(given, self._secret.encode("utf-8")):
            return web.Response(status=403)
        try:
            payload = await request.json()
        except ValueError:
            return web.Response(status=400)
        if not isinstance(payload, dict) or type(payload.get("update_id")) is not int:
            return web.Response(status=400)
        if not 0 <= payload["update_id"] < 2**63:  # what a database integer column holds
            return web.Response(status=400)
        assert self._webhook is not None
        if self._webhooks.draining:
            return web.Response(status=503)
        try:
            with self._webhooks.track():
                status = await self._webhook(payload)
        except Exception as error:  # a malformed update is the sender's problem, not a 500
            log.warning("webhook update %s refused: %s", payload["update_id"], type(error).__name__)
            return web.Response(status=400)
        # The handler processed the update before this answer: a non-2xx makes Telegram (or a
        # proxy in front of several replicas) send it again.
        return web.Response(status=200 if status is None else status)
