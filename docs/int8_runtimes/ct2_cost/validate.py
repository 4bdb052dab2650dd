"""Out-of-design check: 20 random batches of 32 reviews vs the same 640 reviews length-sorted into
20 batches; measured total time ratio vs what each cost formula predicts. Writes validate.json."""
import json, math, random, time
from pathlib import Path
import numpy as np, pandas as pd
from dikkat.models.loading import load_encoder

HERE = Path(__file__).resolve().parent
rng = random.Random(7)
enc = load_encoder("e5", device="cpu", precision="int8", model_dir=HERE / "models")
assert enc.runtime == "ctranslate2"
texts = pd.read_csv("/work/shared/data/sentiment/store_reviews_3class.csv")["text"].dropna().astype(str).tolist()
pool = [enc.tokenize(t).input_ids for t in rng.sample(texts, 640)]
rand = [pool[i:i + 32] for i in range(0, 640, 32)]
srt = sorted(pool, key=len)
sort = [srt[i:i + 32] for i in range(0, 640, 32)]
batches = [("random", b) for b in rand] + [("sorted", b) for b in sort]
fwd = enc._ct2.last_hidden_state
for _, b in batches[:3]:
    fwd(b)
times = {i: [] for i in range(len(batches))}
for _ in range(5):
    order = list(range(len(batches))); rng.shuffle(order)
    for i in order:
        t0 = time.perf_counter(); fwd(batches[i][1]); times[i].append(time.perf_counter() - t0)
F = {
    "max*len": lambda c: max(c) * len(c),
    "sum": lambda c: sum(c),
    "sum + ceil(0.2*pad)": lambda c: sum(c) + math.ceil(0.2 * (max(c) * len(c) - sum(c))),
    "40 + sum + ceil(0.2*pad)": lambda c: 40 + sum(c) + math.ceil(0.2 * (max(c) * len(c) - sum(c))),
    "48 + sum + ceil(0.15*pad) + len*max^2//800": lambda c: 48 + sum(c) + math.ceil(0.15 * (max(c) * len(c) - sum(c))) + len(c) * max(c) ** 2 // 800,
}
res = {"measured_time_ratio_random_over_sorted": None, "predicted_ratio": {}}
tot = {k: sum(np.median(times[i]) for i, (kk, _) in enumerate(batches) if kk == k) for k in ("random", "sorted")}
res["measured_time_ratio_random_over_sorted"] = round(tot["random"] / tot["sorted"], 3)
res["total_s"] = {k: round(v, 3) for k, v in tot.items()}
for name, f in F.items():
    c = {k: sum(f([len(x) for x in b]) for kk, b in batches if kk == k) for k in ("random", "sorted")}
    res["predicted_ratio"][name] = round(c["random"] / c["sorted"], 3)
Path(HERE / "validate.json").write_text(json.dumps(res, indent=1))
print(json.dumps(res, indent=1))
