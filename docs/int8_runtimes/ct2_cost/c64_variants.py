"""c=64 batched/ceiling for one precision, batch cost model and minimum padding efficiency.

    PYTHONPATH=<repo> python c64_variants.py int8 fitted 0.8   # the fitted CTranslate2 cost model
    PYTHONPATH=<repo> python c64_variants.py int8 padded 0.8   # longest x count (what ships)
Needs the e5 folder under /work/main/var/models (any `dikkat` start there builds it)."""
import json, sys, tempfile, torch
from pathlib import Path
from dikkat.bench.batching import BenchSettings, app_opener, run_benchmark
from dikkat.bench.batching_report import _in_turn
from dikkat.bench.lengths import request_texts
from dikkat.models.loading import load_encoder
from dikkat.models.encoder import SentenceEncoder

precision, variant = sys.argv[1], sys.argv[2]; minpad = float(sys.argv[3])
torch.set_num_threads(2)
if variant == "fitted":  # fit.json: padding 0.15 of a real token, attention n * L^2 / 800
    import math

    def fitted(self, costs):
        longest, real = max(costs), sum(costs)
        widened = len(costs) * longest**2 - sum(c * c for c in costs)
        return real + math.ceil(0.15 * (longest * len(costs) - real) + widened / 800)

    SentenceEncoder.padded_tokens = fitted
elif variant == "padded":
    SentenceEncoder.padded_tokens = lambda self, costs: max(costs) * len(costs)
enc = load_encoder("offline", device="cpu", model_dir=Path("/work/main/var/models"), precision=precision)
s = BenchSettings(concurrency=(64,), sample_size=3000,
                  ceiling_sizes=(32,), paired_s=0.5, overload_duration_s=0.5, min_padding_efficiency=minpad, duration_s=18.0)
def wt(w): return len(enc.tokenizer(w, add_special_tokens=False)["input_ids"])
texts, src = request_texts(s.sample_size, s.seed, wt)
with tempfile.TemporaryDirectory() as d:
    r = run_benchmark(app_opener(enc, Path(d)), texts, s, progress=False, source=src)
t = _in_turn(r, 64)
b = [x for x in r["results"] if x["mode"] == "batched" and x["concurrency"] == 64][0]
print(json.dumps({"precision": precision, "variant": variant, "minpad": minpad, "ratio_median": t.get("ratio_median"),
      "windows": [w["ratio"] for w in t.get("windows", [])], "mean_batch": b.get("mean_batch_size"), "pad_eff": b.get("padding_efficiency"),
      "rps": b.get("throughput_rps")}))
