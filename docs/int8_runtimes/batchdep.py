"""Does a text's vector depend on its batch-mates? cosine of each text alone vs in its batch."""
import sys
sys.path.insert(0, "/tmp/rt")
import numpy as np
from rtcommon import MODES, tokenizer, tokenize, load_texts, encode_all
texts, _ = load_texts()
ids = tokenize(tokenizer(), [texts[i] for i in np.random.default_rng(2).choice(len(texts), 64, replace=False)])
for name in sys.argv[1:]:
    run = MODES[name]()
    batched = encode_all(run, ids)
    alone = np.concatenate([run([x]) for x in ids])
    c = (batched * alone).sum(1) / np.linalg.norm(batched, axis=1) / np.linalg.norm(alone, axis=1)
    print(f"{name:16s} alone vs in batch: cos min {c.min():.5f} mean {c.mean():.5f}  max|diff| {np.abs(batched - alone).max():.2e}")
