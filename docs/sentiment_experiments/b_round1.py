from harness_b import *
V = {
 "baseline (shipped recipe)": {},
 "label smoothing 0.1": {"fit_kwargs": dict(smoothing=0.1)},
 "weight decay 1e-4": {"fit_kwargs": dict(weight_decay=1e-4)},
 "weight decay 1e-3": {"fit_kwargs": dict(weight_decay=1e-3)},
 "select f1_3 (3-class inner macro-F1)": {"fit_kwargs": dict(select="f1_3")},
 "select val loss": {"fit_kwargs": dict(select="loss")},
 "swa5": {"fit_kwargs": dict(swa=5)},
 "bias cal on inner 3-class rows": {"fit_kwargs": dict(bias_cal="inner3")},
 "dropout 0.3": {"fit_kwargs": dict(dropout=0.3)},
 "dropout 0.7": {"fit_kwargs": dict(dropout=0.7)},
 "polar rows weight 0.5": {"fit_kwargs": dict(rehearsal_weight=0.5)},
}
run_variants(V, "b_round1.jsonl", protocol="full", seeds=(0, 1, 2, 3, 4))
