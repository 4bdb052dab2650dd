import sys
from harness_a import *
V = {
 "baseline (lr1e-3 b64, as shipped)": {},
 "lr3e-4 b128": {"fit_kwargs": dict(lr=3e-4, batch_size=128)},
 "lr3e-4 b128 swa5": {"fit_kwargs": dict(lr=3e-4, batch_size=128, swa=5)},
 "lr1e-3 b64 swa5": {"fit_kwargs": dict(swa=5)},
 "lr1e-4 b128": {"fit_kwargs": dict(lr=1e-4, batch_size=128)},
 "lr3e-4 b128 scratch": {"fit_kwargs": dict(lr=3e-4, batch_size=128, init_mode="scratch")},
 "lr3e-4 b128 init=shipped": {"fit_kwargs": dict(lr=3e-4, batch_size=128, init_mode="shipped")},
 "lr3e-4 b128 select f1_3": {"fit_kwargs": dict(lr=3e-4, batch_size=128, select="f1_3")},
 "lr3e-4 b128 select wf1": {"fit_kwargs": dict(lr=3e-4, batch_size=128, select="wf1")},
 "lr3e-4 b128 soup3": {"fit_kwargs": dict(lr=3e-4, batch_size=128, soup=3)},
 "lr3e-4 b128 no rehearsal": {"fit_kwargs": dict(lr=3e-4, batch_size=128), "rehearse": False},
 "baseline no rehearsal": {"rehearse": False},
}
print("START", START, flush=True)
run_variants(V, "round1.jsonl")
