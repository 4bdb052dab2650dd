"""Installed size (MiB) of each runtime and the dependency closure it adds beyond torch+transformers+numpy."""
import json, os, re, sys
from importlib import metadata

def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}

def size(d):
    total = 0
    for f in d.files or []:
        p = d.locate_file(f)
        try: total += os.path.getsize(p)
        except OSError: pass
    return total / 2**20

def requires(name):
    d = dists.get(name)
    if not d: return []
    out = []
    for r in d.requires or []:
        if "extra ==" in r: continue
        m = re.match(r"[A-Za-z0-9_.\-]+", r)
        out.append(norm(m.group(0)))
    return out

def closure(roots):
    seen, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in seen or n not in dists: continue
        seen.add(n); todo += requires(n)
    return seen

base = closure(["torch", "transformers", "numpy", "pandas", "scikit-learn"])
out = {"base(torch+transformers+numpy+pandas+sklearn)": round(sum(size(dists[n]) for n in base), 1)}
for root in ["torch", "onnxruntime", "onnx", "openvino", "nncf", "ctranslate2"]:
    own = round(size(dists[root]), 1)
    extra = sorted(closure([root]) - base - {root})
    out[root] = {"own_mib": own, "extra_deps": {n: round(size(dists[n]), 1) for n in extra},
                 "total_new_mib": round(own + sum(size(dists[n]) for n in extra), 1)}
print(json.dumps(out, indent=1))
