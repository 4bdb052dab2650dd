"""`dikkat bench sentiment`: quality per encoder vs TF-IDF, cross-domain, speed, start, memory."""

from __future__ import annotations

import io
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dikkat.bench.common import loadavg, machine_info, write_json
from dikkat.bench.encoder import start_times
from dikkat.bench.lengths import shared_data_dirs
from dikkat.bench.sentiment_recipes import compare_recipes, format_recipes
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import default_head_path, load_head
from dikkat.models.loading import BERTURK, MINILM_ID, OFFLINE_ID, load_encoder
from dikkat.storage.feature_cache import FeatureCache
from dikkat.training.data import load_labelled_csv, split_train_val
from dikkat.training.features import features_for
from dikkat.training.metrics import Metrics, evaluate
from dikkat.training.seed_head import PUBLIC_SETS, train_with_shipped_recipe

IN_DOMAIN = "store_reviews_3class.csv"
SPLIT_FRACTION, SPLIT_SEED = 0.25, 0
THROUGHPUT_TEXTS = 512


def data_dir() -> Path | None:
    """../shared/data/sentiment when every public set is there."""
    for folder in shared_data_dirs():
        if all((folder / s.file).is_file() for s in PUBLIC_SETS):
            return folder
    return None


def shared_frames(folder: Path | None = None) -> tuple[Path, dict[str, pd.DataFrame]]:
    """The shared sets' folder and every public set in it; FileNotFoundError when absent."""
    folder = folder or data_dir()
    if folder is None:
        raise FileNotFoundError("the shared sentiment sets (../shared/data/sentiment) are absent")
    return folder, {s.file: load_labelled_csv(folder / s.file) for s in PUBLIC_SETS}


def _summary(metrics: Metrics) -> dict[str, Any]:
    return {
        "n": metrics.n,
        "accuracy": round(metrics.accuracy, 4),
        "macro_f1": round(metrics.macro_f1, 4),
        "recall": {k: round(v.recall, 3) for k, v in metrics.per_class.items()},
    }


def tfidf_baseline(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """char_wb 2-5 TF-IDF + logistic regression, C by 3-fold CV on the training part."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    X_train = vectorizer.fit_transform(train["text"].str.lower())
    model = LogisticRegressionCV(
        Cs=[0.3, 1, 3, 10], cv=3, max_iter=2000, n_jobs=1, scoring="accuracy"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8 attribute renames
        model.fit(X_train, train["label"])
    proba = model.predict_proba(vectorizer.transform(test["text"].str.lower()))
    order = [list(model.classes_).index(label) for label in ("negative", "neutral", "positive")]
    return _summary(evaluate(None, np.zeros((len(test), 1)), test["label"], proba=proba[:, order]))


def _head_on(
    encoder: SentenceEncoder,
    cache: FeatureCache,
    train: pd.DataFrame,
    tests: dict[str, pd.DataFrame],
    progress: bool,
) -> dict[str, Any]:
    """Train the classic head with the shipped recipe; score it on every test frame."""
    result = train_with_shipped_recipe(train, encoder, cache, seed=SPLIT_SEED, progress=progress)
    scores = {}
    for name, frame in tests.items():
        X = features_for(frame["text"].tolist(), encoder, cache, progress=progress)
        scores[name] = _summary(evaluate(result.head, X, frame["label"]))
    return scores


def throughput(encoder: SentenceEncoder, texts: list[str], batch_size: int = 32) -> dict[str, Any]:
    """Texts per second through `encode` in length-sorted batches (one warm-up batch first)."""
    texts = sorted(texts[:THROUGHPUT_TEXTS], key=len)
    encoder.encode(texts[:batch_size])
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        encoder.encode(texts[start : start + batch_size])
    seconds = time.perf_counter() - started
    return {
        "texts": len(texts),
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "texts_per_s": round(len(texts) / seconds, 1),
        "median_tokens": int(np.median(encoder.token_counts(texts))),
    }


def _encoders(
    model_dir: Path, include_berturk: bool
) -> list[tuple[str, Callable[[], SentenceEncoder]]]:
    found: list[tuple[str, Callable[[], SentenceEncoder]]] = [
        (MINILM_ID, lambda: load_encoder("minilm", device="cpu")),
        (OFFLINE_ID, lambda: load_encoder("offline", device="cpu", model_dir=model_dir)),
    ]
    if include_berturk:
        found.append((BERTURK, lambda: load_encoder(BERTURK, device="cpu", probe_timeout_s=0)))
    return found


def run_sentiment_benchmark(
    *,
    model_dir: Path,
    folder: Path | None = None,
    scratch: Path | None = None,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
    features_db: Path | None = None,
) -> dict[str, Any]:
    """Every part; needs the shared sets (raises FileNotFoundError without them)."""
    folder, frames = shared_frames(folder)
    started = time.perf_counter()
    train, test = split_train_val(frames[IN_DOMAIN], SPLIT_FRACTION, SPLIT_SEED)
    scratch = Path(scratch or tempfile.mkdtemp(prefix="dikkat-bench-sentiment-"))
    scratch.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "data": str(folder),
        "split": f"{IN_DOMAIN} stratified {1 - SPLIT_FRACTION:.0%}/{SPLIT_FRACTION:.0%}, "
        f"seed {SPLIT_SEED}: {len(train)} train / {len(test)} test",
        "machine": machine_info(),
    }
    say("TF-IDF baseline")
    report["in_domain"] = {"char TF-IDF 2-5 + logistic regression": tfidf_baseline(train, test)}
    report["start"] = start_times(  # the times only: the warm encoder is dropped here
        lambda folder: load_encoder("offline", device="cpu", model_dir=folder),
        scratch / "fresh-models",
    )[0]
    say(f"offline encoder: first start {report['start']['first_start_s']} s")
    berturk = _berturk_cached()
    report["encoders"] = {}
    cross: dict[str, Any] = {}
    for encoder_id, load in _encoders(model_dir, berturk):
        say(f"{encoder_id}: loading")
        encoder = load()
        cache = FeatureCache.open(features_db or scratch / "features.db", encoder.feature_key)
        try:
            say(f"{encoder_id}: in-domain head")
            scores = _head_on(encoder, cache, train, {"test": test}, progress)
            report["in_domain"][f"{encoder_id} + classic head"] = scores["test"]
            report["encoders"][encoder_id] = throughput(encoder, test["text"].tolist())
            shipped = default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
            if encoder_id == OFFLINE_ID:
                say(f"{encoder_id}: cross-domain (leave one set out)")
                cross = _cross_domain(encoder, cache, frames, shipped, progress)
                say(f"{encoder_id}: the shipped head's recipe, before and now")
                report["recipes"] = compare_recipes(encoder, cache, frames)
        finally:
            cache.close()
        del encoder
    report["cross_domain"] = cross
    report["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["total_s"] = round(time.perf_counter() - started, 1)
    report["machine"]["loadavg_end"] = loadavg()
    if json_path is not None:
        write_json(report, json_path)
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot_path.write_bytes(quality_png(report))
    return report


def _berturk_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(BERTURK, "config.json")
    return isinstance(found, str)


def _cross_domain(
    encoder: SentenceEncoder,
    cache: FeatureCache,
    frames: dict[str, pd.DataFrame],
    shipped: Path | None,
    progress: bool,
) -> dict[str, Any]:
    """Each set scored by a head trained on the others (+ none of its own rows), and by the
    shipped head (which never saw the store reviews)."""
    result: dict[str, Any] = {}
    head = None
    if shipped is not None:
        head, _ = load_head(shipped, encoder_id=encoder.encoder_id, dim=encoder.dim)
    for name, frame in frames.items():
        two_class = {s.file: s.two_class for s in PUBLIC_SETS}
        others = pd.concat(
            [f.assign(polarity_only=two_class[n]) for n, f in frames.items() if n != name],
            ignore_index=True,
        )
        scores = _head_on(encoder, cache, others, {name: frame}, progress)
        row = {"trained on the other sets": scores[name]}
        if head is not None:
            X = features_for(frame["text"].tolist(), encoder, cache, progress=progress)
            row["shipped head"] = _summary(evaluate(head, X, frame["label"]))
            row["shipped head"]["trained_on_it"] = any(
                s.file == name and s.trainable for s in PUBLIC_SETS
            )
        result[name] = row
    return result


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables for the README."""
    lines = [
        f"Split: {report['split']}",
        "",
        "| in-domain | accuracy | macro-F1 |",
        "|---|---:|---:|",
    ]
    for name, m in report["in_domain"].items():
        lines.append(f"| {name} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} |")
    lines += [
        "",
        "| cross-domain (offline encoder) | n | trained on the other sets: acc / macro-F1 "
        "| shipped head: acc / macro-F1 |",
        "|---|---:|---|---|",
    ]
    for name, row in report["cross_domain"].items():
        other, shipped = row["trained on the other sets"], row.get("shipped head")
        shipped_cell = "-"
        if shipped:
            seen = " (trained on it)" if shipped["trained_on_it"] else " (never saw it)"
            shipped_cell = f"{shipped['accuracy']:.3f} / {shipped['macro_f1']:.3f}{seen}"
        lines.append(
            f"| {name} | {other['n']:,} | {other['accuracy']:.3f} / {other['macro_f1']:.3f} "
            f"| {shipped_cell} |"
        )
    lines += [
        "",
        "| encoder | texts/s (batch 32) | torch threads | median tokens |",
        "|---|---:|---:|---:|",
    ]
    for name, t in report["encoders"].items():
        lines.append(
            f"| {name} | {t['texts_per_s']} | {t['torch_threads']} | {t['median_tokens']} |"
        )
    if "recipes" in report:
        lines += ["", *format_recipes(report["recipes"])]
    start = report["start"]
    lines += [
        "",
        f"Offline encoder start: first {start['first_start_s']} s (dequantize + write + load), "
        f"warm {start['warm_start_s']} s; peak RSS of the benchmark {report['max_rss_mib']} MiB; "
        f"total {report['total_s']} s.",
    ]
    return "\n".join(lines)


def quality_png(report: dict[str, Any]) -> bytes:
    """Bars: in-domain macro-F1 per encoder vs TF-IDF, and cross-domain macro-F1 per set."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.0, 3.8), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    names = list(report["in_domain"])
    values = [report["in_domain"][n]["macro_f1"] for n in names]
    left.barh(range(len(names)), values, color=["#999999"] + ["#1f77b4"] * (len(names) - 1))
    left.set_yticks(range(len(names)), [n.replace(" + ", "\n+ ") for n in names], fontsize=8)
    left.invert_yaxis()
    left.axvline(0.70, color="#d62728", linestyle="--", linewidth=1, label="target 0.70")
    left.set_xlim(0.3, 0.8)
    left.set_xlabel("macro-F1")
    left.set_title("In-domain: store reviews, 75/25 seed 0", fontsize=10)
    left.legend(fontsize=8, loc="lower right")
    sets = list(report["cross_domain"])
    x = np.arange(len(sets))
    others = [report["cross_domain"][s]["trained on the other sets"]["macro_f1"] for s in sets]
    shipped = [
        (report["cross_domain"][s].get("shipped head") or {}).get("macro_f1", np.nan) for s in sets
    ]
    right.bar(x - 0.2, others, 0.4, label="head trained on the other sets")
    right.bar(x + 0.2, shipped, 0.4, label="shipped head")
    right.axhline(0.45, color="#d62728", linestyle="--", linewidth=1, label="target 0.45")
    right.set_xticks(x, [s.replace(".csv", "").replace("_", "\n", 1) for s in sets], fontsize=8)
    right.set_ylim(0, 1)
    right.set_ylabel("macro-F1")
    right.set_title("Cross-domain (multilingual-e5-small)", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
