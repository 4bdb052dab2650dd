"""Fresh process: import the runtime, load the model (timed), load the tokenizer (tokenizers lib, no
torch), encode two texts; print VmRSS/VmHWM. `baseline` / `baseline-torch`: no model."""
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, "/tmp/rt")
from pathlib import Path
import numpy as np
from rtcommon import MODES, E5, PREFIX, MAX_LEN
name = sys.argv[1]
t = time.perf_counter()
if name == "baseline-torch":
    import torch
    run = None
elif name == "baseline":
    run = None
else:
    run = MODES[name]()
load_s = time.perf_counter() - t
from tokenizers import Tokenizer
tok = Tokenizer.from_file(str(E5 / "tokenizer.json"))
tok.enable_truncation(MAX_LEN)
ids = [e.ids for e in tok.encode_batch([PREFIX + "bu ürün çok güzel", PREFIX + "kargo geç geldi ama satıcı ilgiliydi, teşekkürler"])]
if run is not None:
    v = run(ids)
    assert v.shape == (2, 384)
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
mib = lambda key: int(status[key].split()[0]) / 1024
print(json.dumps({"mode": name, "rss_mb": round(mib("VmRSS"), 1), "peak_rss_mb": round(mib("VmHWM"), 1),
                  "load_s": round(load_s, 2), "process_s": round(time.perf_counter() - started, 2)}))
