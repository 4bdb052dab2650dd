from harness_b import *
V = {
 "label smoothing 0.3": {"fit_kwargs": dict(smoothing=0.3)},
 "LS 0.2 on 3-class rows only": {"fit_kwargs": dict(smoothing=0.2, smoothing_polar=0.0)},
 "LS 0.2 on polar rows only": {"fit_kwargs": dict(smoothing=0.0, smoothing_polar=0.2)},
}
run_variants(V, "b_round3.jsonl", protocol="full", seeds=(0, 1, 2, 3, 4))
V = {
 "baseline (shipped recipe)": {},
 "label smoothing 0.1": {"fit_kwargs": dict(smoothing=0.1)},
 "label smoothing 0.2": {"fit_kwargs": dict(smoothing=0.2)},
}
run_variants(V, "b_round3.jsonl", protocol="full", seeds=(5, 6, 7, 8, 9))
