from harness_a import *
L = dict(lr=1e-4, batch_size=128, select="loss")
V = {
 "lr1e-4 select loss + distill 0.5": {"fit_kwargs": dict(L, distill=0.5)},
 "lr1e-4 select loss + distill 1.0": {"fit_kwargs": dict(L, distill=1.0)},
}
run_variants(V, "round8.jsonl", seeds=tuple(range(10)))
