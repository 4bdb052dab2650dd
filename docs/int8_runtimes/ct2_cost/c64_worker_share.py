import asyncio, sys, tempfile, time, torch, numpy as np
from pathlib import Path
from dikkat.bench.batching import BenchSettings, app_opener
from dikkat.bench.lengths import request_texts
from dikkat.models.loading import load_encoder
precision = sys.argv[1]
torch.set_num_threads(2)
enc = load_encoder("offline", device="cpu", model_dir=Path("/work/main/var/models"), precision=precision)
texts, _ = request_texts(3000, 0, lambda w: len(enc.tokenizer(w, add_special_tokens=False)["input_ids"]))
rec = {"fwd": [], "batch": [], "sizes": []}
if enc._ct2 is not None:
    orig = enc._ct2.last_hidden_state
    def timed(ids):
        t = time.perf_counter(); r = orig(ids); rec["fwd"].append(time.perf_counter() - t); return r
    enc._ct2.last_hidden_state = timed
async def main():
    with tempfile.TemporaryDirectory() as d:
        async with app_opener(enc, Path(d))(BenchSettings().service_options(512)) as service:
            pipe = service.sentiment_pipeline
            if len(sys.argv) > 2:
                memo = {t: pipe.tokenize(t) for t in texts}
                pipe.tokenize = memo.__getitem__
            orig_pb = pipe.predict_batch
            def pb(items):
                t = time.perf_counter(); r = orig_pb(items); rec["batch"].append(time.perf_counter() - t); rec["sizes"].append(len(items)); return r
            # the batcher holds a bound method; patch its runner's function
            b = service._sentiment
            b._runner._run_batch = pb if hasattr(b._runner, "_run_batch") else None
            n = [0]
            async def client(i, stop):
                k = i
                while time.monotonic() < stop:
                    await service.sentiment(texts[k % len(texts)]); k += 64; n[0] += 1
            await asyncio.gather(*(client(i, time.monotonic() + 5) for i in range(64)))
            for key in rec: rec[key].clear()
            n[0] = 0; w0 = time.perf_counter()
            await asyncio.gather(*(client(i, time.monotonic() + 10) for i in range(64)))
            wall = time.perf_counter() - w0
            print(f"{precision}: {n[0]/wall:.1f} req/s; in predict_batch {sum(rec['batch'])/wall*100:.1f}% of wall, in CT2 forward {sum(rec['fwd'])/wall*100:.1f}%; batches {len(rec['batch'])}, mean size {np.mean(rec['sizes']) if rec['sizes'] else 0:.1f}")
asyncio.run(main())
