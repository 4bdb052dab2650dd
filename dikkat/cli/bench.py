"""Benchmarks: batching, retrain, sentiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dikkat.cli.apps import bench_app
from dikkat.cli.common import (
    load_settings,
)

QuickOption = Annotated[bool, typer.Option("--quick", help="a shorter run (under a minute or two)")]


JsonOption = Annotated[Path | None, typer.Option("--json", help="write the results as JSON")]


PlotOption = Annotated[Path | None, typer.Option("--plot", help="write a PNG")]
FeaturesDbOption = Annotated[
    Path | None,
    typer.Option(help="keep encoder features in this file, so a later run skips encoding"),
]


@bench_app.command("batching")
def bench_batching(
    quick: QuickOption = False,
    json: JsonOption = None,
    plot: PlotOption = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="encoder precisions to measure one after the other, e.g. fp32,int8 (default:"
            " fp32, and int8 where it runs on CTranslate2: a CPU with ctranslate2 installed)"
        ),
    ] = None,
) -> None:
    """Unbatched vs dynamic batching vs the raw ceiling, at 1-256 concurrent clients, + overload,
    per encoder precision."""
    from dikkat.bench.batching import format_table, run_batching_benchmark
    from dikkat.models.precision import PRECISIONS

    load_settings(quiet=True)
    chosen = [p.strip() for p in precision.split(",") if p.strip()] if precision else None
    unknown = sorted(set(chosen or ()) - set(PRECISIONS))
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: each must be one of {', '.join(PRECISIONS)}",
            param_hint="--precision",
        )
    report = run_batching_benchmark(quick=quick, json_path=json, plot_path=plot, precisions=chosen)
    typer.echo(format_table(report))


@bench_app.command("retrain")
def bench_retrain(
    quick: QuickOption = False,
    json: JsonOption = None,
    plot: PlotOption = None,
    learning: Annotated[
        bool,
        typer.Option(
            "--learning",
            help="only the learning runs: 1,000 corrections over 5 seeds, forgetting measured",
        ),
    ] = False,
    features_db: Annotated[
        Path | None, typer.Option(help="with --learning: keep encoder features in this file")
    ] = None,
) -> None:
    """Retrain wall time, serving latency during a retrain, and the learning curve from feedback."""
    settings = load_settings(quiet=True)
    if learning:
        from dikkat.bench.retrain_learning import format_learning, run_learning_benchmark

        try:
            result = run_learning_benchmark(
                model_dir=settings.model_dir,
                json_path=json,
                plot_path=plot,
                features_db=features_db,
                say=typer.echo,
            )
        except FileNotFoundError as error:
            typer.echo(f"cannot run: {error}", err=True)
            raise typer.Exit(2) from error
        typer.echo("\n".join(format_learning(result)))
        return
    from dikkat.bench.retrain import format_report, run_retrain_benchmark

    report = run_retrain_benchmark(quick=quick, json_path=json, plot_path=plot)
    typer.echo(format_report(report))


@bench_app.command("sentiment")
def bench_sentiment(
    json: JsonOption = None,
    plot: PlotOption = None,
    features_db: FeaturesDbOption = None,
) -> None:
    """Quality per encoder vs TF-IDF, the head recipes, cross-domain, speed, start-up, memory."""
    from dikkat.bench.sentiment import format_report, run_sentiment_benchmark

    settings = load_settings(quiet=True)
    try:
        report = run_sentiment_benchmark(
            model_dir=settings.model_dir,
            json_path=json,
            plot_path=plot,
            say=typer.echo,
            features_db=features_db,
        )
    except FileNotFoundError as error:
        typer.echo(f"cannot run: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(format_report(report))


@bench_app.command("scale")
def bench_scale(
    json: JsonOption = None,
    requests: Annotated[int, typer.Option(help="requests per measured point")] = 200,
) -> None:
    """/sentiment p50/p99 at 1 and 8 clients: in-process vs Ray Serve replicas (needs \\[scale])."""
    from dikkat.bench.scale import format_report, run_scale_benchmark

    load_settings(quiet=True)
    try:
        report = run_scale_benchmark(requests=requests, json_path=json, say=typer.echo)
    except ModuleNotFoundError as error:
        typer.echo(f"cannot run: {error}; install the extra: pip install 'dikkat[scale]'", err=True)
        raise typer.Exit(2) from error
    typer.echo(format_report(report))


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="how long the traffic runs")] = 30.0,
    rounds: Annotated[
        int | None, typer.Option(help="instead of minutes: each user's rounds of requests")
    ] = None,
    users: Annotated[int, typer.Option(help="concurrent users")] = 4,
    sample_s: Annotated[float, typer.Option(help="seconds between process samples")] = 10.0,
    json: JsonOption = None,
    plot: PlotOption = None,
) -> None:
    """The bot under mixed traffic, retrains, head swaps and a locked database: do RSS, fds,
    tasks or threads grow; is every request answered and every acknowledged vote stored?"""
    from dikkat.bench.soak import SoakConfig, format_report, run_soak
    from dikkat.cli.common import encoder_for

    settings = load_settings(quiet=True)
    config = SoakConfig(
        minutes=None if rounds is not None else minutes,
        rounds=rounds,
        users=users,
        sample_s=sample_s,
    )
    report = run_soak(
        config, encoder=encoder_for(settings), settings=settings, json_path=json, plot_path=plot
    )
    typer.echo(format_report(report))
    if not report["verdict"]["passed"]:
        raise typer.Exit(1)


@bench_app.command("encoder")
def bench_encoder(
    quick: QuickOption = False,
    json: JsonOption = None,
    features_db: FeaturesDbOption = None,
    layers: Annotated[
        int | None, typer.Option(min=1, help="the encoder's first N layers only (default: all)")
    ] = None,
) -> None:
    """The sentiment encoder in fp32 and int8 side by side: ceiling, p50, RSS, vector closeness
    and head macro-F1 on the shared sets (when present)."""
    from dataclasses import replace

    from dikkat.bench.encoder import EncoderBenchConfig, format_report, run_encoder_benchmark

    settings = load_settings(quiet=True)
    config = replace(EncoderBenchConfig.quick() if quick else EncoderBenchConfig(), layers=layers)
    report = run_encoder_benchmark(
        model_dir=settings.model_dir,
        config=config,
        json_path=json,
        features_db=features_db,
        say=typer.echo,
    )
    typer.echo(format_report(report))
