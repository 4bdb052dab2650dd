import functools
from harness_a import *
for pat in (8, 15):
    rs = []
    def fit(*a, **k):
        r = train_x(*a, **{**k, "lr": 3e-4, "batch_size": 128, "patience": pat}); rs.append((len(r.history), r.best_epoch)); return r
    runs = protocol(fit=fit, seeds=(0,), steps=(1000,))
    print(pat, rs, runs[0]["points"][0]["cand"]["store"])
