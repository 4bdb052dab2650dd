"""Quick check: each mode's pooled vectors vs torch fp32 on 128 texts (batches of 32 + single texts)."""
import sys, time
sys.path.insert(0, "/tmp/rt")
import numpy as np
from rtcommon import MODES, tokenizer, tokenize, load_texts, encode_all

texts, _ = load_texts()
rng = np.random.default_rng(1)
sample = [texts[i] for i in rng.choice(len(texts), 128, replace=False)]
ids = tokenize(tokenizer(), sample)
ref = encode_all(MODES["torch-fp32"](), ids)
def cos(a, b): return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
for name in sys.argv[1:]:
    t = time.time()
    try:
        run = MODES[name]()
        load = time.time() - t
        t = time.time(); got = encode_all(run, ids); enc = time.time() - t
        single = np.concatenate([run([ids[i]]) for i in range(8)])
        c = cos(got, ref); cs = cos(single, ref[:8])
        print(f"{name:16s} load {load:5.1f}s enc128 {enc:5.1f}s cos min {c.min():.4f} mean {c.mean():.5f} | single min {cs.min():.4f}", flush=True)
    except Exception as e:
        print(f"{name:16s} FAILED {type(e).__name__}: {e}"[:600], flush=True)
