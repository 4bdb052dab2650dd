"""The Telegram frontend: handlers, the webhook receiver with its ledger, and the lifecycle."""

from dikkat.bot.telegram.handlers import PLATFORM, TelegramFrontend, build_telegram
from dikkat.bot.telegram.lifecycle import run_telegram, start_telegram, stop_telegram
from dikkat.bot.telegram.webhook import (
    ALLOWED_UPDATES,
    register_webhook,
    webhook_receiver,
    webhook_secret,
)

__all__ = [
    "ALLOWED_UPDATES",
    "PLATFORM",
    "TelegramFrontend",
    "build_telegram",
    "register_webhook",
    "run_telegram",
    "start_telegram",
    "stop_telegram",
    "webhook_receiver",
    "webhook_secret",
]
