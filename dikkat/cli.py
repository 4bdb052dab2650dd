"""The `dikkat` command line (Typer)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dikkat.config import Settings
from dikkat.logs import configure_logging

app = typer.Typer(
    help="Dikkat: Turkish sentiment, a letter-sorting nano-GPT and self-attention, in chat.",
    no_args_is_help=True,
    add_completion=False,
)
train_app = typer.Typer(help="Train the models.", no_args_is_help=True)
app.add_typer(train_app, name="train")

stdout = Console()


def _settings(quiet: bool = False) -> Settings:
    """Load settings and configure logging; console modes log warnings only unless asked."""
    try:
        settings = Settings()
    except ValueError as error:
        typer.echo(f"Invalid configuration: {error}", err=True)
        raise typer.Exit(2) from error
    level = settings.log_level
    if quiet and "DIKKAT_LOG_LEVEL" not in os.environ:
        level = "WARNING"
    configure_logging(level, settings.log_format, settings.secrets())
    return settings


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
def run() -> None:
    """Start every frontend that has a token; the console when none is configured."""
    settings = _settings(quiet=True)
    asyncio.run(_console(settings))


@app.command()
def console() -> None:
    """Chat with the bot in this terminal (or answer each line piped on stdin)."""
    settings = _settings(quiet=True)
    asyncio.run(_console(settings))


@app.command()
def ask(message: Annotated[str, typer.Argument(help='e.g. "/sort CBABBC"')]) -> None:
    """Send one message to the bot and print its answer."""
    settings = _settings(quiet=True)
    asyncio.run(_console(settings, [message]))


@app.command()
def doctor() -> None:
    """Print the resolved configuration (secrets masked) and what was found."""
    settings = _settings(quiet=True)
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


@train_app.command("sorter")
def train_sorter_command(
    seed: Annotated[int, typer.Option(help="random seed")] = 3407,
    iterations: Annotated[int, typer.Option(help="optimizer steps")] = 2000,
    out: Annotated[
        Path | None, typer.Option(help="checkpoint path (default: the package asset)")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
) -> None:
    """Train the nano-GPT sorter (minGPT sort demo recipe) and check all 729 inputs."""
    import torch

    from dikkat.models.sorter import default_checkpoint_path
    from dikkat.training.sorter import SorterTrainingConfig, save_result, train_sorter

    _settings()
    torch.set_num_threads(threads)
    config = SorterTrainingConfig(iterations=iterations, seed=seed)
    result = train_sorter(config)
    path = out or default_checkpoint_path()
    save_result(result, path, config)
    typer.echo(
        f"trained {iterations} iterations in {result.seconds:.1f} s, final loss "
        f"{result.final_loss:.4f}; exact match {result.correct}/{result.total}; saved {path}"
    )
    logging.getLogger(__name__).info("sorter checkpoint written to %s", path)
    if result.correct != result.total:
        raise typer.Exit(1)


@app.command()
def healthcheck(
    timeout: Annotated[float, typer.Option(help="seconds to wait for an answer")] = 3.0,
) -> None:
    """Ask the running bot's /healthz (exit 0 when healthy): the container's HEALTHCHECK."""
    import urllib.error
    import urllib.request

    settings = _settings(quiet=True)
    url = f"http://127.0.0.1:{settings.http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            typer.echo(response.read().decode())
    except urllib.error.HTTPError as error:
        typer.echo(f"unhealthy: {error.code} {error.read().decode()}", err=True)
        raise typer.Exit(1) from error
    except OSError as error:
        typer.echo(f"no answer from {url}: {error}", err=True)
        raise typer.Exit(1) from error
