"""Shared by the commands: settings and logging, running a coroutine, one-line failures."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from dikkat.config import Settings
from dikkat.logs import configure_logging

stdout = Console()


def load_settings(quiet: bool | None = False) -> Settings:
    """Load settings and configure logging.

    Console modes log warnings only unless DIKKAT_LOG_LEVEL is set; `quiet=None` means quiet
    exactly when no chat token is configured (the console will run).
    """
    try:
        settings = Settings()
    except ValueError as error:
        typer.echo(f"Invalid configuration: {error}", err=True)
        raise typer.Exit(2) from error
    if quiet is None:
        quiet = settings.console()
    level = settings.log_level
    if quiet and "DIKKAT_LOG_LEVEL" not in os.environ:
        level = "WARNING"
    configure_logging(level, settings.log_format, settings.secrets(), settings.debug_loggers)
    return settings


def run_async(coroutine, settings: Settings) -> None:
    """asyncio.run; Ctrl-C ends quietly, any other failure is one secret-free line and exit 1."""
    try:
        asyncio.run(coroutine)
    except KeyboardInterrupt:
        typer.echo("", err=True)
    except Exception as error:
        logging.getLogger("dikkat").debug("stopped by an error", exc_info=True)
        typer.echo(failure_line(error, settings), err=True)
        raise typer.Exit(1) from None


def failure_line(error: BaseException, settings: Settings) -> str:
    """What went wrong, in one line, with every configured secret replaced by *****."""
    from dikkat.logs import redact

    name = type(error).__name__
    if name == "InvalidToken" or (name == "Forbidden" and "token" in str(error).lower()):
        line = "Telegram rejected the token (401 Unauthorized): check DIKKAT_TELEGRAM_TOKEN"
    elif name == "LoginFailure":
        line = "Discord rejected the token (401 Unauthorized): check DIKKAT_DISCORD_TOKEN"
    else:
        detail = " ".join(str(error).split()) or name
        line = (
            f"Dikkat stopped: {detail}"
            if name.endswith("Error")
            else f"Dikkat stopped: {name}: {detail}"
        )
    return redact(line, settings.secrets())


def no_input() -> bool:
    """stdin is closed or the null device (a container started without -i or a token)."""
    import stat

    if sys.stdin is None or sys.stdin.closed:
        return True
    try:
        here, null = os.fstat(sys.stdin.fileno()), os.stat(os.devnull)
    except (OSError, ValueError):
        return True
    return stat.S_ISCHR(here.st_mode) and here.st_rdev == null.st_rdev


def encoder_for(settings: Settings):
    from dikkat.models.loading import load_encoder

    return load_encoder(settings.sentiment_encoder, **settings.encoder_options())


def served_head(settings: Settings, encoder) -> tuple[Path | None, str]:
    """The active head version for this encoder in the database, else the shipped file."""
    from dikkat.app import open_store
    from dikkat.models.head import default_head_path
    from dikkat.training.heads import head_file

    async def active():
        store = await open_store(settings)
        try:
            version = await store.active_version(encoder.feature_key)
            return None if version is None else (version, await head_file(store, version))
        finally:
            await store.close()

    in_use = settings.database_url is not None or Path(settings.db_path).is_file()
    found = asyncio.run(active()) if in_use else None
    if found is not None:
        version, path = found
        return path, f"active #{version.id} ({version.source})"
    shipped = default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
    if shipped is None:
        return None, "none"
    return shipped, f"shipped {shipped.name} (no active head in {settings.db_path} yet)"
