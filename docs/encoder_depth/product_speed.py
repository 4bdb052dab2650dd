"""Ceiling of the product encoder at 12 and 10 layers (fp32 or int8), in alternating processes.

Each measurement loads one encoder through `load_encoder` (what `DIKKAT_ENCODER_LAYERS` serves)
in a fresh process and times 512 shared texts in length-sorted batches of 32 (one warm-up, then
the median of 3 passes). Rounds alternate the depths, so drifting load hits both; the ratio is
the median over rounds. One encoder per process: a second CTranslate2 encoder in the same process
slowed the first one by a third. Run from the repository root:

    .venv/bin/python docs/encoder_depth/product_speed.py --precision int8 \\
        --json docs/encoder_depth/product_speed_int8.json   # and --precision fp32
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

MEASURE = """
import statistics, sys, time
from pathlib import Path
from dikkat.bench.encoder import bench_texts
from dikkat.models.loading import load_encoder
encoder = load_encoder(
    "e5", device="cpu", model_dir=Path(sys.argv[1]), precision=sys.argv[2], layers=int(sys.argv[3])
)
texts, _ = bench_texts(512)
items = sorted((encoder.tokenize(text) for text in texts), key=lambda item: item.cost)
batches = [items[i : i + 32] for i in range(0, len(items), 32)]
encoder.encode_tokenized(batches[-1])
speeds = []
for _ in range(3):
    started = time.perf_counter()
    for batch in batches:
        encoder.encode_tokenized(batch)
    speeds.append(len(items) / (time.perf_counter() - started))
print(statistics.median(speeds))
"""


def measure(model_dir: Path, precision: str, layers: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(model_dir), precision, str(layers)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("var/models"))
    parser.add_argument("--precision", choices=("fp32", "int8"), default="int8")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds = []
    for index in range(args.rounds):
        depths = (12, 10) if index % 2 == 0 else (10, 12)
        found = {layers: measure(args.model_dir, args.precision, layers) for layers in depths}
        rounds.append(found)
        print(f"round {index}: 12 layers {found[12]:.1f}, 10 layers {found[10]:.1f} texts/s")
    ratios = [found[10] / found[12] for found in rounds]
    report = {
        "precision": args.precision,
        "texts_per_s_12": round(statistics.median(r[12] for r in rounds), 1),
        "texts_per_s_10": round(statistics.median(r[10] for r in rounds), 1),
        "ratio_10_vs_12_median": round(statistics.median(ratios), 3),
        "ratio_per_round": [round(ratio, 3) for ratio in ratios],
    }
    print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
