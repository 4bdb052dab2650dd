"""The shipped head's recipe (dikkat train seed-head / train_with_shipped_recipe) with a pluggable fit.

Protocol 'full': the seed-head data (seed-train + all of both MIT sets), scored on the fixed set
and on all of store_reviews_3class.csv (never trained on).
Protocol '75': sentiment_recipes.recipe_sets (75% of each MIT set), scored on the MIT sets' held-out
25% (polarity accuracy, macro-F1), the fixed set and the store reviews."""
from __future__ import annotations
import functools, json, time
import numpy as np, pandas as pd
from common import *
from variants import train_x, SHIPPED
from dikkat.training.candidate import seed_split, train_on_inner_split
from dikkat.training.features import features_for
from dikkat.training.metrics import evaluate
from dikkat.training.seed_head import PUBLIC_SETS, LEARNING_RATE, BATCH_SIZE
from dikkat.bench.sentiment_recipes import recipe_sets

enc, cache, frames = setup()
seed_train, evaluation = seed_split()


def full_data():
    parts = [seed_train.assign(source="seed_corpus.csv", polarity_only=False)]
    for p in PUBLIC_SETS:
        if p.trainable:
            parts.append(frames[p.file].assign(source=p.file, polarity_only=p.two_class))
    data = pd.concat(parts, ignore_index=True).drop_duplicates("text", keep="first")
    return data[~data["text"].isin(set(evaluation["text"]))].reset_index(drop=True)


FULL = full_data()
R75, TESTS75 = recipe_sets(frames)
TESTS_FULL = {"fixed": evaluation, "store": frames["store_reviews_3class.csv"]}
XF = {n: features_for(t["text"].tolist(), enc, cache, progress=False) for n, t in TESTS_FULL.items()}
SHORT = {"fixed set (seed corpus 25%)": "fixed", "movies_beyazperde_binary.csv (25% held out)": "films",
         "tweets_aydin_binary.csv (25% held out)": "tweets", "store_reviews_3class.csv (never trained on)": "store"}
X75 = {SHORT[n]: features_for(t["text"].tolist(), enc, cache, progress=False) for n, t in TESTS75.items()}
T75 = {SHORT[n]: t for n, t in TESTS75.items()}


def metrics(head, Xs, Ts):
    out = {}
    for n, t in Ts.items():
        m = evaluate(head, Xs[n], t["label"])
        out[n] = round(m.macro_f1, 4)
        if n == "store":
            out["store_neu_recall"] = round(m.per_class["neutral"].recall, 4)
            out["store_acc"] = round(m.accuracy, 4)
        if m.binary_accuracy is not None:
            out[n + "_polacc"] = round(m.binary_accuracy, 4)
            conf = np.array(m.confusion)
            out[n + "_said_neutral"] = round(float(conf[:, 1].sum() / m.n), 3)
    return out


def train(data, seed, kw):
    fit = functools.partial(train_x, **kw)
    return train_on_inner_split(data, enc, cache, seed=seed, fit=fit, lr=LEARNING_RATE,
                                batch_size=BATCH_SIZE, **({} if "_opts" not in kw else {}))


def run(kw, seeds=(0, 1, 2, 3, 4), protocol="full", opts=None):
    res = []
    for seed in seeds:
        t = time.time()
        if protocol == "full":
            r = train_on_inner_split(FULL, enc, cache, seed=seed, fit=functools.partial(train_x, **kw),
                                     **{"lr": LEARNING_RATE, "batch_size": BATCH_SIZE, **(opts or {})})
            m = metrics(r.head, XF, TESTS_FULL)
        else:
            r = train_on_inner_split(R75, enc, cache, seed=seed, fit=functools.partial(train_x, **kw),
                                     **{"lr": LEARNING_RATE, "batch_size": BATCH_SIZE, **(opts or {})})
            m = metrics(r.head, X75, T75)
        m["best_epoch"] = r.best_epoch; m["epochs"] = len(r.history); m["secs"] = round(time.time() - t, 1)
        res.append({"seed": seed, **m})
    return res


def agg(res, keys):
    return {k: (round(float(np.mean([r[k] for r in res])), 4), round(float(np.min([r[k] for r in res])), 4),
                round(float(np.max([r[k] for r in res])), 4)) for k in keys if k in res[0]}


def run_variants(variants, out, protocol="full", seeds=(0, 1, 2, 3, 4)):
    for name, spec in variants.items():
        kw = dict(spec.get("fit_kwargs", {}))
        t = time.time()
        res = run(kw, seeds=seeds, protocol=protocol, opts=spec.get("opts"))
        keys = ["store", "store_neu_recall", "fixed", "films", "films_polacc", "tweets", "tweets_polacc",
                "films_said_neutral", "tweets_said_neutral"]
        a = agg(res, keys)
        with open(out, "a") as f:
            f.write(json.dumps({"name": name, "protocol": protocol, "spec": spec, "agg": a, "runs": res}, default=str) + "\n")
        print(f"[{protocol}] {name:38s} " + " ".join(f"{k} {v[0]:.3f}({v[1]:.3f}..{v[2]:.3f})" for k, v in a.items())
              + f" [{time.time()-t:.0f}s] ep {[r['best_epoch'] for r in res]}", flush=True)
