"""The `dikkat` command and its groups (Typer apps); the commands register on them."""

from __future__ import annotations

import typer

from dikkat.cli.db import db_app
from dikkat.cli.telegram import telegram_app

app = typer.Typer(
    help="Dikkat: Turkish sentiment, a letter-sorting nano-GPT and self-attention, in chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would show settings, tokens included
)
train_app = typer.Typer(help="Train the models.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Measure the models on labelled data.", no_args_is_help=True)
export_app = typer.Typer(help="Export stored data.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks: ratios against a baseline measured in the same run.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(export_app, name="export")
app.add_typer(bench_app, name="bench")
app.add_typer(db_app, name="db")
app.add_typer(telegram_app, name="telegram")
