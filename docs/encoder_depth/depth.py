"""Encoder depth: multilingual-e5-small cut to its first 8, 10 or 12 layers (mean pooling of that
layer), judged by heads trained with the shipped recipe on each depth's features, and by speed.

Three steps; features and converted models stay under --work (never in the repository):

  encode   one fp32 pass over every text of the seed corpus and the shared sets, keeping the mean
           pooled hidden states of layers 8, 10 and 12 (-> WORK/features.npz), then a check that
           the layer-12 vectors are SentenceEncoder.encode's (-> check.json beside this file)
  quality  per depth, 3 seeds: the shipped recipe's heads and the store split's in-domain head,
           scored on every test set (-> quality.json beside this file)
  speed    texts/s of the encoder truncated to 8, 10, 12 layers on the same 512 texts, windows
           interleaved between depths; torch fp32 (the product path, packed batches) and, with
           --ct2, CTranslate2 int8 folders converted from the truncated models (-> speed.json)
  tables   the markdown tables of quality.json (or --json) and speed.json

Run from the repository root: PYTHONPATH=$PWD .venv/bin/python docs/encoder_depth/depth.py encode
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dikkat.bench.common import loadavg
from dikkat.bench.lengths import sample_shared_texts
from dikkat.bench.sentiment import IN_DOMAIN, SPLIT_FRACTION, SPLIT_SEED, data_dir, shared_frames
from dikkat.bench.sentiment_recipes import _over_seeds, recipe_sets
from dikkat.hashing import text_hash
from dikkat.models.e5_image import E5_ID
from dikkat.models.encoder import SentenceEncoder, TokenizedText
from dikkat.models.loading import E5_PREFIX
from dikkat.training.data import load_labelled_csv, seed_corpus_path, split_train_val
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.seed_head import train_with_shipped_recipe

DEPTHS = (8, 10, 12)
SEEDS = (0, 1, 2)
BATCH = 32
HERE = Path(__file__).resolve().parent
E5_FOLDER = Path("var/models/encoders/multilingual-e5-small-q4-1571fc982750")
WORK = Path("/tmp/wt-depth-work")
CHECK_TEXTS = 256
QUALITY_BOUND = 0.005


def load_e5(folder: Path) -> SentenceEncoder:
    """The encoder as `load_encoder("offline")` builds it (prefix, pooling, max length), from a
    prepared folder, on CPU in fp32."""
    return SentenceEncoder.from_pretrained(
        folder,
        E5_ID,
        local_files_only=True,
        model_options={"add_pooling_layer": False},
        text_prefix=E5_PREFIX,
        max_length=128,
        pooling="mean",
    )


def all_texts(data: Path) -> list[str]:
    """Every text that a head trains on or is scored on: the seed corpus and each shared set."""
    _, frames = shared_frames(data)
    texts = load_labelled_csv(seed_corpus_path())["text"].tolist()
    for frame in frames.values():
        texts += frame["text"].tolist()
    return list(dict.fromkeys(texts))


def layer_vectors(encoder: SentenceEncoder, items: list[TokenizedText]) -> np.ndarray:
    """(B, len(DEPTHS), C): masked mean of hidden_states[k] for each depth k, one padded forward."""
    width = max(item.cost for item in items)
    ids = torch.full((len(items), width), encoder.tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : item.cost] = torch.tensor(item.input_ids)
        mask[row, : item.cost] = 1
    with torch.inference_mode():
        states = encoder.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        pooled = [encoder.pool(states.hidden_states[k], mask) for k in DEPTHS]  # (B, C) each
    return torch.stack(pooled, 1).numpy()


def encode(args: argparse.Namespace) -> None:
    """One fp32 pass over every text, in length-sorted batches, saved in chunks (resumable)."""
    torch.set_num_threads(args.threads)
    encoder = load_e5(args.e5)
    texts = all_texts(args.data)
    chunks = args.work / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    for path in sorted(chunks.glob("*.npz")):
        done.update(np.load(path)["hashes"].tolist())
    todo = [t for t in texts if text_hash(t) not in done]
    items = sorted((encoder.tokenize(t) for t in todo), key=lambda item: item.cost)
    print(f"{len(texts)} texts, {len(done)} already encoded, {len(items)} to go", flush=True)
    started, per_chunk = time.perf_counter(), 50 * BATCH
    for first in range(0, len(items), per_chunk):
        part = items[first : first + per_chunk]
        vectors = np.concatenate(
            [layer_vectors(encoder, part[i : i + BATCH]) for i in range(0, len(part), BATCH)]
        )
        hashes = np.array([text_hash(item.text) for item in part])
        np.savez(chunks / f"{len(done) + first:06d}.npz", hashes=hashes, vectors=vectors)
        rate = (first + len(part)) / (time.perf_counter() - started)
        print(f"{first + len(part)}/{len(items)} ({rate:.1f} texts/s)", flush=True)
    parts = [np.load(path) for path in sorted(chunks.glob("*.npz"))]
    hashes = np.concatenate([p["hashes"] for p in parts])
    vectors = np.concatenate([p["vectors"] for p in parts])
    np.savez(args.work / "features.npz", hashes=hashes, vectors=vectors, depths=np.array(DEPTHS))
    check = check_layer12(encoder, texts, dict(zip(hashes.tolist(), vectors, strict=True)))
    (HERE / "check.json").write_text(json.dumps(check, indent=1))
    print(json.dumps(check), flush=True)


def check_layer12(
    encoder: SentenceEncoder, texts: list[str], vectors: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Cosine of the stored layer-12 vectors to SentenceEncoder.encode's (packed batches)."""
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), CHECK_TEXTS, replace=False)]
    product = np.concatenate(
        [encoder.encode(sample[i : i + BATCH]) for i in range(0, len(sample), BATCH)]
    )
    ours = np.stack([vectors[text_hash(t)][DEPTHS.index(12)] for t in sample])
    cosine = cosines(ours, product)
    return {
        "texts": CHECK_TEXTS,
        "min_cosine": float(cosine.min()),
        "max_abs_diff": float(np.abs(ours - product).max()),
        "within_1e-4": bool(cosine.min() >= 1 - 1e-4),
    }


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


class CachedFeatures:
    """One depth's stored vectors behind the encoder interface that `features_for` calls."""

    def __init__(self, vectors: dict[str, np.ndarray], depth: int) -> None:
        self.vectors = vectors
        self.dim = next(iter(vectors.values())).shape[0]
        self.feature_key = f"{E5_ID}|mean|128|{E5_PREFIX}|layer {depth}"

    def tokenize(self, text: str) -> TokenizedText:
        return TokenizedText(text, (), False)

    def encode_tokenized(self, items: list[TokenizedText]) -> np.ndarray:
        return np.stack([self.vectors[text_hash(item.text)] for item in items])


def quality(args: argparse.Namespace) -> None:
    """Per depth: 3 seeds of the recipe's heads and of the store split's head, every test set."""
    torch.set_num_threads(1)
    stored = np.load(args.work / "features.npz")
    hashes, vectors = stored["hashes"].tolist(), stored["vectors"]
    _, frames = shared_frames(args.data)
    store_train, store_test = split_train_val(frames[IN_DOMAIN], SPLIT_FRACTION, SPLIT_SEED)
    recipe_rows, recipe_tests = recipe_sets(frames)
    store_name = f"{IN_DOMAIN} split 75/25 seed {SPLIT_SEED} (in-domain head)"
    tests = {store_name: store_test, **recipe_tests}
    report: dict[str, Any] = {
        "seeds": list(args.seeds),
        "training_rows": {"store split": len(store_train), "shipped recipe": len(recipe_rows)},
        "depths": {},
    }
    for d, depth in enumerate(DEPTHS):
        features = CachedFeatures(dict(zip(hashes, vectors[:, d], strict=True)), depth)
        heads = {
            kind: [train_with_shipped_recipe(rows, features, None, seed=s).head for s in args.seeds]
            for kind, rows in (("store", store_train), ("recipe", recipe_rows))
        }
        sets = {}
        for name, test in tests.items():
            X = features_for(test["text"].tolist(), features, None, progress=False)
            kind = "store" if name == store_name else "recipe"
            metrics = [evaluate(head, X, test["label"]) for head in heads[kind]]
            sets[name] = {
                **_over_seeds(metrics),
                "macro_f1_per_seed": [round(m.macro_f1, 4) for m in metrics],
            }
        report["depths"][str(depth)] = sets
        print(f"layer {depth}: " + json.dumps({n: s["macro_f1"] for n, s in sets.items()}))
    full = report["depths"]["12"]
    for depth in DEPTHS[:-1]:
        cut = report["depths"][str(depth)]
        report[f"{depth}_minus_12"] = {
            name: {
                "mean": round(cut[name]["macro_f1"] - full[name]["macro_f1"], 4),
                # same seed: same initial weights, inner split and row order
                "per_seed": [
                    round(a - b, 4)
                    for a, b in zip(
                        cut[name]["macro_f1_per_seed"], full[name]["macro_f1_per_seed"], strict=True
                    )
                ],
            }
            for name in tests
        }
        worst = min(x["mean"] for x in report[f"{depth}_minus_12"].values())
        report[f"{depth}_within_bound"] = worst >= -QUALITY_BOUND
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(format_quality(report))


def format_quality(report: dict[str, Any]) -> str:
    """Markdown: one row per test set and depth. The paired difference to 12 layers is shown per
    seed (up to 3 seeds) and as its mean's one-sided 95% lower bound (Student t over seeds)."""
    from scipy.stats import t as student

    few = len(report["seeds"]) <= 3
    lines = [
        f"| test set | n | layers | macro-F1 (spread) | vs 12{' (per seed)' if few else ''} | "
        "95% low | recall neg / neu / pos | answered neutral |",
        "|---|---:|---:|---|---|---:|---|---:|",
    ]
    for name in report["depths"]["12"]:
        for depth in DEPTHS:
            m = report["depths"][str(depth)][name]
            recall = " / ".join(
                f"{m['recall'][label]:.2f}" if label in m["recall"] else "–"
                for label in ("negative", "neutral", "positive")
            )
            versus, low = "–", "–"
            delta = report.get(f"{depth}_minus_12", {}).get(name)
            if delta:
                x = np.array(delta["per_seed"])
                versus = f"{delta['mean']:+.4f}"
                versus += f" ({', '.join(f'{v:+.3f}' for v in x)})" if few else ""
                spread = student.ppf(0.95, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
                low = f"{x.mean() - spread:+.4f}"
            lines.append(
                f"| {name} | {m['n']:,} | {depth} | {m['macro_f1']:.4f} "
                f"({m['macro_f1_spread']:.4f}) | {versus} | {low} | {recall} | "
                f"{m['answered_neutral']:.0%} |"
            )
    return "\n".join(lines)


def truncated(model: nn.Module, layers: nn.ModuleList, depth: int) -> None:
    """Run `model` with the first `depth` of `layers` (the full list is kept by the caller)."""
    model.encoder.layer = nn.ModuleList(layers[:depth])
    model.config.num_hidden_layers = depth


def ct2_vectors(ct2, items: list[TokenizedText]) -> np.ndarray:
    """Mean pooled CTranslate2 states, as SentenceEncoder does on the int8 path."""
    hidden = ct2.last_hidden_state([item.input_ids for item in items])  # (B, T, C)
    mask = np.zeros(hidden.shape[:2], dtype=np.float32)
    for row, item in enumerate(items):
        mask[row, : item.cost] = 1
    return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)


def speed(args: argparse.Namespace) -> None:
    """Texts/s per depth over the same length-sorted batches; each window runs every depth, and
    the order of the depths rotates from window to window so drifting load hits each alike."""
    from dikkat.models.ct2_encoder import Ct2Encoder, convert_int8

    torch.set_num_threads(args.threads)
    encoder = load_e5(args.e5)
    model = encoder.model
    layers = model.encoder.layer
    files = sorted(args.data.glob("*.csv"))  # as `dikkat bench encoder` draws its texts
    texts, source = sample_shared_texts(files, args.texts, 0), [f.name for f in files]
    items = sorted((encoder.tokenize(t) for t in texts), key=lambda item: item.cost)
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    runners = {}
    for depth in DEPTHS:
        runners[f"torch fp32, {depth} layers"] = (depth, encoder.encode_tokenized)
    reference: dict[int, np.ndarray] = {}
    for depth in DEPTHS:  # a truncated model gives hidden_states[depth] of the full one
        truncated(model, layers, depth)
        reference[depth] = np.concatenate([encoder.encode_tokenized(b) for b in batches])
    truncated(model, layers, 12)
    check = {}
    stored = args.work / "features.npz"
    if stored.is_file():
        saved = np.load(stored)
        index = {h: i for i, h in enumerate(saved["hashes"].tolist())}
        rows = [index[text_hash(item.text)] for item in items]
        for d, depth in enumerate(DEPTHS):
            cos = cosines(reference[depth], saved["vectors"][rows, d])
            check[f"truncated {depth} vs hidden_states[{depth}]: min cosine"] = float(cos.min())
    if args.ct2:
        for depth in DEPTHS:
            folder = args.work / f"ct2-int8-{depth}-layers"
            if not (folder / "model.bin").is_file():
                truncated(model, layers, depth)
                convert_int8(model, encoder.tokenizer, folder)
            ct2 = Ct2Encoder(folder, args.threads)
            vectors = np.concatenate([ct2_vectors(ct2, b) for b in batches])
            check[f"ct2 int8 {depth} vs torch fp32 {depth}: mean cosine"] = float(
                cosines(vectors, reference[depth]).mean()
            )
            runners[f"ct2 int8, {depth} layers"] = (None, lambda b, c=ct2: ct2_vectors(c, b))
        truncated(model, layers, 12)

    def run(name: str) -> float:
        depth, forward = runners[name]
        if depth is not None:
            truncated(model, layers, depth)
        started = time.perf_counter()
        for batch in batches:
            forward(batch)
        return len(items) / (time.perf_counter() - started)

    names = list(runners)
    for name in names:
        run(name)  # warm-up, not timed
    rates: dict[str, list[float]] = {name: [] for name in names}
    load_start = loadavg()
    for window in range(args.windows):
        shift = window % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(run(name))
        print(
            f"window {window + 1}/{args.windows}: "
            + ", ".join(f"{n} {rates[n][-1]:.1f}" for n in names),
            flush=True,
        )
    truncated(model, layers, 12)
    report: dict[str, Any] = {
        "texts": {
            "source": source,
            "n": len(items),
            "median_tokens": int(np.median([i.cost for i in items])),
            "batch_size": BATCH,
        },
        "threads": args.threads,
        "windows": args.windows,
        "cpus": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "checks": check,
        "runs": {},
    }
    for name in names:
        runtime = name.split(",")[0]
        full = f"{runtime}, 12 layers"
        per_window = [a / b for a, b in zip(rates[name], rates[full], strict=True)]
        report["runs"][name] = {
            "texts_per_s": round(float(np.median(rates[name])), 1),
            "windows_texts_per_s": [round(x, 1) for x in rates[name]],
            "ratio_to_12": round(float(np.median(per_window)), 3),
            "ratio_to_12_per_window": [round(x, 3) for x in per_window],
        }
    (HERE / "speed.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["checks"], indent=1))
    print(format_speed(report))


def format_speed(report: dict[str, Any]) -> str:
    lines = [
        "| runtime | layers | texts/s (median) | speed vs 12 layers (median of window ratios, "
        "range) |",
        "|---|---:|---:|---|",
    ]
    for name, run in report["runs"].items():
        runtime, depth = name.split(", ")
        ratios = run["ratio_to_12_per_window"]
        lines.append(
            f"| {runtime} | {depth.split()[0]} | {run['texts_per_s']:.1f} | "
            f"{run['ratio_to_12']:.3f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("encode", "quality", "speed", "tables"))
    parser.add_argument("--e5", type=Path, default=E5_FOLDER, help="prepared e5 folder")
    parser.add_argument("--data", type=Path, default=data_dir(), help="the shared sentiment sets")
    parser.add_argument("--work", type=Path, default=WORK, help="features and converted models")
    parser.add_argument("--threads", type=int, default=1, help="torch / CTranslate2 threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--json", type=Path, default=HERE / "quality.json", help="quality: out")
    parser.add_argument("--texts", type=int, default=512, help="speed: how many texts")
    parser.add_argument("--windows", type=int, default=7, help="speed: timed windows per run")
    parser.add_argument("--ct2", action="store_true", help="speed: also CTranslate2 int8")
    args = parser.parse_args(argv)
    if args.step == "tables":
        print(format_quality(json.loads(args.json.read_text())))
        print()
        print(format_speed(json.loads((HERE / "speed.json").read_text())))
        return
    {"encode": encode, "quality": quality, "speed": speed}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
