"""All modes side by side in ONE process: ceiling (texts/s over 512 texts in length-sorted batches of
32; rounds alternate the order of the modes), p50 latency c=1 (blocks of 16 texts per mode, order
rotating), cosine to torch fp32; then RSS + load time in a fresh process per mode (rss.py)."""
import gc, json, subprocess, sys, time
sys.path.insert(0, "/tmp/rt")
import numpy as np
from rtcommon import MODES, ROOT, tokenizer, tokenize, load_texts, sorted_batches

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(MODES)
assert names[0] == "torch-fp32"
texts, _ = load_texts()
rng = np.random.default_rng(0)
pick = rng.choice(len(texts), 512, replace=False)
ids = tokenize(tokenizer(), [texts[i] for i in pick])
batches = sorted_batches(ids, 32)
lat_items = [ids[i] for i in rng.choice(512, 64, replace=False)]
print("median tokens", int(np.median([len(x) for x in ids])), flush=True)

runners = {}
for n in names:
    t = time.time()
    runners[n] = MODES[n]()
    for _ in range(2):  # warm-up: a middle batch and one text
        runners[n]([ids[i] for i in batches[len(batches) // 2]]); runners[n]([ids[0]])
    print(f"loaded {n} in {time.time() - t:.1f}s", flush=True)

def encode(run):
    out = np.zeros((len(ids), 384), np.float32)
    for chunk in batches:
        out[chunk] = run([ids[i] for i in chunk])
    return out

rates = {n: [] for n in names}
vectors = {}
for r in range(ROUNDS):
    order = names if r % 2 == 0 else names[::-1]
    for n in order:
        t = time.perf_counter()
        v = encode(runners[n])
        rates[n].append(len(ids) / (time.perf_counter() - t))
        vectors.setdefault(n, v)
    print(f"round {r}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in names), flush=True)

lat = {n: [] for n in names}
for b in range(0, len(lat_items), 16):
    block = lat_items[b:b + 16]
    k = b // 16
    order = names[k % len(names):] + names[:k % len(names)]
    for n in order:
        for item in block:
            t = time.perf_counter()
            runners[n]([item])
            lat[n].append(time.perf_counter() - t)

def cos(a, b): return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
ref = vectors["torch-fp32"]
result = {"rounds": ROUNDS, "texts": len(ids), "modes": {}}
for n in names:
    per_round = [a / b for a, b in zip(rates[n], rates["torch-fp32"])]
    c = cos(vectors[n], ref)
    result["modes"][n] = {
        "texts_per_s": round(float(np.median(rates[n])), 1),
        "rounds_texts_per_s": [round(x, 1) for x in rates[n]],
        "ratio_vs_fp32": round(float(np.median(per_round)), 3),
        "ratio_per_round": [round(x, 3) for x in per_round],
        "p50_ms": round(float(np.median(lat[n])) * 1000, 2),
        "p90_ms": round(float(np.percentile(lat[n], 90)) * 1000, 2),
        "cos_min": round(float(c.min()), 4), "cos_mean": round(float(c.mean()), 5),
    }
del runners, vectors; gc.collect()
for n in ["baseline", "baseline-torch"] + names:  # fresh process each, after the timing part
    done = subprocess.run([sys.executable, str(ROOT / "rss.py"), n], capture_output=True, text=True)
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except Exception:
        found = {"error": done.stderr[-800:]}
    result["modes"].setdefault(n, {}).update({k: v for k, v in found.items() if k != "mode"})
    print(n, found, flush=True)
(ROOT / "bench.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result["modes"], indent=1))
