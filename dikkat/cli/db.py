"""`dikkat db`: the shared database's schema (Alembic migrations over SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

DATABASE_URL_ENV = "DIKKAT_DATABASE_URL"

db_app = typer.Typer(
    help="The database: schema migrations.", no_args_is_help=True, add_completion=False
)


@db_app.callback()
def db() -> None:
    """The database: schema migrations (needs the `scale` extra)."""


def default_url() -> str:
    """DIKKAT_DATABASE_URL when set, else SQLite at the settings' DIKKAT_DB_PATH."""
    from dikkat.cli.common import load_settings

    settings = load_settings(quiet=True)
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from dikkat.storage.migrate import sqlite_url

    return sqlite_url(settings.db_path)


@db_app.command()
def upgrade(
    url: Annotated[
        str | None,
        typer.Option(help=f"SQLAlchemy URL (default: ${DATABASE_URL_ENV}, else DIKKAT_DB_PATH)"),
    ] = None,
) -> None:
    """Bring the schema to the newest revision; safe to run from several processes at once.

    A SQLite file made by an older Dikkat is adopted with every row kept."""
    try:
        from dikkat.storage.migrate import shown_url
        from dikkat.storage.migrate import upgrade as upgrade_database
    except ImportError as error:
        typer.echo(f"cannot upgrade: {error}; install dikkat[scale]", err=True)
        raise typer.Exit(2) from error
    target = url or default_url()
    shown = shown_url(target)
    try:
        revision = asyncio.run(upgrade_database(target))
    except Exception as error:  # one line, no traceback, no password
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        typer.echo(f"cannot upgrade {shown}: {message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{shown}: schema at revision {revision}")
