"""Inference reuses heap memory for activations instead of mapping fresh pages per batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import resource, sys
from pathlib import Path
from dikkat.models.loading import load_encoder
encoder = load_encoder("e5", device="cpu", model_dir=Path(sys.argv[1]), precision="int8")
sentence = "Ürün {} gün sonra geldi, kutusu ezik ama kendisi sağlam çıktı. "
batches = [
    [encoder.tokenize(sentence.format(i) * repeat) for i in range(32)] for repeat in (1, 2, 3, 5)
]
for batch in batches:
    encoder.encode_tokenized(batch)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    for batch in batches:
        encoder.encode_tokenized(batch)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(model_dir: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_repeated_batches_reuse_memory_instead_of_faulting_in_fresh_pages(
    prepared_model_dir: Path,
) -> None:
    # 12 batches of 32 texts of 21 to 81 tokens; with glibc's own thresholds: 287,628 faults
    assert _page_faults(prepared_model_dir) < 2_000  # 8 MB over all twelve
