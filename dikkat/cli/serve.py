"""Running the bot: run, console, ask, doctor, healthcheck."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.table import Table

from dikkat.cli.apps import app
from dikkat.cli.common import (
    failure_line,
    load_settings,
    no_input,
    run_async,
    stdout,
)
from dikkat.config import Settings
from dikkat.stopping import catch_early


@app.command()
def run(
    check: Annotated[
        bool, typer.Option("--check", help="load configuration, models and database, then exit")
    ] = False,
) -> None:
    """Start every frontend that has a token; the console when none is configured."""
    if not check:
        catch_early()  # a stop while modules and models load is a clean exit, not a kill
    from dikkat.app import check as check_app
    from dikkat.serve import serve

    if check:
        settings = load_settings(quiet=True)
        try:
            found = asyncio.run(check_app(settings))
        except Exception as error:
            typer.echo(f"check failed: {failure_line(error, settings)}", err=True)
            raise typer.Exit(1) from None
        for key, value in found.items():
            typer.echo(f"{key}: {value}")
        raise typer.Exit(0 if found["healthy"] else 1)
    settings = load_settings(quiet=None)
    if settings.console() and no_input():
        typer.echo(
            "No chat token is configured and there is no input to chat with: set "
            "DIKKAT_TELEGRAM_TOKEN and/or DIKKAT_DISCORD_TOKEN (e.g. in .env, see the README), "
            "or run `dikkat console` in a terminal.",
            err=True,
        )
        raise typer.Exit(2)
    if settings.role == "inference":
        from dikkat.ray_replicas import deploy_replicas

        run_async(deploy_replicas(settings), settings)
        return
    run_async(serve(settings), settings)


async def _console(settings: Settings, lines: list[str] | None = None) -> None:
    from dikkat.app import App
    from dikkat.bot.console import ConsoleFrontend

    async with App(settings) as running:
        assert running.router is not None
        frontend = ConsoleFrontend(running.router, image_dir=settings.db_path.parent / "images")
        if lines is None:
            await frontend.run()
            return
        for line in lines:
            rendered = await frontend.answer(line)
            if rendered is not None:
                typer.echo(rendered)


@app.command()
def console() -> None:
    """Chat with the bot in this terminal (or answer each line piped on stdin)."""
    settings = load_settings(quiet=True)
    run_async(_console(settings), settings)


@app.command(context_settings={"ignore_unknown_options": True})
def ask(message: Annotated[str, typer.Argument(help='e.g. "/sort CBABBC"')]) -> None:
    """Send one message to the bot and print its answer (an empty one gets the usage text)."""
    settings = load_settings(quiet=True)
    run_async(_console(settings, [message if message.strip() else "/help"]), settings)


@app.command()
def doctor() -> None:
    """Print the resolved configuration (secrets masked) and what was found."""
    settings = load_settings(quiet=True)
    table = Table(title="Dikkat configuration", show_header=True)
    table.add_column("key")
    table.add_column("value")
    for key, value in settings.masked().items():
        table.add_row(f"DIKKAT_{key.upper()}", str(value))
    stdout.print(table)

    import torch

    from dikkat.models.sorter import default_checkpoint_path

    checkpoint = default_checkpoint_path()
    stdout.print(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"cuda available: {torch.cuda.is_available()}"
    )
    stdout.print(
        f"sorter checkpoint: {checkpoint} ({'found' if checkpoint.exists() else 'MISSING'})"
    )


@app.command()
def healthcheck(
    timeout: Annotated[float, typer.Option(help="seconds to wait for an answer")] = 3.0,
) -> None:
    """Ask the running bot's /healthz (exit 0 when healthy): the container's HEALTHCHECK."""
    import urllib.error
    import urllib.request

    settings = load_settings(quiet=True)
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    url = f"http://{host}:{settings.http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            typer.echo(response.read().decode())
    except urllib.error.HTTPError as error:
        typer.echo(f"unhealthy: {error.code} {error.read().decode()}", err=True)
        raise typer.Exit(1) from error
    except OSError as error:
        typer.echo(f"no answer from {url}: {error}", err=True)
        raise typer.Exit(1) from error
