from harness_a import *
R = dict(lr=3e-4, batch_size=128)
V = {
 "R select loss": {"fit_kwargs": dict(R, select="loss")},
 "R select loss swa5": {"fit_kwargs": dict(R, select="loss", swa=5)},
 "R select loss soup3": {"fit_kwargs": dict(R, select="loss", soup=3)},
 "lr1e-4 b128 select loss": {"fit_kwargs": dict(lr=1e-4, batch_size=128, select="loss")},
 "R select loss rehearsal ratio 0.5": {"fit_kwargs": dict(R, select="loss", rehearsal_ratio=0.5)},
 "R acc min_epochs 5": {"fit_kwargs": dict(R, min_epochs=5)},
 "R 10 epochs, last": {"fit_kwargs": dict(R, stop="none", epochs=10, select="last")},
 "R 10 epochs, swa10": {"fit_kwargs": dict(R, stop="none", epochs=10, select="last", swa=10)},
}
run_variants(V, "round3.jsonl")
