"""The e5 folder's light tokenizer (SentencePiece) against the fast one (transformers/tokenizers).

Counts, over every text of the shared sets and the seed corpus (with and without the "query: "
prefix), the tokenizations that are equal, equal up to the order of tied pieces, or otherwise
different; for the texts that differ, the cosine between their int8 sentence vectors and
whether the shipped head's answer changes; and the memory and speed of each tokenizer, each
loaded in a fresh process after its imports. Run from the repository root:

    .venv/bin/python docs/measurements/light_tokenizer.py \
        --json docs/measurements/light_tokenizer.json
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sentiment"
MEMORY_PROBE = """
import sys, time
from pathlib import Path
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
texts = Path(sys.argv[3]).read_text(encoding="utf-8").split("\\n")
from transformers import AutoTokenizer
from dikkat.models.piece_tokenizer import PieceTokenizer
import sentencepiece
before = rss()
if sys.argv[1] == "fast":
    tok = AutoTokenizer.from_pretrained(sys.argv[2])
    ids = lambda t: tok(t, truncation=True, max_length=129)["input_ids"]
else:
    tok = PieceTokenizer(sys.argv[2])
    ids = lambda t: tok.ids(t, 129)
loaded = rss()
start = time.perf_counter()
for text in texts:
    ids("query: " + text)
per_text = (time.perf_counter() - start) / len(texts)
print(loaded - before, per_text * 1e6)
"""


def read_texts(data: Path) -> list[str]:
    texts = []
    for path in sorted(data.glob("*.csv")):
        with open(path, encoding="utf-8") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    seed = Path("dikkat/assets/seed_corpus.csv")
    with open(seed, encoding="utf-8") as handle:
        texts += [row["text"] for row in csv.DictReader(handle)]
    return texts


def memory_and_speed(kind: str, folder: Path, texts: list[str]) -> dict:
    sample = Path("/tmp/light_tokenizer_texts.txt")
    sample.write_text("\n".join(t.replace("\n", " ") for t in texts[:3000]), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, kind, str(folder), str(sample)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {"rss_mib": round(float(out[0]), 1), "us_per_text": round(float(out[1]), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model-dir", type=Path, default=Path("var/models"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from dikkat.models.head import default_head_path, load_head
    from dikkat.models.loading import load_encoder

    encoder = load_encoder("e5", device="cpu", model_dir=args.model_dir, precision="int8")
    from transformers import AutoTokenizer

    folder = Path(encoder.source.name_or_path)
    fast, light = AutoTokenizer.from_pretrained(folder), encoder.tokenizer
    texts = read_texts(args.data)
    counts = {"equal": 0, "tied_pieces_reordered": 0, "other": 0}
    differing: list[tuple[str, list[int], list[int]]] = []
    for text in texts:
        for full, limit in ((text, 1 << 16), ("query: " + text, 129)):
            a = fast(full, truncation=True, max_length=limit)["input_ids"]
            b = light.ids(full, limit)
            if a == b:
                counts["equal"] += 1
                continue
            counts["tied_pieces_reordered" if sorted(a) == sorted(b) else "other"] += 1
            if full.startswith("query: "):
                differing.append((text, a, b))
    print(f"{len(texts)} texts, {sum(counts.values())} tokenizations: {counts}")
    report: dict = {"texts": len(texts), "tokenizations": counts}
    if differing:
        from dikkat.models.encoder import TokenizedText

        fast_vectors = encoder.encode_tokenized(
            [TokenizedText(t, tuple(a), False) for t, a, _ in differing]
        )
        light_vectors = encoder.encode_tokenized(
            [TokenizedText(t, tuple(b), False) for t, _, b in differing]
        )
        cosine = (fast_vectors * light_vectors).sum(1) / (
            np.linalg.norm(fast_vectors, axis=1) * np.linalg.norm(light_vectors, axis=1)
        )
        head_path = default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
        head, _ = load_head(head_path, encoder_id=encoder.encoder_id)
        fast_labels = head.predict_proba(fast_vectors).argmax(1)
        light_labels = head.predict_proba(light_vectors).argmax(1)
        report["differing_prefixed_texts"] = len(differing)
        report["shipped_head_answers_changed"] = int((fast_labels != light_labels).sum())
        report["cosine_int8_vectors"] = {
            "min": round(float(cosine.min()), 6),
            "mean": round(float(cosine.mean()), 6),
        }
        print(
            f"{len(differing)} prefixed texts differ; int8 vector cosine "
            f"{report['cosine_int8_vectors']}; shipped head answers changed: "
            f"{report['shipped_head_answers_changed']}"
        )
    report["fast"] = memory_and_speed("fast", folder, texts)
    report["light"] = memory_and_speed("light", folder, texts)
    print(f"fast {report['fast']}, light {report['light']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
