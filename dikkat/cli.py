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

stdout = Console()


def _settings(quiet: bool | None = False) -> Settings:
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
        quiet = settings.telegram_token is None and settings.discord_token is None
    level = settings.log_level
    if quiet and "DIKKAT_LOG_LEVEL" not in os.environ:
        level = "WARNING"
    configure_logging(level, settings.log_format, settings.secrets(), settings.debug_loggers)
    return settings


def _run(coroutine, settings: Settings) -> None:
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
def run(
    check: Annotated[
        bool, typer.Option("--check", help="load configuration, models and database, then exit")
    ] = False,
) -> None:
    """Start every frontend that has a token; the console when none is configured."""
    from dikkat.app import check as check_app
    from dikkat.app import serve

    if check:
        settings = _settings(quiet=True)
        try:
            found = asyncio.run(check_app(settings))
        except Exception as error:
            typer.echo(f"check failed: {failure_line(error, settings)}", err=True)
            raise typer.Exit(1) from None
        for key, value in found.items():
            typer.echo(f"{key}: {value}")
        raise typer.Exit(0 if found["healthy"] else 1)
    settings = _settings(quiet=None)
    if settings.telegram_token is None and settings.discord_token is None and _no_input():
        typer.echo(
            "No chat token is configured and there is no input to chat with: set "
            "DIKKAT_TELEGRAM_TOKEN and/or DIKKAT_DISCORD_TOKEN (e.g. in .env, see the README), "
            "or run `dikkat console` in a terminal.",
            err=True,
        )
        raise typer.Exit(2)
    _run(serve(settings), settings)


def _no_input() -> bool:
    """stdin is closed or the null device (a container started without -i or a token)."""
    import stat

    if sys.stdin is None or sys.stdin.closed:
        return True
    try:
        here, null = os.fstat(sys.stdin.fileno()), os.stat(os.devnull)
    except (OSError, ValueError):
        return True
    return stat.S_ISCHR(here.st_mode) and here.st_rdev == null.st_rdev


@app.command()
def console() -> None:
    """Chat with the bot in this terminal (or answer each line piped on stdin)."""
    settings = _settings(quiet=True)
    _run(_console(settings), settings)


@app.command(context_settings={"ignore_unknown_options": True})
def ask(message: Annotated[str, typer.Argument(help='e.g. "/sort CBABBC"')]) -> None:
    """Send one message to the bot and print its answer (an empty one gets the usage text)."""
    settings = _settings(quiet=True)
    _run(_console(settings, [message if message.strip() else "/help"]), settings)


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


def _encoder(settings: Settings):
    from dikkat.models.encoder import load_encoder

    return load_encoder(
        settings.sentiment_encoder,
        max_length=settings.sentiment_max_length,
        pooling=settings.sentiment_pooling,
        device=settings.device,
        probe_timeout_s=settings.hub_probe_timeout_s,
        model_dir=settings.model_dir,
    )


@train_app.command("sentiment")
def train_sentiment_command(
    data: Annotated[Path, typer.Option(help="labelled CSV", exists=True, dir_okay=False)],
    text_col: Annotated[str, typer.Option(help="text column")] = "text",
    label_col: Annotated[str, typer.Option(help="label column")] = "label",
    label_map: Annotated[
        str | None, typer.Option(help='numeric labels, e.g. "0=negative,1=neutral,2=positive"')
    ] = None,
    out_dir: Annotated[Path | None, typer.Option(help="where to save the head")] = None,
    curves: Annotated[Path, typer.Option(help="training curves PNG")] = Path("training_curves.png"),
    seed: Annotated[int, typer.Option(help="split and training seed")] = 0,
    patience: Annotated[int, typer.Option(help="early-stopping patience (epochs)")] = 8,
) -> None:
    """Train a sentiment head on a CSV: stratified 75/25 split, cached features, report, curves."""
    from dikkat.training.metrics import format_report
    from dikkat.training.sentiment import train_sentiment_from_csv

    settings = _settings()
    encoder = _encoder(settings)
    try:
        outcome = train_sentiment_from_csv(
            data,
            encoder,
            text_col=text_col,
            label_col=label_col,
            label_map=label_map,
            out_dir=out_dir or settings.model_dir / "trained",
            curves=curves,
            db_path=settings.db_path,
            seed=seed,
            patience=patience,
        )
    except (ValueError, KeyError) as error:
        typer.echo(f"cannot train: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(
        f"trained on {outcome.n_train} rows, validated on {outcome.n_val} "
        f"({outcome.dropped} dropped), best epoch {outcome.result.best_epoch}, "
        f"{outcome.result.seconds:.1f} s"
    )
    if outcome.metrics is not None:
        typer.echo(format_report(outcome.metrics))
    typer.echo(f"head: {outcome.head_path}\ncurves: {outcome.curves_path}")


@train_app.command("seed-head")
def train_seed_head_command(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="folder with the public sets (default: ../shared/data/sentiment)"),
    ] = None,
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="train on the seed corpus alone")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="head path (default: the package asset)")] = None,
) -> None:
    """Train the shipped head: seed corpus (training part) + the MIT-licensed public sets."""
    from dikkat.bench.lengths import shared_data_dirs
    from dikkat.models.head import SHIPPED_HEADS_SUBDIR, head_file_name, save_head
    from dikkat.storage.features import FeatureCache
    from dikkat.training.metrics import format_report
    from dikkat.training.seed_head import missing_training_sets, train_seed_head

    folder = None
    if not seed_only:
        candidates = [data_dir] if data_dir is not None else shared_data_dirs()
        folder = next((c for c in candidates if not missing_training_sets(c)), None)
        if folder is None:
            missing = ", ".join(missing_training_sets(candidates[0]))
            typer.echo(
                f"cannot train: {missing} not found in {candidates[0]}; "
                "pass --data-dir, or --seed-only for a head from the seed corpus alone",
                err=True,
            )
            raise typer.Exit(2)
    settings = _settings()
    encoder = _encoder(settings)
    cache = FeatureCache(settings.db_path, encoder.feature_key)
    try:
        report = train_seed_head(encoder, cache, folder, progress=True)
    finally:
        cache.close()
    assets = Path(__file__).parent / "assets" / SHIPPED_HEADS_SUBDIR
    path = save_head(report.head, out or assets / head_file_name(encoder.encoder_id), report.meta)
    for name, metrics in report.evaluations.items():
        typer.echo(f"== {name}\n{format_report(metrics)}")
    typer.echo(f"head: {path}")


@evaluate_app.command("sentiment")
def evaluate_sentiment_command(
    data: Annotated[Path, typer.Option(help="labelled CSV", exists=True, dir_okay=False)],
    head: Annotated[
        Path | None, typer.Option(help="head file (default: the active head the bot serves)")
    ] = None,
    text_col: Annotated[str, typer.Option(help="text column")] = "text",
    label_col: Annotated[str, typer.Option(help="label column")] = "label",
    label_map: Annotated[str | None, typer.Option(help="numeric label mapping")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Accuracy, macro-F1 and confusion matrix of the active head (or --head) on a labelled CSV."""
    import json

    from dikkat.training.metrics import format_report
    from dikkat.training.sentiment import evaluate_from_csv

    settings = _settings(quiet=as_json)
    encoder = _encoder(settings)
    head_path, head_note = (head, f"--head {head}") if head else _served_head(settings, encoder)
    try:
        metrics, dropped = evaluate_from_csv(
            data,
            encoder,
            head_path=head_path,
            text_col=text_col,
            label_col=label_col,
            label_map=label_map,
            db_path=settings.db_path,
            progress=not as_json,
        )
    except (ValueError, KeyError, FileNotFoundError) as error:
        typer.echo(f"cannot evaluate: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        report = {**metrics.as_dict(), "dropped": dropped, "head": head_note}
        typer.echo(json.dumps(report, ensure_ascii=False))
    else:
        typer.echo(f"head: {head_note}\n{format_report(metrics)}")


def _served_head(settings: Settings, encoder) -> tuple[Path | None, str]:
    """The active head version for this encoder in the database, else the shipped file."""
    from dikkat.models.head import default_head_path
    from dikkat.storage.store import Store

    async def active():
        store = await Store.open(settings.db_path)
        try:
            return await store.active_version(encoder.feature_key)
        finally:
            await store.close()

    version = asyncio.run(active()) if Path(settings.db_path).is_file() else None
    if version is not None:
        return Path(version.path), f"active #{version.id} ({version.source})"
    shipped = default_head_path(encoder.encoder_id, encoder.pooling)
    if shipped is None:
        return None, "none"
    return shipped, f"shipped {shipped.name} (no active head in {settings.db_path} yet)"


@app.command()
def retrain(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Retrain the sentiment head from feedback now; promote it only if it is no worse."""
    import json

    from dikkat.app import App
    from dikkat.storage.store import RunInProgress

    settings = _settings(quiet=as_json)

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

    from dikkat.storage.store import Store

    settings = _settings(quiet=True)

    async def rows():
        store = await Store.open(settings.db_path)
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

    settings = _settings(quiet=True)

    async def copy() -> None:
        store = await Store.open(settings.db_path)
        try:
            await store.backup(out)
        finally:
            await store.close()

    asyncio.run(copy())
    typer.echo(f"database {settings.db_path} backed up to {out}")


QuickOption = Annotated[bool, typer.Option("--quick", help="a shorter run (under a minute or two)")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="write the results as JSON")]
PlotOption = Annotated[Path | None, typer.Option("--plot", help="write a PNG")]


@bench_app.command("batching")
def bench_batching(
    quick: QuickOption = False, json: JsonOption = None, plot: PlotOption = None
) -> None:
    """Unbatched vs dynamic batching vs the raw ceiling, at 1-256 concurrent clients, + overload."""
    from dikkat.bench.batching import format_table, run_batching_benchmark

    _settings(quiet=True)
    report = run_batching_benchmark(quick=quick, json_path=json, plot_path=plot)
    typer.echo(format_table(report))


@bench_app.command("retrain")
def bench_retrain(
    quick: QuickOption = False, json: JsonOption = None, plot: PlotOption = None
) -> None:
    """Retrain wall time, serving latency during a retrain, and the learning curve from feedback."""
    from dikkat.bench.retrain import format_report, run_retrain_benchmark

    _settings(quiet=True)
    report = run_retrain_benchmark(quick=quick, json_path=json, plot_path=plot)
    typer.echo(format_report(report))


@bench_app.command("sentiment")
def bench_sentiment(json: JsonOption = None, plot: PlotOption = None) -> None:
    """Quality per encoder vs TF-IDF, cross-domain, encoding speed, start-up time, memory."""
    from dikkat.bench.sentiment import format_report, run_sentiment_benchmark

    settings = _settings(quiet=True)
    try:
        report = run_sentiment_benchmark(
            model_dir=settings.model_dir, json_path=json, plot_path=plot, say=typer.echo
        )
    except FileNotFoundError as error:
        typer.echo(f"cannot run: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(format_report(report))
