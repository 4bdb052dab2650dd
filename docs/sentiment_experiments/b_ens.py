import functools
from harness_b import *
from sklearn.metrics import f1_score
from dikkat.training.data import label_indices
y = label_indices(TESTS_FULL["store"]["label"])
for name, kw in [("baseline", {}), ("LS 0.2", dict(smoothing=0.2))]:
    P = []
    for seed in range(5):
        r = train_on_inner_split(FULL, enc, cache, seed=seed, fit=functools.partial(train_x, **kw), lr=3e-4, batch_size=128)
        P.append(r.head.predict_proba(XF["store"]))
        print(name, seed, round(f1_score(y, P[-1].argmax(1), average="macro"), 4), flush=True)
    avg = np.mean(P, 0)
    print(name, "ensemble of 5 (prob avg):", round(f1_score(y, avg.argmax(1), average="macro"), 4), "neutral recall", round(((avg.argmax(1) == 1) & (y == 1)).sum() / (y == 1).sum(), 3), flush=True)
