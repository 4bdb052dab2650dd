from harness_b import *
from dikkat.models.head import load_head
from dikkat.training.heads import ShippedReference
old = ShippedReference.load(enc).head
new, _ = load_head(Path("/tmp/exp23/heads/ls0.2/multilingual-e5-small-q4.pt"))
for name, h in [("shipped", old), ("LS 0.2 (seed 0)", new)]:
    out = []
    for t in ["fixed", "store"]:
        p = h.predict_proba(XF[t]); out.append(f"{t}: mean top prob {p.max(1).mean():.3f}, share >0.9 {(p.max(1) > 0.9).mean():.2f}, said neutral {(p.argmax(1) == 1).mean():.2f}")
    print(name, metrics(h, XF, TESTS_FULL), "|", " | ".join(out))
