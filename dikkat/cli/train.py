"""Training and evaluating the models: train sorter / sentiment / seed-head, evaluate sentiment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from dikkat.cli.apps import evaluate_app, train_app
from dikkat.cli.common import (
    encoder_for,
    load_settings,
    served_head,
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

    load_settings()
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
    from dikkat.training.sentiment_csv import train_sentiment_from_csv

    settings = load_settings()
    encoder = encoder_for(settings)
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


DataDir = Annotated[
    Path | None,
    typer.Option(help="folder with the public sets (default: ../shared/data/sentiment)"),
]


@train_app.command("seed-head")
def train_seed_head_command(
    data_dir: DataDir = None,
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="train on the seed corpus alone")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="head path (default: the package asset)")] = None,
) -> None:
    """Train the shipped head: seed corpus (training part) + the MIT-licensed public sets."""
    from dikkat.app import database_url
    from dikkat.models.head import head_file_name, save_head, shipped_heads_dir
    from dikkat.storage.feature_cache import FeatureCache
    from dikkat.training.metrics import format_report
    from dikkat.training.rehearsal import rehearsal_path, save_rehearsal
    from dikkat.training.seed_head import train_seed_head

    seed_only_hint = ", or --seed-only for a head from the seed corpus alone"
    folder = None if seed_only else _public_sets_folder(data_dir, seed_only_hint)
    settings = load_settings()
    encoder = encoder_for(settings)
    cache = FeatureCache.open(database_url(settings), encoder.feature_key)
    try:
        report = train_seed_head(encoder, cache, folder, progress=True)
    finally:
        cache.close()
    path = out or shipped_heads_dir() / head_file_name(encoder.encoder_id, encoder.precision_tag)
    path = save_head(report.head, path, report.meta)
    for name, metrics in report.evaluations.items():
        typer.echo(f"== {name}\n{format_report(metrics)}")
    typer.echo(f"head: {path}")
    if report.rehearsal is not None:
        buffer = save_rehearsal(report.rehearsal, rehearsal_path(path))  # beside its head
        typer.echo(f"rehearsal buffer: {buffer} ({len(report.rehearsal)} rows of features)")


@train_app.command("rehearsal")
def train_rehearsal_command(
    data_dir: DataDir = None,
    head: Annotated[
        Path | None, typer.Option(help="the head it goes beside (default: the package asset)")
    ] = None,
) -> None:
    """Write the shipped head's rehearsal buffer for the configured encoder and precision (the
    rows `train seed-head` keeps), so retrains at that precision rehearse without a new head."""
    from dikkat.app import database_url
    from dikkat.models.head import head_file_name, shipped_heads_dir
    from dikkat.storage.feature_cache import FeatureCache
    from dikkat.training.rehearsal import rehearsal_path, save_rehearsal
    from dikkat.training.seed_head import rehearsal_buffer, seed_head_data

    data, _, _ = seed_head_data(_public_sets_folder(data_dir))
    settings = load_settings()
    encoder = encoder_for(settings)
    cache = FeatureCache.open(database_url(settings), encoder.feature_key)
    try:
        buffer = rehearsal_buffer(data, encoder, cache, seed=0)
    finally:
        cache.close()
    head_path = head or shipped_heads_dir() / head_file_name(encoder.encoder_id)
    path = save_rehearsal(buffer, rehearsal_path(head_path, encoder.precision_tag))
    typer.echo(f"rehearsal buffer: {path} ({len(buffer)} rows of {encoder.feature_key} features)")


def _public_sets_folder(data_dir: Path | None, hint: str = "") -> Path:
    """The folder holding every trainable public set; exits with a clear message if none does."""
    from dikkat.bench.lengths import shared_data_dirs
    from dikkat.training.seed_head import missing_training_sets

    candidates = [data_dir] if data_dir is not None else shared_data_dirs()
    folder = next((c for c in candidates if not missing_training_sets(c)), None)
    if folder is None:
        missing = ", ".join(missing_training_sets(candidates[0]))
        typer.echo(
            f"cannot train: {missing} not found in {candidates[0]}; "
            f"pass --data-dir with them{hint}",
            err=True,
        )
        raise typer.Exit(2)
    return folder


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
    from dikkat.training.sentiment_csv import evaluate_from_csv

    settings = load_settings(quiet=as_json)
    encoder = encoder_for(settings)
    head_path, head_note = (head, f"--head {head}") if head else served_head(settings, encoder)
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
