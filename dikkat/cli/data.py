"""The stored state: retrain, export feedback, backup."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from dikkat.cli.apps import app, export_app
from dikkat.cli.common import (
    load_settings,
)


@app.command()
def retrain(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Retrain the sentiment head from feedback now; promote it only if it is no worse."""
    import json

    from dikkat.app import App
    from dikkat.storage.records import RunInProgress

    settings = load_settings(quiet=as_json)

    async def go():
        async with App(settings) as running:
            assert running.retrainer is not None
            return await running.retrainer.run("cli", "cli")

    try:
        run = asyncio.run(go())
    except RunInProgress as error:
        typer.echo(f"cannot retrain: {error}", err=True)
        raise typer.Exit(1) from error
    if as_json:
        typer.echo(json.dumps(run.as_json(), ensure_ascii=False))
    else:
        from dikkat.bot.commands.admin import outcome_text

        typer.echo(outcome_text(run, "en"))
    if run.status == "failed":
        raise typer.Exit(1)


@export_app.command("feedback")
def export_feedback(
    out: Annotated[Path, typer.Option(help="CSV file to write")],
) -> None:
    """Write every labelled feedback vote (text, label, predicted, who, when) to a CSV."""
    import pandas as pd

    from dikkat.app import open_store

    settings = load_settings(quiet=True)

    async def rows():
        store = await open_store(settings)
        try:
            return await store.feedback_rows()
        finally:
            await store.close()

    columns = [
        "prediction_id",
        "text",
        "label",
        "predicted",
        "platform",
        "user_id",
        "created_at",
        "updated_at",
        "head_version",
    ]
    frame = pd.DataFrame(asyncio.run(rows()), columns=columns)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    typer.echo(f"{len(frame)} feedback rows written to {out}")


@app.command()
def backup(
    out: Annotated[Path, typer.Option(help="backup file to write")],
) -> None:
    """Copy the live SQLite database consistently (online backup API), bot running or not."""
    from dikkat.storage.store import Store

    settings = load_settings(quiet=True)

    async def copy() -> None:
        store = await Store.open(settings.db_path)
        try:
            await store.backup(out)
        finally:
            await store.close()

    asyncio.run(copy())
    typer.echo(f"database {settings.db_path} backed up to {out}")
