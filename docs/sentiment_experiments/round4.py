from harness_a import *
import sys
R = dict(lr=3e-4, batch_size=128)
V = {
 "baseline (lr1e-3 b64, as shipped)": {},
 "R (lr3e-4 b128)": {"fit_kwargs": R},
 "R select loss swa5": {"fit_kwargs": dict(R, select="loss", swa=5)},
 "lr1e-4 b128": {"fit_kwargs": dict(lr=1e-4, batch_size=128)},
 "lr1e-4 b128 select loss": {"fit_kwargs": dict(lr=1e-4, batch_size=128, select="loss")},
}
run_variants(V, "round4_seeds5-9.jsonl", seeds=(5, 6, 7, 8, 9))
