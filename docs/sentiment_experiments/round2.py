from harness_a import *
R = dict(lr=3e-4, batch_size=128)
V = {
 "R fw1": {"fit_kwargs": R, "feedback_weight": 1.0},
 "R fw6": {"fit_kwargs": R, "feedback_weight": 6.0},
 "R fw10": {"fit_kwargs": R, "feedback_weight": 10.0},
 "R rehearsal ratio 0.5/epoch": {"fit_kwargs": dict(R, rehearsal_ratio=0.5)},
 "R rehearsal weight 0.3": {"fit_kwargs": dict(R, rehearsal_weight=0.3)},
 "R distill 1.0": {"fit_kwargs": dict(R, distill=1.0)},
 "R distill 0.5": {"fit_kwargs": dict(R, distill=0.5)},
 "R smoothing 0.2": {"fit_kwargs": dict(R, smoothing=0.2)},
 "R patience 15": {"fit_kwargs": dict(R, patience=15)},
 "lr1e-4 b128 soup3": {"fit_kwargs": dict(lr=1e-4, batch_size=128, soup=3)},
}
run_variants(V, "round2.jsonl")
