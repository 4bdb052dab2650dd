"""`dikkat telegram`: register the webhook once for every replica behind one URL."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

import typer

# What the Telegram adapter (dikkat/bot/telegram.py) asks for and checks; repeated here because
# only the composition root may import an adapter (tests/unit/test_layers.py); a test in
# tests/e2e/test_telegram.py keeps both equal.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


def webhook_secret(settings: Any) -> str:
    """The configured webhook secret, else the one the adapter derives from the token."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    token = settings.telegram_token.get_secret_value().encode()
    return hashlib.sha256(b"dikkat-webhook:" + token).hexdigest()


telegram_app = typer.Typer(
    help="Telegram: the webhook shared by several replicas.",
    no_args_is_help=True,
    add_completion=False,
)


@telegram_app.callback()
def telegram() -> None:
    """Telegram: the webhook shared by several replicas."""


async def register_webhook(
    settings: Any,
    *,
    max_connections: int = 40,
    drop_pending_updates: bool = False,
    request: Any = None,
) -> Any:
    """Bot.set_webhook with the URL and secret of the settings; the WebhookInfo after it.
    `request` replaces the network (tests)."""
    from telegram import Bot

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
        await bot.set_webhook(
            url=settings.telegram_webhook_url,
            secret_token=webhook_secret(settings),
            allowed_updates=ALLOWED_UPDATES,
            max_connections=max_connections,
            drop_pending_updates=drop_pending_updates,
        )
        return await bot.get_webhook_info()


@telegram_app.command("set-webhook")
def set_webhook(
    max_connections: Annotated[
        int,
        typer.Option(
            min=1,
            max=100,
            help="Updates Telegram delivers in parallel to the URL (all replicas together)",
        ),
    ] = 40,
    drop_pending_updates: Annotated[
        bool, typer.Option(help="Discard the updates waiting at Telegram")
    ] = False,
) -> None:
    """Register DIKKAT_TELEGRAM_WEBHOOK_URL (secret: DIKKAT_TELEGRAM_WEBHOOK_SECRET, else one
    derived from the token) once; replicas run with DIKKAT_TELEGRAM_REGISTER_WEBHOOK=false."""
    from dikkat.cli.common import failure_line, load_settings

    settings = load_settings(quiet=True)
    for name, value in (
        ("DIKKAT_TELEGRAM_TOKEN", settings.telegram_token),
        ("DIKKAT_TELEGRAM_WEBHOOK_URL", settings.telegram_webhook_url),
    ):
        if not value:
            typer.echo(f"cannot set the webhook: {name} is not set", err=True)
            raise typer.Exit(2)
    try:
        info = asyncio.run(
            register_webhook(
                settings,
                max_connections=max_connections,
                drop_pending_updates=drop_pending_updates,
            )
        )
    except Exception as error:  # one line, no traceback, no token
        typer.echo(failure_line(error, settings), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"webhook set: {info.url} (max_connections {info.max_connections}, "
        f"{info.pending_update_count} pending)"
    )
