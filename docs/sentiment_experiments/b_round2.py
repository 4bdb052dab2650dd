from harness_b import *
V = {
 "label smoothing 0.05": {"fit_kwargs": dict(smoothing=0.05)},
 "label smoothing 0.2": {"fit_kwargs": dict(smoothing=0.2)},
 "label smoothing 0.1 + swa5": {"fit_kwargs": dict(smoothing=0.1, swa=5)},
}
run_variants(V, "b_round2.jsonl", protocol="full", seeds=(0, 1, 2, 3, 4))
V = {
 "baseline (shipped recipe)": {},
 "label smoothing 0.1": {"fit_kwargs": dict(smoothing=0.1)},
 "label smoothing 0.2": {"fit_kwargs": dict(smoothing=0.2)},
}
run_variants(V, "b_round2.jsonl", protocol="75", seeds=(0, 1, 2, 3, 4))
