"""bench.json + heads.json + sizes.json -> the markdown table."""
import json
from pathlib import Path
R = Path("/tmp/rt")
bench = json.loads((R / "bench.json").read_text())["modes"]
heads = json.loads((R / "heads.json").read_text()) if (R / "heads.json").exists() else {}
sizes = json.loads((R / "sizes.json").read_text())
dep = {
    "torch": "0 (torch 722 is already there)",
    "ort": f"{sizes['onnxruntime']['total_new_mib']:.0f} (+{sizes['onnx']['total_new_mib']:.0f} onnx to convert)",
    "ov": f"{sizes['openvino']['total_new_mib']:.0f}",
    "ct2": f"{sizes['ctranslate2']['total_new_mib']:.0f}",
}
order = ["torch-fp32", "torch-int8-dyn", "torch-int8-dyn-pc", "ort-fp32-opt", "ort-int8", "ort-int8-pc",
         "ort-int8-rr", "ort-int8-pc-rr", "ort-int8-noemb", "ov-fp32", "ov-int8-wc", "ov-int8-ptq",
         "ct2-fp32", "ct2-int8", "torch-fp32-L10", "torch-fp32-L8"]
ref = heads.get("torch-fp32", {})
rows = ["| mode | texts/s | ratio vs fp32 (median of rounds) | p50 ms c=1 | cosine min / mean | RSS MiB | load s | new deps MiB | head macro-F1 (10 seeds, mean ± sd) | Δ vs fp32 | fp32 heads on these features Δ | LogReg F1 (Δ) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for m in order:
    b = bench.get(m)
    if not b:
        continue
    d = dep["ov"] if m.startswith("ov") else dep["ct2"] if m.startswith("ct2") else dep["ort"] if m.startswith("ort") else dep["torch"]
    if m.startswith("ov-int8"):
        d += f" (+{sizes['nncf']['total_new_mib']:.0f} nncf to convert)"
    h = heads.get(m)
    cos = "n/a (other layer)" if "-L" in m else f"{b['cos_min']:.4f} / {b['cos_mean']:.4f}"
    if h:
        f1 = f"{h['head_f1_mean']:.4f} ± {h['head_f1_std']:.4f}"
        delta = f"{h['head_f1_mean'] - ref['head_f1_mean']:+.4f}"
        cross = "n/a" if "-L" in m else f"{h['fp32_heads_on_these_features_mean'] - ref['head_f1_mean']:+.4f}"
        lr = f"{h['logreg_f1']:.4f} ({h['logreg_f1'] - ref['logreg_f1']:+.4f})"
    else:
        f1 = delta = cross = lr = ("= fp32 (cos 1.0000)" if "fp32" in m else "not run")
    rows.append(f"| {m} | {b['texts_per_s']:.0f} | {b['ratio_vs_fp32']:.2f} | {b['p50_ms']:.1f} | {cos} | "
                f"{b.get('rss_mb', float('nan')):.0f} | {b.get('load_s', float('nan')):.1f} | {d} | {f1} | {delta} | {cross} | {lr} |")
print("\n".join(rows))
for base in ("baseline", "baseline-torch"):
    if base in bench:
        print(f"\n{base}: RSS {bench[base].get('rss_mb')} MiB")
