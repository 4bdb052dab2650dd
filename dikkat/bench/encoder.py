"""`dikkat bench encoder`: the sentiment encoder in fp32 and int8, side by side in one run.

int8 is CTranslate2 int8 (the report's `runtime` says `ctranslate2`; where it cannot run, the
"int8" row is fp32 and says `torch`).

Per precision: the ceiling (texts/s on pre-formed length-sorted batches, in windows that alternate
the precisions so drifting machine load hits both), p50/p99 of one text at a time, RSS of a fresh
process after the load and after it encoded a few thousand texts, how close int8 vectors are to
fp32 ones, and, when the shared sets are present, the macro-F1 of heads trained with the shipped
recipe on each precision's own features.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.table import Table
from tqdm import tqdm

from dikkat.bench.common import (
    fmt,
    loadavg,
    machine_info,
    ms,
    percentiles,
    ratio,
    render,
    write_json,
)
from dikkat.bench.lengths import sample_shared_texts, shared_csv_files
from dikkat.models.encoder import SentenceEncoder, TokenizedText
from dikkat.models.loading import load_encoder
from dikkat.models.precision import PRECISIONS

__all__ = ["EncoderBenchConfig", "format_report", "run_encoder_benchmark", "start_times"]

SPEEDUP_TARGET = 1.7  # int8 ceiling / fp32 ceiling
RSS_TARGET = 0.30  # int8 RSS at least this much lower
QUALITY_BOUND = 0.005  # largest macro-F1 loss of int8 against fp32 on any set
TEXT_SEED = 0

RSS_SCRIPT = """
import gc, json, sys, time
from pathlib import Path
def mib(key):
    gc.collect()
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(dict(line.split(":", 1) for line in lines)[key].split()[0]) / 1024
started = time.perf_counter()
from dikkat.models.loading import load_encoder
layers = int(sys.argv[3]) if sys.argv[3] != "all" else None
encoder = load_encoder(
    "offline", device="cpu", model_dir=Path(sys.argv[2]), precision=sys.argv[1], layers=layers
)
load_s = time.perf_counter() - started
encoder.encode(["bu ürün çok güzel", "kargo geç geldi ama satıcı ilgiliydi, teşekkürler"])
found = {"rss_mb": mib("VmRSS"), "peak_rss_mb": mib("VmHWM"), "load_s": load_s}
texts = json.loads(Path(sys.argv[4]).read_text())
items = sorted(map(encoder.tokenize, texts), key=lambda item: item.cost)
for start in range(0, len(items), 32):
    encoder.encode_tokenized(items[start : start + 32])
found |= {"served_rss_mb": mib("VmRSS"), "served_peak_rss_mb": mib("VmHWM")}
print(json.dumps(found))
"""


@dataclass(frozen=True)
class EncoderBenchConfig:
    """Sizes of one run; `quick` is for a smoke run (no quality part)."""

    texts: int = 512
    batch_size: int = 32
    windows: int = 6
    latency_texts: int = 64
    served_texts: int = 3000  # what the RSS process encodes after its first figure
    seeds: tuple[int, ...] = tuple(range(10))  # the recipe's seed spread is twice the bound
    quality: bool = True
    layers: int | None = None  # the encoder's first layers only (None: all)

    @classmethod
    def quick(cls) -> EncoderBenchConfig:
        return cls(
            texts=128, windows=2, latency_texts=16, served_texts=256, seeds=(0,), quality=False
        )


def bench_texts(n: int) -> tuple[list[str], str]:
    """`n` texts from the shared sets (an equal share each) when present, else the seed corpus."""
    files = shared_csv_files()
    if files:
        return sample_shared_texts(files, n, TEXT_SEED), "shared: " + ", ".join(
            f.name for f in files
        )
    from dikkat.training.data import load_labelled_csv, seed_corpus_path

    texts = load_labelled_csv(seed_corpus_path())["text"].tolist()
    rng = np.random.default_rng(TEXT_SEED)
    return [texts[i] for i in rng.choice(len(texts), n, replace=n > len(texts))], "seed corpus"


def _batches(items: Sequence[TokenizedText], size: int) -> list[list[TokenizedText]]:
    ordered = sorted(items, key=lambda item: item.cost)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def ceiling(
    encoders: dict[str, SentenceEncoder], batches: list[list[TokenizedText]], windows: int
) -> dict[str, Any]:
    """Texts/s of each precision over all batches, per window; the order alternates each window."""
    texts = sum(len(batch) for batch in batches)
    for encoder in encoders.values():
        encoder.encode_tokenized(batches[len(batches) // 2])  # warm-up, not timed
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    names = list(encoders)
    for window in tqdm(range(windows), desc="ceiling windows", file=sys.stderr):
        for name in names if window % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            for batch in batches:
                encoders[name].encode_tokenized(batch)
            rates[name].append(texts / (time.perf_counter() - started))
    return {
        name: {
            "texts_per_s": round(float(np.median(r)), 1),
            "windows_texts_per_s": [round(x, 1) for x in r],
        }
        for name, r in rates.items()
    }


def latency(encoders: dict[str, SentenceEncoder], items: Sequence[TokenizedText]) -> dict:
    """One text per forward (c=1), precisions interleaved text by text."""
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for item in tqdm(items, desc="latency c=1", file=sys.stderr):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode_tokenized([item])
            seconds[name].append(time.perf_counter() - started)
    out = {}
    for name, values in seconds.items():
        p50, p99 = percentiles(values)
        out[name] = {"p50_ms": ms(p50), "p99_ms": ms(p99)}
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _cosine_summary(values: np.ndarray) -> dict[str, float]:
    return {
        "min": round(float(values.min()), 4),
        "p01": round(float(np.percentile(values, 1)), 4),
        "mean": round(float(values.mean()), 4),
    }


def closeness(
    fp32: SentenceEncoder, int8: SentenceEncoder, batches: list[list[TokenizedText]]
) -> dict[str, Any]:
    """Cosine of int8 to fp32 vectors (same batches), and of int8 alone to int8 in a batch (an
    int8 runtime that scales activations per batch moves a vector with its batch-mates)."""
    reference = np.concatenate([fp32.encode_tokenized(batch) for batch in batches])
    batched = np.concatenate([int8.encode_tokenized(batch) for batch in batches])
    sample = [batch[0] for batch in batches]  # one of every length band
    alone = np.concatenate([int8.encode_tokenized([item]) for item in sample])
    in_batch = batched[[sum(len(b) for b in batches[:i]) for i in range(len(batches))]]
    return {
        "int8_vs_fp32": _cosine_summary(_cosines(batched, reference)),
        "int8_alone_vs_in_batch": _cosine_summary(_cosines(alone, in_batch)),
    }


def rss_after_load(
    precision: str, model_dir: Path, layers: int | None = None, served: Sequence[str] = ()
) -> dict[str, float]:
    """VmRSS / VmHWM of a fresh process that loaded the encoder and encoded two texts, then again
    after it encoded the `served` texts (length-sorted batches of 32): the fp32 model's
    embedding matrix is memory-mapped and enters RSS as texts use its rows."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as texts:
        json.dump(list(served), texts)
        texts.flush()
        command = [sys.executable, "-c", RSS_SCRIPT, precision, str(model_dir)]
        done = subprocess.run(
            [*command, str(layers or "all"), texts.name],
            capture_output=True,
            text=True,
            check=True,
        )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {key: round(value, 1) for key, value in found.items()}


def start_times(
    load: Callable[[Path], SentenceEncoder], model_dir: Path
) -> tuple[dict[str, float], SentenceEncoder]:
    """Seconds to an encoder from `load` on a fresh `model_dir` (first start: whatever the load
    builds there, such as the e5 folder or the int8 conversion, then the load itself), then on the
    same folder again (warm start: the load alone), in this process (imports already done). The
    warm encoder is returned for use; the first one is dropped before the warm load."""
    started = time.perf_counter()
    load(model_dir)
    first = time.perf_counter() - started
    gc.collect()
    started = time.perf_counter()
    encoder = load(model_dir)
    warm = time.perf_counter() - started
    return {"first_start_s": round(first, 1), "warm_start_s": round(warm, 1)}, encoder


def quality(
    encoders: dict[str, SentenceEncoder],
    seeds: tuple[int, ...],
    features_db: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Macro-F1 per set of heads trained on each precision's features (mean over `seeds`): the
    store split's own head; the shipped recipe on the fixed set and every shared set; and the
    fp32 heads on int8 features (what a head from fp32 features would do under int8)."""
    from dikkat.bench.sentiment import IN_DOMAIN, SPLIT_FRACTION, SPLIT_SEED, shared_frames
    from dikkat.bench.sentiment_recipes import recipe_sets
    from dikkat.storage.feature_cache import FeatureCache
    from dikkat.training.data import split_train_val
    from dikkat.training.features import features_for
    from dikkat.training.metrics import evaluate
    from dikkat.training.seed_head import train_with_shipped_recipe

    _, frames = shared_frames()
    store_train, store_test = split_train_val(frames[IN_DOMAIN], SPLIT_FRACTION, SPLIT_SEED)
    recipe_rows, recipe_tests = recipe_sets(frames)
    store_name = f"{IN_DOMAIN} split 75/25 seed {SPLIT_SEED} (in-domain head)"
    tests = {store_name: store_test, **recipe_tests}
    features: dict[str, dict[str, np.ndarray]] = {}
    heads: dict[str, dict[str, list]] = {}
    for name, encoder in encoders.items():
        cache = FeatureCache.open(features_db, encoder.feature_key)
        try:
            say(f"{name}: features of every set")
            features[name] = {
                test: features_for(frame["text"].tolist(), encoder, cache, progress=True)
                for test, frame in tests.items()
            }
            say(f"{name}: heads, seeds {list(seeds)}")
            heads[name] = {
                kind: [
                    train_with_shipped_recipe(rows, encoder, cache, seed=seed).head
                    for seed in seeds
                ]
                for kind, rows in (("store", store_train), ("recipe", recipe_rows))
            }
        finally:
            cache.close()

    def f1(head_precision: str, feature_precision: str, test: str) -> list[float]:
        kind = "store" if test == store_name else "recipe"
        X = features[feature_precision][test]
        return [evaluate(h, X, tests[test]["label"]).macro_f1 for h in heads[head_precision][kind]]

    shipped = {p: _shipped_head(encoder) for p, encoder in encoders.items()}
    sets = {}
    for test in tests:
        scores = {p: f1(p, p, test) for p in encoders}
        scores["fp32 heads on int8 features"] = f1("fp32", "int8", test)
        means = {k: round(float(np.mean(v)), 4) for k, v in scores.items()}
        sets[test] = {
            "n": len(tests[test]),
            "macro_f1": means,
            "macro_f1_spread": {k: round(float(np.ptp(v)), 4) for k, v in scores.items()},
            "int8_minus_fp32": round(means["int8"] - means["fp32"], 4),
            "int8_minus_fp32_per_seed": [  # same seed: same initial weights and row order
                round(b - a, 4) for a, b in zip(scores["fp32"], scores["int8"], strict=True)
            ],
            "shipped_head": {  # what each precision serves before its first retrain
                p: round(evaluate(head, features[p][test], tests[test]["label"]).macro_f1, 4)
                for p, head in shipped.items()
                if head is not None
            },
        }
    worst = min(s["int8_minus_fp32"] for s in sets.values())
    return {
        "seeds": list(seeds),
        "training_rows": {"store split": len(store_train), "shipped recipe": len(recipe_rows)},
        "sets": sets,
        "worst_int8_minus_fp32": worst,
        "within_bound": worst >= -QUALITY_BOUND,
    }


def _shipped_head(encoder: SentenceEncoder) -> Any:
    """The head a store new to this encoder and precision installs, or None if none ships."""
    from dikkat.training.heads import ShippedReference

    return ShippedReference.load(encoder).head


def run_encoder_benchmark(
    *,
    model_dir: Path,
    config: EncoderBenchConfig | None = None,
    json_path: Path | None = None,
    features_db: Path | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole comparison on the offline encoder (multilingual-e5-small) on CPU."""
    config = config or EncoderBenchConfig()
    started = time.perf_counter()
    report: dict[str, Any] = {"config": asdict(config), "machine": machine_info()}
    encoders = {  # first, so that the int8 conversion (once) is not in the RSS figures
        p: load_encoder(
            "offline", device="cpu", model_dir=model_dir, precision=p, layers=config.layers
        )
        for p in PRECISIONS
    }
    say("RSS after load and after serving, a fresh process per precision")
    served, _ = bench_texts(config.served_texts)
    rss = {p: rss_after_load(p, model_dir, config.layers, served) for p in PRECISIONS}
    texts, source = bench_texts(config.texts)
    items = [encoders["fp32"].tokenize(text) for text in texts]
    batches = _batches(items, config.batch_size)
    report["texts"] = {
        "source": source,
        "n": len(items),
        "median_tokens": int(np.median([item.cost for item in items])),
        "batch_size": config.batch_size,
    }
    say(f"ceiling: {config.windows} windows of {len(items)} texts per precision")
    ceilings = ceiling(encoders, batches, config.windows)
    latencies = latency(encoders, items[: config.latency_texts])
    report["precisions"] = {
        p: {
            "feature_key": encoders[p].feature_key,
            "runtime": encoders[p].runtime,
            "packs": encoders[p].packs,
            **ceilings[p],
            **latencies[p],
            **rss[p],
        }
        for p in PRECISIONS
    }
    fp32, int8 = report["precisions"]["fp32"], report["precisions"]["int8"]
    paired = [
        b / a for a, b in zip(fp32["windows_texts_per_s"], int8["windows_texts_per_s"], strict=True)
    ]
    report["int8_vs_fp32"] = {
        "ceiling_ratio": ratio(int8["texts_per_s"], fp32["texts_per_s"]),
        "ceiling_ratio_per_window": [round(x, 3) for x in paired],
        "p50_ratio": ratio(fp32["p50_ms"], int8["p50_ms"]),
        "rss_change": ratio(int8["rss_mb"] - fp32["rss_mb"], fp32["rss_mb"]),
        "served_rss_change": ratio(
            int8["served_rss_mb"] - fp32["served_rss_mb"], fp32["served_rss_mb"]
        ),
        "cosine": closeness(encoders["fp32"], encoders["int8"], batches),
    }
    if config.quality and shared_csv_files():
        report["quality"] = quality(
            encoders,
            config.seeds,
            features_db or Path(tempfile.mkdtemp(prefix="dikkat-bench-encoder-")) / "f.db",
            say,
        )
    else:
        report["quality"] = {"skipped": "quick run" if not config.quality else "no shared sets"}
    verdict = report["int8_vs_fp32"]
    report["targets"] = {
        f"ceiling ratio >= {SPEEDUP_TARGET}": (verdict["ceiling_ratio"] or 0) >= SPEEDUP_TARGET,
        f"RSS at least {RSS_TARGET:.0%} lower after load": (verdict["rss_change"] or 0)
        <= -RSS_TARGET,
        f"RSS at least {RSS_TARGET:.0%} lower after serving {config.served_texts} texts": (
            verdict["served_rss_change"] or 0
        )
        <= -RSS_TARGET,
        f"macro-F1 loss <= {QUALITY_BOUND} on every set": report["quality"].get("within_bound"),
    }
    report["machine"]["loadavg_end"] = loadavg()
    report["total_s"] = round(time.perf_counter() - started, 1)
    if json_path is not None:
        write_json(report, json_path)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The figures as plain-text tables."""
    speed = Table(title="encoder precision (multilingual-e5-small, CPU)", box=box.SIMPLE)
    columns = ("precision", "ceiling texts/s", "p50 ms c=1", "p99 ms c=1", "RSS MiB", "served")
    for column in (*columns, "key"):
        speed.add_column(column)
    for name, row in report["precisions"].items():
        speed.add_row(
            f"{name} ({row.get('runtime', 'torch')})",
            fmt(row["texts_per_s"]),
            fmt(row["p50_ms"]),
            fmt(row["p99_ms"]),
            fmt(row["rss_mb"], ".0f"),
            fmt(row["served_rss_mb"], ".0f"),
            row["feature_key"],
        )
    versus = report["int8_vs_fp32"]
    cos = versus["cosine"]
    lines = [
        f"int8/fp32 ceiling {fmt(versus['ceiling_ratio'], '.2f')}x "
        f"(per window {versus['ceiling_ratio_per_window']}), "
        f"p50 {fmt(versus['p50_ratio'], '.2f')}x, RSS {versus['rss_change']:+.1%} after load, "
        f"{versus['served_rss_change']:+.1%} after serving",
        f"cosine int8 vs fp32: {cos['int8_vs_fp32']}; int8 alone vs in a batch: "
        f"{cos['int8_alone_vs_in_batch']}",
    ]
    parts: list[Table | str] = [speed, *lines]
    q = report["quality"]
    if "sets" in q:
        table = Table(title=f"macro-F1, mean over seeds {q['seeds']}", box=box.SIMPLE)
        columns = ("set", "n", "fp32", "int8", "int8 - fp32", "fp32 head on int8", "shipped head")
        for column in columns:
            table.add_column(column)
        for name, row in q["sets"].items():
            f1, shipped = row["macro_f1"], row.get("shipped_head", {})
            table.add_row(
                name,
                str(row["n"]),
                fmt(f1["fp32"], ".4f"),
                fmt(f1["int8"], ".4f"),
                f"{row['int8_minus_fp32']:+.4f}",
                fmt(f1["fp32 heads on int8 features"], ".4f"),
                " / ".join(f"{p} {fmt(v, '.4f')}" for p, v in shipped.items()),
            )
        parts.append(table)
    else:
        parts.append(f"quality: skipped ({q['skipped']})")
    parts.append("targets: " + ", ".join(f"{k}: {v}" for k, v in report["targets"].items()))
    return render(*parts)
