"""Pooled features of every row of store_reviews_3class.csv, per mode: /tmp/rt/features/<mode>.npy
(float32, CSV row order; length-sorted batches of 32 as dikkat's features_for)."""
import gc, sys, time
sys.path.insert(0, "/tmp/rt")
import numpy as np
from rtcommon import MODES, ROOT, tokenizer, tokenize, load_texts, encode_all

texts, labels = load_texts()
ids = tokenize(tokenizer(), texts)
out = ROOT / "features"
out.mkdir(exist_ok=True)
for name in sys.argv[1:]:
    path = out / f"{name}.npy"
    if path.exists():
        print(name, "exists"); continue
    run = MODES[name]()
    t = time.time()
    X = encode_all(run, ids)
    np.save(path, X)
    print(f"{name}: {len(X)} rows in {time.time() - t:.0f}s ({len(X) / (time.time() - t):.0f} texts/s)", flush=True)
    del run; gc.collect()
