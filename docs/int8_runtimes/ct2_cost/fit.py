"""Fit cost models to timings.csv; write fit.json.  Run: python fit.py [timings.csv]"""
from __future__ import annotations

import json, math, sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

HERE = Path(__file__).resolve().parent
df = pd.read_csv(sys.argv[1] if len(sys.argv) > 1 else HERE / "timings.csv")
df["t"] = df["median_s"] * 1000.0  # ms
df["pad"] = df["padded"] - df["real"]
n, L, S, P, t = (df[c].to_numpy(float) for c in ["n", "L", "real", "padded", "t"])
pad = P - S
sumsq = df["lengths"].map(lambda s: sum(int(x) ** 2 for x in s.split())).to_numpy(float)

rng = np.random.default_rng(0)
test = np.zeros(len(df), bool)
test[rng.choice(len(df), size=len(df) // 4, replace=False)] = True
train = ~test

MODELS = {  # name -> feature matrix (all coefficients >= 0, NNLS)
    "full: c0 + c1*n + c2*real + c3*n*L + c4*n*L^2": np.c_[np.ones_like(n), n, S, P, P * L],
    "(i) padded n*L (proportional)": np.c_[P],
    "(i') c0 + b*n*L": np.c_[np.ones_like(n), P],
    "(ii) real sum(lengths) (proportional)": np.c_[S],
    "(ii') c0 + b*real": np.c_[np.ones_like(n), S],
    "(iii) c0 + b*(real + alpha*(n*L - real))": np.c_[np.ones_like(n), S, pad],
    "(iv) (iii) + per-text c1*n": np.c_[np.ones_like(n), n, S, pad],
    "(v) c0 + b*real + a*pad + q*n*L^2 (attention)": np.c_[np.ones_like(n), S, pad, P * L],
    "(vi) c0 + c1*n + b*real + a*pad + q*n*L^2": np.c_[np.ones_like(n), n, S, pad, P * L],
    "(vii) c0 + b*real + a*pad + r*sum(l^2) + q*pad*L": np.c_[np.ones_like(n), S, pad, sumsq, pad * L],
}


def metrics(y, yhat):
    ss = ((y - yhat) ** 2).sum()
    rel = np.abs(yhat - y) / y
    return {
        "R2": round(1 - ss / ((y - y.mean()) ** 2).sum(), 4),
        "median_rel_err": round(float(np.median(rel)), 4),
        "p90_rel_err": round(float(np.quantile(rel, 0.9)), 4),
        "R2_log": round(1 - ((np.log(y) - np.log(np.clip(yhat, 1e-9, None))) ** 2).sum()
                        / ((np.log(y) - np.log(y).mean()) ** 2).sum(), 4),
    }


def fit(X, y, w=None):
    # relative-error weighting (divide rows by t): timings span 10 ms .. 1 s and noise is ~relative
    w = 1.0 / y if w is None else w
    coef, _ = nnls(X * w[:, None], y * w)
    return coef


def split_scores(X, reps=200):
    """Held-out medians over many random 75/25 splits (robustness check)."""
    r2, mre = [], []
    g = np.random.default_rng(1)
    for _ in range(reps):
        te = np.zeros(len(t), bool)
        te[g.choice(len(t), size=len(t) // 4, replace=False)] = True
        c = fit(X[~te], t[~te])
        m = metrics(t[te], X[te] @ c)
        r2.append(m["R2"]); mre.append(m["median_rel_err"])
    return {"R2_mean": round(float(np.mean(r2)), 4), "median_rel_err_mean": round(float(np.mean(mre)), 4)}


out: dict = {"n_batches": int(len(df)), "n_test": int(test.sum()), "time_unit": "ms",
             "fit": "NNLS, rows weighted by 1/t (relative error), on the 75% train split",
             "models": {}}
for name, X in MODELS.items():
    c = fit(X[train], t[train])
    out["models"][name] = {"coef_ms": [float(f"{v:.6g}") for v in c],
                           "train": metrics(t[train], X[train] @ c),
                           "test": metrics(t[test], X[test] @ c),
                           "200_splits": split_scores(X)}

# token-equivalents: unit = one real token of model (iii) / (iv)
c0, b, a = out["models"]["(iii) c0 + b*(real + alpha*(n*L - real))"]["coef_ms"]
out["iii_token_equiv"] = {"ms_per_real_token": b, "alpha_pad_per_real": round(a / b, 4),
                          "per_batch_overhead_tokens": round(c0 / b, 1)}
c0, c1, b, a = out["models"]["(iv) (iii) + per-text c1*n"]["coef_ms"]
out["iv_token_equiv"] = {"ms_per_real_token": b, "alpha_pad_per_real": round(a / b, 4),
                         "per_batch_overhead_tokens": round(c0 / b, 1),
                         "per_text_overhead_tokens": round(c1 / b, 2)}
c = out["models"]["full: c0 + c1*n + c2*real + c3*n*L + c4*n*L^2"]["coef_ms"]
unit = c[2] + c[3] + c[4] * 32  # a real token at L=32
out["full_token_equiv"] = {
    "unit": "one real token in a batch of max length 32",
    "per_batch_tokens": round(c[0] / unit, 1), "per_text_tokens": round(c[1] / unit, 2),
    "alpha_pad_vs_real_at_L": {int(l): round((c[3] + c[4] * l) / (c[2] + c[3] + c[4] * l), 3)
                               for l in (8, 16, 32, 64, 96, 128)},
    "real_token_cost_at_L_in_units": {int(l): round((c[2] + c[3] + c[4] * l) / unit, 3)
                                      for l in (8, 16, 32, 64, 96, 128)},
}
c = out["models"]["(v) c0 + b*real + a*pad + q*n*L^2 (attention)"]["coef_ms"]
out["v_token_equiv"] = {"per_batch_tokens": round(c[0] / c[1], 1), "alpha_pad_flat": round(c[2] / c[1], 4),
                        "nL2_per_real_token": float(f"{c[3] / c[1]:.4g}")}

# alpha per L band: model (iii) fitted separately in bands of L (all data; n>1 only has padding)
bands = {}
for lo, hi in [(8, 32), (33, 64), (65, 96), (97, 128)]:
    m = (L >= lo) & (L <= hi)
    X = MODELS["(iii) c0 + b*(real + alpha*(n*L - real))"][m]
    cc = fit(X, t[m])
    bands[f"L{lo}-{hi}"] = {"batches": int(m.sum()), "ms_per_real_token": round(cc[1], 5),
                            "alpha": round(cc[2] / cc[1], 3) if cc[1] else None,
                            "overhead_tokens": round(cc[0] / cc[1], 1) if cc[1] else None}
out["iii_by_L_band"] = bands
# and per n band (big batches may behave differently: cache)
nb = {}
for ns in [(1, 4), (8, 8), (16, 16), (24, 24), (32, 32)]:
    m = (n >= ns[0]) & (n <= ns[1])
    cc = fit(MODELS["(iii) c0 + b*(real + alpha*(n*L - real))"][m], t[m])
    nb[f"n{ns[0]}-{ns[1]}"] = {"batches": int(m.sum()), "ms_per_real_token": round(cc[1], 5),
                               "alpha": round(cc[2] / cc[1], 3) if cc[1] else None,
                               "overhead_tokens": round(cc[0] / cc[1], 1) if cc[1] else None}
out["iii_by_n_band"] = nb


# candidate integer cost functions, each scored as t = b*cost (one fitted scale, no intercept)
def cands(alpha, K, q):
    return {
        "sum + ceil(0.25*(max*len - sum))": lambda c: sum(c) + math.ceil(0.25 * (max(c) * len(c) - sum(c))),
        "sum + ceil(0.15*(max*len - sum)) + len*max^2//800": lambda c: sum(c) + math.ceil(0.15 * (max(c) * len(c) - sum(c))) + len(c) * max(c) ** 2 // 800,
        "48 + sum + ceil(0.15*(max*len - sum)) + len*max^2//800": lambda c: 48 + sum(c) + math.ceil(0.15 * (max(c) * len(c) - sum(c))) + len(c) * max(c) ** 2 // 800,
        "max*len": lambda c: max(c) * len(c),
        "sum": lambda c: sum(c),
        f"sum + ceil({alpha}*(max*len - sum))": lambda c: sum(c) + math.ceil(alpha * (max(c) * len(c) - sum(c))),
        f"{K} + sum + ceil({alpha}*(max*len - sum))": lambda c: K + sum(c) + math.ceil(alpha * (max(c) * len(c) - sum(c))),
        f"{K} + sum + ceil({alpha}*(max*len - sum)) + len*max^2//{q}": lambda c: K + sum(c) + math.ceil(alpha * (max(c) * len(c) - sum(c))) + len(c) * max(c) ** 2 // q,
    }


lens = df["lengths"].map(lambda s: [int(x) for x in s.split()]).tolist()
out["candidate_formulas"] = {}
A = out["iii_token_equiv"]["alpha_pad_per_real"]
K = int(round(out["iii_token_equiv"]["per_batch_overhead_tokens"]))
qv = out["v_token_equiv"]["nL2_per_real_token"]
q = int(round(1 / qv)) if qv > 0 else 10**9
alpha_r = round(A * 20) / 20  # a round number
for name, f in cands(alpha_r, K, q).items():
    cost = np.array([f(c) for c in lens], float)
    bb = fit(cost[train, None], t[train])[0]
    out["candidate_formulas"][name] = {"ms_per_unit": round(bb, 5), "train": metrics(t[train], cost[train] * bb),
                                       "test": metrics(t[test], cost[test] * bb),
                                       "200_splits": split_scores(cost[:, None])}

# robustness: alpha / overhead of (iii) and (v) with min-of-repeats instead of median, and unweighted
rob = {}
tmin = df["min_s"].to_numpy(float) * 1000
for label, y, w in [("median, 1/t weights", t, None), ("min-of-repeats, 1/t weights", tmin, None),
                    ("median, unweighted", t, np.ones_like(t))]:
    c3 = fit(MODELS["(iii) c0 + b*(real + alpha*(n*L - real))"], y, w)
    c5 = fit(MODELS["(v) c0 + b*real + a*pad + q*n*L^2 (attention)"], y, w)
    rob[label] = {"iii_alpha": round(c3[2] / c3[1], 3), "iii_overhead_tokens": round(c3[0] / c3[1], 1),
                  "iii_ms_per_token": round(c3[1], 4),
                  "v_alpha_flat": round(c5[2] / c5[1], 3), "v_overhead_tokens": round(c5[0] / c5[1], 1),
                  "v_one_token_per_nL2": round(c5[1] / c5[3], 0) if c5[3] else None}
out["robustness_all_data"] = rob

# noise floor: how well does a batch's own repeat predict its median
reps = df["times_s"].map(lambda s: [float(x) for x in s.split()])
spread = reps.map(lambda r: (max(r) - min(r)) / np.median(r))
out["repeat_noise"] = {"median_(max-min)/median": round(float(spread.median()), 3),
                       "median_abs_dev_rel": round(float(reps.map(lambda r: np.median(np.abs(np.array(r) - np.median(r))) / np.median(r)).median()), 3)}

Path(HERE / "fit.json").write_text(json.dumps(out, indent=1))
for k, v in out["models"].items():
    print(f"{k:55s} test R2 {v['test']['R2']:.3f} medRE {v['test']['median_rel_err']:.3f} | 200 splits R2 {v['200_splits']['R2_mean']:.3f} medRE {v['200_splits']['median_rel_err_mean']:.3f}  coef {v['coef_ms']}")
for k in ["robustness_all_data", "iii_token_equiv", "iv_token_equiv", "v_token_equiv", "full_token_equiv", "iii_by_L_band", "iii_by_n_band", "repeat_noise"]:
    print(k, json.dumps(out[k]))
for k, v in out["candidate_formulas"].items():
    print(f"{k:60s} test R2 {v['test']['R2']:.3f} medRE {v['test']['median_rel_err']:.3f} p90 {v['test']['p90_rel_err']:.3f} | splits R2 {v['200_splits']['R2_mean']:.3f} medRE {v['200_splits']['median_rel_err_mean']:.3f}")
