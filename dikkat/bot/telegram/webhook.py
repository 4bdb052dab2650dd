"""Webhook updates: registration, the receiver the HTTP server calls, and its ledger of ids."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from telegram import Bot, Update

from dikkat.bot.telegram.handlers import TelegramFrontend
from dikkat.config import Settings

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
UPDATES_KEEP_S = 2 * 24 * 3600.0  # Telegram keeps an undelivered update for 24 hours
PRUNE_EVERY_S = 3600.0


class UpdateLedger(Protocol):
    """What the webhook receiver needs of the Store to process each update once."""

    async def record_telegram_update(self, update_id: int) -> bool: ...
    async def telegram_update_done(self, update_id: int) -> bool: ...
    async def finish_telegram_update(self, update_id: int) -> None: ...
    async def release_telegram_update(self, update_id: int) -> None: ...
    async def prune_telegram_updates(self, older_than_s: float) -> int: ...


def webhook_secret(settings: Settings) -> str:
    """The configured webhook secret, else one derived from the token (stable across restarts)."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    assert settings.telegram_token is not None
    token = settings.telegram_token.get_secret_value().encode()
    return hashlib.sha256(b"dikkat-webhook:" + token).hexdigest()


async def set_webhook(bot: Bot, settings: Settings, **options: Any) -> None:
    """Bot.set_webhook with the settings' URL and secret, and the update types handled here."""
    await bot.set_webhook(
        url=settings.telegram_webhook_url,
        secret_token=webhook_secret(settings),
        allowed_updates=ALLOWED_UPDATES,
        **options,
    )


async def register_webhook(
    settings: Settings,
    *,
    max_connections: int = 40,
    drop_pending_updates: bool = False,
    request: Any = None,
) -> Any:
    """`dikkat telegram set-webhook`: set_webhook once for every replica; the WebhookInfo
    after it. `request` replaces the network (tests)."""
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise ValueError("DIKKAT_TELEGRAM_TOKEN is not set")
    if not settings.telegram_webhook_url:
        raise ValueError("DIKKAT_TELEGRAM_WEBHOOK_URL is not set: the public URL of /telegram")
    bot = Bot(
        settings.telegram_token.get_secret_value(),
        base_url=settings.telegram_api_url,
        request=request,
    )
    async with bot:
        await set_webhook(
            bot,
            settings,
            max_connections=max_connections,
            drop_pending_updates=drop_pending_updates,
        )
        return await bot.get_webhook_info()


def webhook_receiver(
    frontend: TelegramFrontend, ledger: UpdateLedger | None = None
) -> Callable[[dict[str, Any]], Awaitable[int]]:
    """What the HTTP server calls with each webhook payload; it returns the HTTP status.

    The update is processed before the answer (so a crash makes Telegram send it again, and
    one chat's updates are handled in order). With a `ledger` (the App passes its store)
    each update_id is processed once across every replica sharing the database:

    - 200: processed now, or a re-sent duplicate of one already processed;
    - 409: a duplicate that another replica (or this one) is still processing: Telegram sends
      it again later, and then it is done, or its claim is taken over if that process died;
    - 503: processing failed and the user could not be told (the Bot API was unreachable, the
      database failed): the claim is released and the re-sent update is processed again.

    A handler failure whose polite "something went wrong" reached the user counts as answered
    (200): a re-send would only repeat it. A payload that is not an Update raises (400).
    """
    pruned_at = time.monotonic()

    async def receive(payload: dict[str, Any]) -> int:
        nonlocal pruned_at
        update = Update.de_json(payload, frontend.application.bot)
        if ledger is None:
            return 200 if await _answered(frontend, update) else 503
        update_id = update.update_id
        try:
            if not await ledger.record_telegram_update(update_id):
                if await ledger.telegram_update_done(update_id):
                    log.info("Telegram update %d was re-sent: already answered", update_id)
                    return 200
                return 409
        except Exception as error:
            log.warning("Telegram update %d: the database failed: %r", update_id, error)
            return 503
        processed = False
        try:
            processed = await _answered(frontend, update)
        finally:
            try:
                if processed:
                    await ledger.finish_telegram_update(update_id)
                else:
                    await ledger.release_telegram_update(update_id)
            except Exception as error:  # the claim expires by itself (TELEGRAM_CLAIM_S)
                log.warning("Telegram update %d: the database failed: %r", update_id, error)
                processed = False
        if time.monotonic() - pruned_at > PRUNE_EVERY_S:
            pruned_at = time.monotonic()
            with contextlib.suppress(Exception):
                await ledger.prune_telegram_updates(UPDATES_KEEP_S)
        return 200 if processed else 503

    return receive


async def _answered(frontend: TelegramFrontend, update: Update) -> bool:
    """Process one update; False (logged) when it failed and nobody was told."""
    if await frontend.process(update):
        return True
    log.warning("Telegram update %d failed unanswered: it will be re-sent", update.update_id)
    return False
