"""The project's own learning_runs with recommended_full.diff applied (SNAP=/tmp/exp23/snap3), seeds 0-9."""
import json, sys
from common import *
import dikkat
assert dikkat.__file__.startswith(os.environ["SNAP"]), dikkat.__file__
from dikkat.bench.retrain_learning import learning_runs
enc, cache, frames = setup()
r = learning_runs(enc, cache, frames, seeds=tuple(range(10)), say=lambda s: None)
json.dump(r, open(sys.argv[1], "w"), indent=1)
for row in r["summary"]:
    print(row["n"], row["promoted"], "of", row["of"], {k[:6]: v for k, v in row["change"].items()})
