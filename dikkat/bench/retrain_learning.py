"""Learning from corrections without forgetting: the retrain recipe over several seeds.

Corrections come from a domain the shipped head never saw (store reviews); each seed draws them
in another order and trains with another seed. After each step the candidate is judged by the
promotion rule as in a real retrain, and scored on the domain's held-out quarter, on the fixed
set, and on the other shared sets (what it must not forget).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dikkat.bench.common import machine_info, write_json
from dikkat.config import Settings
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import SentimentHead
from dikkat.models.loading import load_encoder
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.candidate import train_candidate
from dikkat.training.data import split_train_val
from dikkat.training.features import features_for
from dikkat.training.heads import ShippedReference
from dikkat.training.metrics import evaluate
from dikkat.training.promotion import decide
from dikkat.training.seed_head import PUBLIC_SETS

DOMAIN = "store_reviews_3class.csv"
STEPS = (100, 300, 1_000)
SEEDS = (0, 1, 2, 3, 4)
SPLIT_FRACTION, SPLIT_SEED = 0.25, 0


def learning_runs(
    encoder: SentenceEncoder,
    cache: FeatureCache,
    frames: dict[str, pd.DataFrame],
    *,
    seeds: tuple[int, ...] = SEEDS,
    steps: tuple[int, ...] = STEPS,
    rehearse: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Per seed and step: promoted?, P(better), and macro-F1 of the active head on each set.
    Holdout share, feedback weight and the promotion rule are the configured retrain settings."""
    settings = Settings()
    shipped = ShippedReference.load(encoder)
    if shipped.head is None:
        raise FileNotFoundError(f"no shipped head for {encoder.encoder_id}")
    pool, held_out = split_train_val(frames[DOMAIN], SPLIT_FRACTION, SPLIT_SEED)
    tests = {f"{DOMAIN} (held-out 25%)": held_out}
    for public in PUBLIC_SETS:
        if public.file != DOMAIN:
            tests[f"{public.file} (25%, seed 0)"] = split_train_val(
                frames[public.file], SPLIT_FRACTION, SPLIT_SEED
            )[1]
    X = {
        name: features_for(t["text"].tolist(), encoder, cache, progress=False)
        for name, t in tests.items()
    }

    def scores(head: SentimentHead) -> dict[str, float]:
        return {
            name: round(evaluate(head, X[name], t["label"]).macro_f1, 4)
            for name, t in tests.items()
        }

    start = scores(shipped.head)
    runs = []
    for seed in seeds:
        order = pool.sample(frac=1.0, random_state=seed)
        active, points = shipped.head, []
        for n in steps:
            feedback = list(zip(order["text"].iloc[:n], order["label"].iloc[:n], strict=True))
            report = train_candidate(
                encoder,
                cache,
                active,
                feedback,
                holdout_share=settings.retrain_feedback_holdout,
                seed=seed,
                shipped=shipped.head,
                rehearsal=shipped.rehearsal if rehearse else None,
                feedback_weight=settings.retrain_feedback_weight,
            )
            decision = decide(
                report.before,
                report.after,
                held=report.held,
                floor=report.shipped_fixed - settings.retrain_tolerance,
                confidence=settings.retrain_confidence,
                tolerance=settings.retrain_tolerance,
                min_feedback_eval=settings.retrain_min_feedback_eval,
            )
            if decision.promote:
                active = report.head
            point = {
                "n": n,
                "promoted": decision.promote,
                "p_better": decision.p_better,
                "candidate": scores(report.head),
                "active": scores(active),
                "fixed_candidate": round(report.after["fixed"]["macro_f1"], 4),
            }
            say(
                f"seed {seed}, {n} corrections: {'promoted' if decision.promote else 'rejected'}"
                f" (P(better) {decision.p_better}), candidate {point['candidate']}"
            )
            points.append(point)
        runs.append({"seed": seed, "points": points})
    return {
        "domain": DOMAIN,
        "rehearsal_rows": len(shipped.rehearsal) if rehearse and shipped.rehearsal else 0,
        "feedback_weight": settings.retrain_feedback_weight,
        "tolerance": settings.retrain_tolerance,
        "confidence": settings.retrain_confidence,
        "shipped": start,
        "runs": runs,
        "summary": summarise(start, runs, steps),
    }


def summarise(start: dict[str, float], runs: list[dict[str, Any]], steps) -> list[dict[str, Any]]:
    """Per step: promotions, and mean / min / max change of each set's macro-F1 (candidate)."""
    rows = []
    for i, n in enumerate(steps):
        points = [run["points"][i] for run in runs]
        change = {
            name: {
                "mean": round(float(np.mean(d)), 4),
                "min": round(float(np.min(d)), 4),
                "max": round(float(np.max(d)), 4),
            }
            for name in start
            for d in [[p["candidate"][name] - start[name] for p in points]]
        }
        rows.append(
            {
                "n": n,
                "promoted": sum(p["promoted"] for p in points),
                "of": len(points),
                "change": change,
            }
        )
    return rows


def format_learning(result: dict[str, Any]) -> list[str]:
    """Markdown: gain on the domain and change elsewhere, mean (min..max) over the seeds."""
    names = list(result["shipped"])
    lines = [
        "| corrections | promoted | " + " | ".join(f"Δ {n}" for n in names) + " |",
        "|---:|---|" + "---|" * len(names),
        "| 0 (shipped head) | – | "
        + " | ".join(f"{result['shipped'][n]:.3f}" for n in names)
        + " |",
    ]
    rows = [(f"{row['n']:,}", row) for row in result["summary"]]
    rows += [
        (f"{row['n']:,} without the rehearsal buffer", row)
        for row in result.get("without_rehearsal", [])
    ]
    for title, row in rows:
        cells = [
            f"{c['mean']:+.3f} ({c['min']:+.3f}..{c['max']:+.3f})"
            for c in (row["change"][n] for n in names)
        ]
        lines.append(f"| {title} | {row['promoted']} of {row['of']} | " + " | ".join(cells) + " |")
    return lines


def run_learning_benchmark(
    *,
    model_dir: Path,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    features_db: Path | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load the offline encoder and the shared sets, run every seed, write JSON and PNG."""
    from dikkat.bench.sentiment import shared_frames

    _, frames = shared_frames()
    encoder = load_encoder("offline", device="cpu", model_dir=model_dir)
    scratch = Path(tempfile.mkdtemp(prefix="dikkat-bench-learning-"))
    cache = FeatureCache.open(features_db or scratch / "features.db", encoder.feature_key)
    try:
        report = learning_runs(encoder, cache, frames, say=say)
        say("the same 1,000 corrections without the rehearsal buffer")
        report["without_rehearsal"] = learning_runs(
            encoder, cache, frames, steps=(STEPS[-1],), rehearse=False, say=say
        )["summary"]
    finally:
        cache.close()
    report["machine"] = machine_info()
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot_path.write_bytes(learning_png(report))
    return report


def learning_png(report: dict[str, Any]) -> bytes:
    """macro-F1 per set against corrections: mean line and the seeds' min..max band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.0), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    steps = [0] + [row["n"] for row in report["summary"]]
    for name, start in report["shipped"].items():
        per_seed = np.array(
            [[start] + [p["candidate"][name] for p in run["points"]] for run in report["runs"]]
        )
        line = axes.plot(steps, per_seed.mean(axis=0), marker="o", label=name)[0]
        axes.fill_between(
            steps, per_seed.min(axis=0), per_seed.max(axis=0), color=line.get_color(), alpha=0.2
        )
    axes.set_xscale("symlog", linthresh=100)
    axes.set_xticks(steps, [f"{n:,}" for n in steps])
    axes.set_xlabel("corrections from store reviews (held-out share 20%)")
    axes.set_ylabel("candidate macro-F1")
    axes.set_title(f"Learning from corrections: mean and min..max of {len(report['runs'])} seeds")
    axes.legend(fontsize=8, loc="lower right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
