from harness_b import *
V = {
 "label smoothing 0.15": {"fit_kwargs": dict(smoothing=0.15)},
 "label smoothing 0.25": {"fit_kwargs": dict(smoothing=0.25)},
 "LS 0.2 + swa5": {"fit_kwargs": dict(smoothing=0.2, swa=5)},
 "LS 0.2 + select loss": {"fit_kwargs": dict(smoothing=0.2, select="loss")},
}
run_variants(V, "b_round4.jsonl", protocol="full", seeds=(0, 1, 2, 3, 4))
V = {"label smoothing 0.3": {"fit_kwargs": dict(smoothing=0.3)}}
run_variants(V, "b_round4.jsonl", protocol="full", seeds=(5, 6, 7, 8, 9))
