"""Single retrain of 1,000 corrections straight from the shipped head (no chain), seeds 0-9."""
from harness_a import *
V = {
 "single: baseline (lr1e-3 b64)": {"steps": (1000,)},
 "single: lr1e-4 b128 select loss": {"fit_kwargs": dict(lr=1e-4, batch_size=128, select="loss"), "steps": (1000,)},
 "single: baseline no rehearsal": {"steps": (1000,), "rehearse": False},
 "single: lr1e-4 select loss no rehearsal": {"fit_kwargs": dict(lr=1e-4, batch_size=128, select="loss"), "steps": (1000,), "rehearse": False},
}
run_variants(V, "round6_single.jsonl", seeds=tuple(range(10)))
