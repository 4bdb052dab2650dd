"""`dikkat telegram`: register the webhook once for every replica behind one URL."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

telegram_app = typer.Typer(
    help="Telegram: the webhook shared by several replicas.",
    no_args_is_help=True,
    add_completion=False,
)


@telegram_app.callback()
def telegram() -> None:
    """Telegram: the webhook shared by several replicas."""


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
    from dikkat.serve import register_telegram_webhook

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
            register_telegram_webhook(
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
