"""The A protocol from a shipped head trained with label smoothing 0.2 (the B change), seeds 0-9."""
from harness_a import *
import harness_a
from dikkat.models.head import load_head
head, _ = load_head(Path("/tmp/exp23/heads/ls0.2/multilingual-e5-small-q4.pt"))
print("START (LS 0.2 shipped head):", set_shipped(head), flush=True)
V = {
 "LS-head: baseline (lr1e-3 b64)": {},
 "LS-head: lr1e-4 b128 select loss": {"fit_kwargs": dict(lr=1e-4, batch_size=128, select="loss")},
 "LS-head: lr3e-4 b128 select loss swa5": {"fit_kwargs": dict(lr=3e-4, batch_size=128, select="loss", swa=5)},
}
harness_a.run_variants(V, "round5_lshead.jsonl", seeds=tuple(range(10)))
