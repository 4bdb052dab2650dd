"""Run the project's own code paths with recommended.diff applied (SNAP=/tmp/exp23/snap2):
A: dikkat.bench.retrain_learning.learning_runs (100 -> 300 -> 1,000, chained), seeds 0-9, from the
   current shipped head; B: dikkat.training.seed_head.train_seed_head, seed 0."""
import json, sys
from common import *
import dikkat
assert dikkat.__file__.startswith("/tmp/exp23/snap2"), dikkat.__file__
from dikkat.bench.retrain_learning import learning_runs
enc, cache, frames = setup()
what = sys.argv[1]
if what == "A":
    r = learning_runs(enc, cache, frames, seeds=tuple(range(10)), say=lambda s: None)
    json.dump(r, open("verify_A.json", "w"), indent=1)
    for row in r["summary"]:
        print(row["n"], row["promoted"], "of", row["of"], {k[:6]: v for k, v in row["change"].items()})
    for run in r["runs"]:
        p = run["points"][-1]; print(run["seed"], p["promoted"], p["p_better"], p["candidate"])
else:
    import dikkat.training.seed_head as sh
    rep = sh.train_seed_head(enc, cache, DATA, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0, progress=False)
    for name, m in rep.evaluations.items():
        print(name, round(m.macro_f1, 4), "neutral recall", round(m.per_class["neutral"].recall, 3))
