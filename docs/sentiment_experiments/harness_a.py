"""The `dikkat bench retrain --learning` protocol (copied from dikkat.bench.retrain_learning.learning_runs)
with a pluggable fit and richer metrics (neutral recall, polarity accuracy, fixed set)."""
from __future__ import annotations
import functools, json, sys, time
import numpy as np
from common import *
from variants import train_x, SHIPPED
from dikkat.config import Settings
from dikkat.training.candidate import train_candidate
from dikkat.training.data import split_train_val
from dikkat.training.features import features_for
from dikkat.training.heads import ShippedReference
from dikkat.training.metrics import evaluate
from dikkat.training.promotion import decide
from dikkat.training.seed_head import PUBLIC_SETS

DOMAIN = "store_reviews_3class.csv"
SHORT = {DOMAIN: "store", "movies_beyazperde_binary.csv": "films", "tweets_aydin_binary.csv": "tweets"}

enc, cache, frames = setup()
settings = Settings()
shipped = ShippedReference.load(enc)
SHIPPED["head"] = shipped.head
pool, held_out = split_train_val(frames[DOMAIN], 0.25, 0)
tests = {"store": held_out}
for p in PUBLIC_SETS:
    if p.file != DOMAIN:
        tests[SHORT[p.file]] = split_train_val(frames[p.file], 0.25, 0)[1]
X = {n: features_for(t["text"].tolist(), enc, cache, progress=False) for n, t in tests.items()}


def scores(head):
    out = {}
    for n, t in tests.items():
        m = evaluate(head, X[n], t["label"])
        out[n] = round(m.macro_f1, 4)
        if n == "store":
            out["store_neu_recall"] = round(m.per_class["neutral"].recall, 4)
        else:
            out[n + "_polacc"] = round(m.binary_accuracy, 4)
    return out


START = scores(shipped.head)


def protocol(fit_kwargs=None, *, feedback_weight=None, rehearse=True, seeds=(0, 1, 2, 3, 4),
             steps=(100, 300, 1000), chain=True, rehearsal=None, fit=None, say=None):
    fit = fit or functools.partial(train_x, **(fit_kwargs or {}))
    fw = settings.retrain_feedback_weight if feedback_weight is None else feedback_weight
    buf = (rehearsal or shipped.rehearsal) if rehearse else None
    runs = []
    for seed in seeds:
        order = pool.sample(frac=1.0, random_state=seed)
        active, points = shipped.head, []
        for n in steps:
            fb = list(zip(order["text"].iloc[:n], order["label"].iloc[:n], strict=True))
            t = time.time()
            rep = train_candidate(enc, cache, active, fb, holdout_share=settings.retrain_feedback_holdout,
                                  seed=seed, shipped=shipped.head, rehearsal=buf, feedback_weight=fw, fit=fit)
            d = decide(rep.before, rep.after, held=rep.held, floor=rep.shipped_fixed - settings.retrain_tolerance,
                       confidence=settings.retrain_confidence, tolerance=settings.retrain_tolerance,
                       min_feedback_eval=settings.retrain_min_feedback_eval)
            if d.promote and chain:
                active = rep.head
            pt = {"n": n, "promoted": bool(d.promote), "p_better": d.p_better,
                  "fixed": round(rep.after["fixed"]["macro_f1"], 4), "cand": scores(rep.head),
                  "secs": round(time.time() - t, 1)}
            if say:
                say(f"  seed {seed} n {n}: {pt}")
            points.append(pt)
        runs.append({"seed": seed, "points": points})
    return runs


def summary(runs, steps=(100, 300, 1000)):
    rows = {}
    for i, n in enumerate(steps):
        pts = [r["points"][i] for r in runs]
        row = {"promoted": sum(p["promoted"] for p in pts), "of": len(pts)}
        for k in ["store", "films", "tweets", "store_neu_recall", "films_polacc", "tweets_polacc"]:
            d = np.array([p["cand"][k] - START[k] for p in pts])
            row[k] = (round(float(d.mean()), 4), round(float(d.min()), 4), round(float(d.max()), 4))
        row["fixed"] = (round(float(np.mean([p["fixed"] for p in pts])), 4),)
        row["p_better"] = [p["p_better"] for p in pts]
        rows[n] = row
    return rows


def run_variants(variants, out, **common):
    for name, spec in variants.items():
        spec = dict(spec)
        kw = spec.pop("fit_kwargs", {})
        t = time.time()
        runs = protocol(kw, **{**common, **spec})
        steps = spec.get("steps", common.get("steps", (100, 300, 1000)))
        s = summary(runs, steps)
        rec = {"name": name, "fit_kwargs": kw, "spec": {k: v for k, v in spec.items() if k != "rehearsal"},
               "summary": s, "runs": runs, "secs": round(time.time() - t)}
        with open(out, "a") as f:
            f.write(json.dumps(rec, default=str) + "\n")
        last = s[steps[-1]]
        print(f"{name:40s} n={steps[-1]} store {last['store']} promoted {last['promoted']}/{last['of']} "
              f"films {last['films']} tweets {last['tweets']} neu {last['store_neu_recall']} "
              f"fixed {last['fixed']} [{rec['secs']}s]", flush=True)


def set_shipped(head):
    """Run the protocol from another shipped head (same rehearsal buffer: its rows do not depend on the head)."""
    global shipped, START
    shipped = ShippedReference(head, shipped.rehearsal)
    SHIPPED["head"] = head
    START = scores(head)
    return START
