"""Per-epoch trajectories of a single 1,000-correction retrain from the shipped head."""
import functools, json
from harness_a import *
print("START", START)
out = {}
for select_lr in [(1e-3, 64), (3e-4, 128)]:
  for seed in range(5):
    traj = []
    def cb(head, row):
        s = scores(head); head.train()
        traj.append({**row, **s})
    fit = functools.partial(train_x, on_epoch=cb, stop="none", epochs=40, lr=select_lr[0], batch_size=select_lr[1])
    protocol(fit=fit, seeds=(seed,), steps=(1000,))
    out[f"{select_lr}-{seed}"] = traj
    best_acc = max(traj, key=lambda r: r["val_acc"])
    best_f13 = max(traj, key=lambda r: r["f1_3"])
    best_wf1 = max(traj, key=lambda r: r["wf1"])
    print(select_lr, seed, "by acc", best_acc["epoch"], best_acc["store"], "| by f1_3", best_f13["epoch"], best_f13["store"],
          "| by wf1", best_wf1["epoch"], best_wf1["store"], "| oracle", max(r["store"] for r in traj),
          "| store@ep", [r["store"] for r in traj][::4], flush=True)
json.dump(out, open("diag.json", "w"))
