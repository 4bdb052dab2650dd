"""Train the shipped head with label smoothing 0.2 through dikkat.training.seed_head.train_seed_head
(the `dikkat train seed-head` path), monkeypatching only the recipe; saves it under /tmp/exp23/heads."""
import functools, sys
from common import *
from variants import train_x
import dikkat.training.seed_head as sh
from dikkat.training.candidate import train_on_inner_split
from dikkat.models.head import save_head
from dikkat.training.rehearsal import save_rehearsal

LS = float(sys.argv[1]) if len(sys.argv) > 1 else 0.2

def recipe(data, encoder, cache, *, seed=0, progress=False):
    return train_on_inner_split(data, encoder, cache, seed=seed, progress=progress,
                                fit=functools.partial(train_x, smoothing=LS),
                                lr=sh.LEARNING_RATE, batch_size=sh.BATCH_SIZE)

sh.train_with_shipped_recipe = recipe
enc, cache, frames = setup()
rep = sh.train_seed_head(enc, cache, DATA, seed=0, progress=False)
for name, m in rep.evaluations.items():
    print(name, round(m.macro_f1, 4), "neutral recall", round(m.per_class["neutral"].recall, 3))
out = Path(f"/tmp/exp23/heads/ls{LS}"); out.mkdir(parents=True, exist_ok=True)
save_head(rep.head, out / "multilingual-e5-small-q4.pt", rep.meta)
save_rehearsal(rep.rehearsal, out / "multilingual-e5-small-q4.rehearsal.npz")
import numpy as np
from dikkat.training.heads import ShippedReference
old = ShippedReference.load(enc).rehearsal
print("rehearsal identical to shipped:", np.allclose(old.features, rep.rehearsal.features.astype(np.float16).astype(np.float32)), (old.labels == rep.rehearsal.labels).all())
