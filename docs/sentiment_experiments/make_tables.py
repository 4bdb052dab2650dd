"""Markdown tables for REPORT.md from the *.jsonl result files."""
import json, numpy as np
from collections import defaultdict

def load(files):
    out = defaultdict(list)
    for fn, rename in files:
        for line in open(fn):
            r = json.loads(line)
            if "runs" not in r or "summary" not in r: continue
            name = rename.get(r["name"], r["name"])
            if name is None: continue
            out[name].append(r)
    return out

A = load([
 ("round1.jsonl", {"baseline (lr1e-3 b64, as shipped)": "current recipe (Adam 1e-3, batch 64, best-accuracy checkpoint)", "lr3e-4 b128": "lr 3e-4, batch 128", "lr1e-4 b128": "lr 1e-4, batch 128"}),
 ("round4_seeds5-9.jsonl", {"baseline (lr1e-3 b64, as shipped)": "current recipe (Adam 1e-3, batch 64, best-accuracy checkpoint)", "R (lr3e-4 b128)": "lr 3e-4, batch 128", "lr1e-4 b128": "lr 1e-4, batch 128", "R select loss swa5": "R select loss swa5", "lr1e-4 b128 select loss": "lr1e-4 b128 select loss"}),
 ("round2.jsonl", {}), ("round3.jsonl", {}), ("round8.jsonl", {}),
])
LS = load([("round5_lshead.jsonl", {})])
SINGLE = load([("round6_single.jsonl", {})])

def cell(vals, sign=True):
    v = np.array(vals); f = "{:+.3f}" if sign else "{:.3f}"
    return f"{f.format(v.mean())} ({f.format(v.min())}..{f.format(v.max())})"

def table(groups, start_key=None, title_steps=("1000",)):
    lines = ["| variant | seeds | Δ store macro-F1 | promoted | Δ store neutral recall | Δ films F1 | Δ films polarity acc. | Δ tweets F1 | Δ tweets polarity acc. | fixed F1 | Δ films F1 at 100 / 300 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, recs in groups.items():
        runs = [run for r in recs for run in r["runs"]]
        seeds = sorted(run["seed"] for run in runs)
        steps = [p["n"] for p in runs[0]["points"]]
        i = steps.index(1000)
        # deltas relative to the start head: recompute from summary files' START is not stored; use summary deltas
        d = defaultdict(list); prom = 0; fixed = []
        early = defaultdict(list)
        for r in recs:
            s = r["summary"]["1000"]
            # per-seed deltas: reconstruct from runs using the summary's start = cand - delta
        for r in recs:
            summ = r["summary"]
            for run in r["runs"]:
                p = run["points"][i]
                for k in ["store", "store_neu_recall", "films", "films_polacc", "tweets", "tweets_polacc"]:
                    d[k].append(p["cand"][k] - START[k])
                prom += p["promoted"]; fixed.append(p["fixed"])
                for j, n in enumerate(steps):
                    if n in (100, 300):
                        early[n].append(run["points"][j]["cand"]["films"] - START["films"])
        e = " / ".join(f"{np.mean(early[n]):+.3f}" for n in (100, 300) if early[n]) or "–"
        lines.append(f"| {name} | {len(seeds)} ({seeds[0]}-{seeds[-1]}) | {cell(d['store'])} | {prom} of {len(seeds)} | {cell(d['store_neu_recall'])} | {cell(d['films'])} | {cell(d['films_polacc'])} | {cell(d['tweets'])} | {cell(d['tweets_polacc'])} | {np.mean(fixed):.3f} | {e} |")
    return "\n".join(lines)

START = {'store': 0.5785, 'store_neu_recall': 0.3384, 'films': 0.6899, 'films_polacc': 0.8654, 'tweets': 0.6922, 'tweets_polacc': 0.785}
print("## A-main\n"); print(table(A)); print()
print("## A-single\n"); print(table(SINGLE)); print()
START = {'store': 0.5992, 'store_neu_recall': 0.4068, 'films': 0.7269, 'films_polacc': 0.8702, 'tweets': 0.7018, 'tweets_polacc': 0.7827}
print("## A-LS-head\n"); print(table(LS)); print()

# B
B = defaultdict(dict); B75 = defaultdict(dict)
for fn in ["b_round1.jsonl", "b_round2.jsonl", "b_round3.jsonl", "b_round4.jsonl"]:
    for line in open(fn):
        r = json.loads(line)
        for x in r["runs"]:
            (B if r["protocol"] == "full" else B75)[r["name"]][x["seed"]] = x
print("## B-full\n")
print("| recipe | seeds | store macro-F1 | store neutral recall | fixed-set macro-F1 | paired Δ store vs baseline (same seeds) |")
print("|---|---|---|---|---|---|")
base = B["baseline (shipped recipe)"]
for name, d in B.items():
    s = sorted(d)
    st = [d[k]["store"] for k in s]; nr = [d[k]["store_neu_recall"] for k in s]; fx = [d[k]["fixed"] for k in s]
    pd_ = [d[k]["store"] - base[k]["store"] for k in s if k in base]
    wins = sum(x > 0 for x in pd_)
    print(f"| {name} | {len(s)} ({s[0]}-{s[-1]}) | {cell(st, False)} | {cell(nr, False)} | {cell(fx, False)} | {np.mean(pd_):+.4f}, better in {wins} of {len(pd_)} |")
print("\n## B-75\n")
print("| recipe | seeds | store macro-F1 | neutral recall | fixed | films polarity acc. | tweets polarity acc. | films F1 | tweets F1 | films said neutral |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, d in B75.items():
    s = sorted(d); g = lambda k: cell([d[x][k] for x in s], False)
    print(f"| {name} | {len(s)} | {g('store')} | {g('store_neu_recall')} | {g('fixed')} | {g('films_polacc')} | {g('tweets_polacc')} | {g('films')} | {g('tweets')} | {g('films_said_neutral')} |")
