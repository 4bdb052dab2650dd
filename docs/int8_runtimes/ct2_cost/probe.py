"""Time CTranslate2 int8 e5 forward on controlled batches; write timings.csv.

Run: cd /tmp/ct2cost && PYTHONPATH=/work/main /work/main/.venv/bin/python probe.py [--batches N] [--rounds R]
"""
from __future__ import annotations

import argparse, csv, json, os, random, sys, time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from dikkat.models.loading import load_encoder

HERE = Path(__file__).resolve().parent
NS = [1, 2, 4, 8, 16, 24, 32]
KINDS = ["flat", "uniform", "onelong", "half", "twolevel"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=420)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "timings.csv"))
    ap.add_argument("--model-dir", default=str(HERE / "models"))
    args = ap.parse_args()
    rng = random.Random(args.seed)

    enc = load_encoder("e5", device="cpu", precision="int8", model_dir=Path(args.model_dir))
    assert enc.runtime == "ctranslate2", enc.runtime
    threads = torch.get_num_threads()  # ct2_encoder passes this as intra_threads
    print(f"runtime={enc.runtime} intra_threads={threads} cpus={os.cpu_count()}", flush=True)

    # real reviews, tokenized like the bot (prefix + specials, truncated to max_length)
    import pandas as pd
    texts = pd.read_csv("/work/shared/data/sentiment/store_reviews_3class.csv")["text"].dropna()
    by_len: dict[int, list[tuple[int, ...]]] = defaultdict(list)
    for t in texts.astype(str).tolist():
        item = enc.tokenize(t)
        by_len[item.cost].append(item.input_ids)
    longer = sorted(by_len)
    print("token lengths available:", min(longer), "..", max(longer), flush=True)
    closing = enc._closing_specials

    def text_of(length: int) -> tuple[int, ...]:
        if by_len.get(length):
            return rng.choice(by_len[length])
        # no review of exactly this length: cut a longer real review, keeping closing specials
        src = rng.choice(by_len[min(k for k in longer if k > length)])
        return src[: length - closing] + src[len(src) - closing :]

    def lengths_for(n: int, L: int, kind: str) -> list[int]:
        lo = 4
        if n == 1 or kind == "flat":
            return [L] * n
        if kind == "uniform":  # one at L, rest uniform in [r*L, L]
            r = rng.uniform(0.1, 0.9)
            return [L] + [rng.randint(max(lo, int(r * L)), L) for _ in range(n - 1)]
        if kind == "onelong":  # one long + short ones
            s = rng.randint(lo, max(lo, L // 4))
            return [L] + [max(lo, s + rng.randint(-2, 2)) for _ in range(n - 1)]
        if kind == "half":
            s = rng.randint(lo, max(lo, L // 2))
            k = max(1, n // 2)
            return [L] * k + [s] * (n - k)
        if kind == "twolevel":  # a share p of long ones, rest short
            s = rng.randint(lo, max(lo, int(L * 0.6)))
            k = max(1, round(n * rng.uniform(0.05, 0.95)))
            return [L] * k + [s] * (n - k)
        raise ValueError(kind)

    batches = []
    for b in range(args.batches):
        n = NS[b % len(NS)]
        L = rng.randint(8, 128)
        kind = KINDS[(b // len(NS)) % len(KINDS)] if n > 1 else "flat"
        lens = lengths_for(n, L, kind)
        rng.shuffle(lens)
        ids = [text_of(l) for l in lens]
        assert [len(x) for x in ids] == lens
        batches.append(dict(id=b, n=n, L=max(lens), kind=kind, lens=lens, ids=ids))

    forward = enc._ct2.last_hidden_state  # what SentenceEncoder._encode_ct2 calls, ids in

    for _ in range(3):  # warm-up
        forward(batches[-1]["ids"])
        forward(batches[0]["ids"])
    times: dict[int, list[float]] = defaultdict(list)
    started = time.time()
    for r in range(args.rounds):  # every round visits every batch once, in a fresh random order
        order = list(range(len(batches)))
        rng.shuffle(order)
        for i in order:
            ids = batches[i]["ids"]
            t0 = time.perf_counter()
            out = forward(ids)
            times[i].append(time.perf_counter() - t0)
            assert out.shape[:2] == (len(ids), batches[i]["L"])
        print(f"round {r + 1}/{args.rounds} done, {time.time() - started:.0f}s", flush=True)

    with open(args.out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "n", "L", "kind", "real", "padded", "median_s", "min_s", "times_s", "lengths"])
        for b in batches:
            ts = times[b["id"]]
            w.writerow([b["id"], b["n"], b["L"], b["kind"], sum(b["lens"]), b["n"] * b["L"],
                        f"{np.median(ts):.6f}", f"{min(ts):.6f}",
                        " ".join(f"{t:.6f}" for t in ts), " ".join(map(str, b["lens"]))])
    print("wrote", args.out, flush=True)


if __name__ == "__main__":
    main()
