"""Test doubles shared by the unit tests."""

from __future__ import annotations

import numpy as np


class CountingEncoder:
    """A deterministic stand-in for SentenceEncoder that counts the texts it encodes."""

    def __init__(self, dim: int = 8) -> None:
        self.encoder_id, self.dim, self.pooling, self.max_length = "fake", dim, "mean", 128
        self.feature_key = "fake|mean|128"
        self.encoded: list[str] = []

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        rows = []
        for text in texts:
            rng = np.random.default_rng(sum(map(ord, text)))
            vec = rng.normal(scale=0.3, size=self.dim)
            vec[0] += {"iyi": 3.0, "kötü": -3.0}.get(text.split()[0], 0.0)  # the sentiment cue
            rows.append(vec)
        return np.asarray(rows, dtype=np.float32)
