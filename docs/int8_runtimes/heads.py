"""Run with dikkat's own venv (env -u PYTHONPATH /work/main/.venv/bin/python heads.py): train heads
with the shipped recipe (dikkat.training.seed_head.train_with_shipped_recipe: inner split, Adam,
lr 3e-4, batch 128, early stop) on each mode's own features, store split 75/25 stratified seed 0
(dikkat.training.data.split_train_val), seeds 0,1,2; plus a deterministic sklearn
LogisticRegression on the same features as a second opinion. Nothing is written under /work/main."""
import json, sys, time
from pathlib import Path
import numpy as np
import pandas as pd

from dikkat.training.data import load_labelled_csv, split_train_val
from dikkat.training.metrics import evaluate
from dikkat.training.seed_head import train_with_shipped_recipe

FEATURES = Path("/tmp/rt/features")
CSV = "/work/shared/data/sentiment/store_reviews_3class.csv"
SEEDS = tuple(range(10))  # the recipe's seed spread (~0.02-0.03) dwarfs the 0.005 bound


class _Item:
    __slots__ = ("text", "cost")
    def __init__(self, text): self.text, self.cost = text, 1


class FeatureTable:
    """Stands in for SentenceEncoder in features_for: vectors looked up by text (precomputed)."""
    def __init__(self, key, texts, X):
        self.feature_key, self.dim = key, X.shape[1]
        self.table = dict(zip(texts, X))
    def tokenize(self, text): return _Item(text)
    def encode_tokenized(self, items): return np.stack([self.table[i.text] for i in items])


frame = load_labelled_csv(CSV)
train, test = split_train_val(frame, 0.25, 0)
modes = sys.argv[1:] or sorted(p.stem for p in FEATURES.glob("*.npy"))
out_path = Path("/tmp/rt/heads.json")
results = json.loads(out_path.read_text()) if out_path.exists() else {}
fp32_heads = []  # the reference's heads, applied to every mode's features (paired, no training noise)
modes = ["torch-fp32"] + [m for m in modes if m != "torch-fp32"]
for mode in modes:
    if mode in results and mode != "torch-fp32":
        continue
    X = np.load(FEATURES / f"{mode}.npy")
    assert len(X) == len(frame)
    enc = FeatureTable(mode, frame["text"].tolist(), X)
    X_test = enc.encode_tokenized([_Item(t) for t in test["text"]])
    t = time.time()
    if mode == "torch-fp32" and mode in results and fp32_heads:
        continue
    f1s = []
    for seed in SEEDS:
        head = train_with_shipped_recipe(train, enc, None, seed=seed).head
        f1s.append(evaluate(head, X_test, test["label"]).macro_f1)
        if mode == "torch-fp32":
            fp32_heads.append(head)
    cross = [evaluate(h, X_test, test["label"]).macro_f1 for h in fp32_heads]
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    X_train = enc.encode_tokenized([_Item(t) for t in train["text"]])
    lr = LogisticRegression(max_iter=3000, C=1.0).fit(X_train, train["label"])
    lr_f1 = f1_score(test["label"], lr.predict(X_test), average="macro")
    results[mode] = {"head_f1_per_seed": [round(f, 4) for f in f1s], "head_f1_mean": round(float(np.mean(f1s)), 4),
                     "head_f1_std": round(float(np.std(f1s)), 4),
                     "fp32_heads_on_these_features_mean": round(float(np.mean(cross)), 4),
                     "logreg_f1": round(float(lr_f1), 4)}
    print(mode, results[mode], f"{time.time() - t:.0f}s", flush=True)
    out_path.write_text(json.dumps(results, indent=1))
