"""The sentiment pipeline behind the batcher: frozen encoder, hot-swappable head."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from dikkat.hashing import text_hash
from dikkat.models.encoder import SentenceEncoder, TokenizedText
from dikkat.models.head import LABELS, SentimentHead


@dataclass(frozen=True)
class SentimentResult:
    """One answer: the label, every class's probability, the head version that produced it, and
    the text's hash (the key of its remembered features and of its logged prediction)."""

    label: str
    probabilities: dict[str, float]
    head_version: int | None
    text_hash: str
    truncated: bool = False


@dataclass(frozen=True)
class _ActiveHead:
    head: SentimentHead
    version: int | None


class RecentFeatures:
    """A bounded, thread-safe memory of recent texts' features, so feedback needs no re-encoding."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, vector: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            return self._items.get(key)


class SentimentPipeline:
    """Encodes a batch of texts and classifies them with whichever head is active at batch start."""

    def __init__(self, encoder: SentenceEncoder, head: SentimentHead, version: int | None) -> None:
        self.encoder = encoder
        self._active = _ActiveHead(head.eval(), version)
        self.recent = RecentFeatures()

    @property
    def head(self) -> SentimentHead:
        """The head that serves the next batch."""
        return self._active.head

    @property
    def head_version(self) -> int | None:
        """The version that serves the next batch."""
        return self._active.version

    def swap(self, head: SentimentHead, version: int | None) -> None:
        """Replace the head; the next batch uses it (a single reference assignment is atomic)."""
        if head.dim != self.encoder.dim:
            raise ValueError(f"head expects {head.dim} features, encoder gives {self.encoder.dim}")
        self._active = _ActiveHead(head.to(self.encoder.device).eval(), version)

    def tokenize(self, text: str) -> TokenizedText:
        """Tokenize once: the ids travel with the request into the batch (count = cost)."""
        return self.encoder.tokenize(text)

    def predict_batch(self, items: list[TokenizedText]) -> list[SentimentResult]:
        """One encoder forward and one head forward for the whole batch of tokenized texts."""
        active = self._active
        features = self.encoder.encode_tokenized(items)  # (B, dim)
        probabilities = active.head.predict_proba(features)  # (B, 3)
        results = []
        for item, vector, row in zip(items, features, probabilities, strict=True):
            key = text_hash(item.text)
            self.recent.put(key, vector)
            best = int(np.argmax(row))
            results.append(
                SentimentResult(
                    label=LABELS[best],
                    probabilities={label: float(p) for label, p in zip(LABELS, row, strict=True)},
                    head_version=active.version,
                    text_hash=key,
                    truncated=item.truncated,
                )
            )
        return results
