"""Test doubles shared by the unit tests."""

from __future__ import annotations

import numpy as np

from dikkat.models.encoder import TokenizedText


class CountingEncoder:
    """A deterministic stand-in for SentenceEncoder that counts the texts it encodes."""

    def __init__(self, dim: int = 8) -> None:
        self.encoder_id, self.dim, self.pooling, self.max_length = "fake", dim, "mean", 128
        self.feature_key = "fake|mean|128"
        self.precision_tag = ""
        self.encoded: list[str] = []

    def tokenize(self, text: str) -> TokenizedText:
        return TokenizedText(text, tuple(range(len(text.split()) + 2)), False)

    def encode_tokenized(self, items: list[TokenizedText]) -> np.ndarray:
        return self.encode([item.text for item in items])

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        rows = []
        for text in texts:
            rng = np.random.default_rng(sum(map(ord, text)))
            vec = rng.normal(scale=0.3, size=self.dim)
            vec[0] += {"iyi": 3.0, "kötü": -3.0}.get(text.split()[0], 0.0)  # the sentiment cue
            rows.append(vec)
        return np.asarray(rows, dtype=np.float32)
