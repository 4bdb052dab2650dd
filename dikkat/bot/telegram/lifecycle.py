"""Start, serve and stop a Telegram Application: polling, or a webhook the HTTP server feeds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram.ext import Application

from dikkat.bot.telegram.webhook import ALLOWED_UPDATES, set_webhook
from dikkat.config import Settings

log = logging.getLogger(__name__)

WebhookDrain = Callable[[float], Awaitable[int]]


async def start_telegram(app: Application, settings: Settings) -> None:
    """Initialise, set the command menu, start polling (or register the webhook, unless
    `telegram_register_webhook` is False: a replica behind one URL), handle."""
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    if settings.telegram_webhook_url and settings.telegram_register_webhook:
        await set_webhook(app.bot, settings)
        log.info("Telegram webhook registered; updates arrive on the HTTP server's /telegram")
    elif settings.telegram_webhook_url:  # one of several replicas: registered once elsewhere
        log.info(
            "Telegram webhook mode without registering (`dikkat telegram set-webhook` does it "
            "once); updates arrive on the HTTP server's /telegram"
        )
    else:
        await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        log.info("Telegram polling as @%s", app.bot.username)
    await app.start()


async def stop_telegram(
    app: Application, drain_s: float, webhook_drain: WebhookDrain | None = None
) -> None:
    """Stop receiving (polling ends; the webhook answers 503 to new updates), deliver the
    answers in flight (at most `drain_s` each way), then release the HTTP clients."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if webhook_drain is not None:
        left = await webhook_drain(drain_s)
        if left:
            log.warning("Telegram: %d webhook update(s) in flight after %.0f s", left, drain_s)
    if app.running:
        try:
            async with asyncio.timeout(drain_s):
                await app.stop()  # waits for the updates being handled
        except TimeoutError:
            log.warning("Telegram: answers still in flight after %.0f s; closing", drain_s)
    await app.shutdown()


async def run_telegram(
    app: Application,
    settings: Settings,
    stop_event: asyncio.Event,
    webhook_drain: WebhookDrain | None = None,
) -> None:
    """Serve Telegram until `stop_event` is set, then stop gracefully."""
    try:
        await start_telegram(app, settings)
        await stop_event.wait()
    finally:
        await stop_telegram(app, settings.drain_s, webhook_drain)
