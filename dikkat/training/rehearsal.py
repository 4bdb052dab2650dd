"""A rehearsal buffer: pooled encoder features of two-class public rows, shipped beside a head.

Retrain candidates train on it next to the users' feedback, so they keep what the shipped head
learnt from the public sets (which are not present at run time). It holds numbers, never text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dikkat.models.head import LABELS, tagged_stem

SUFFIX = ".rehearsal.npz"


@dataclass(frozen=True)
class Rehearsal:
    """(n, dim) float32 features, their labels (negative / positive) and where they came from."""

    features: np.ndarray
    labels: np.ndarray
    encoder_key: str
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or len(self.features) != len(self.labels):
            raise ValueError("rehearsal features must be (n, dim) with one label per row")
        if not set(self.labels.tolist()) <= {"negative", "positive"}:
            raise ValueError("a rehearsal buffer holds two-class rows only")

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, fraction: float, seed: int) -> tuple[Rehearsal, Rehearsal]:
        """(rest, a `fraction` share) drawn at random with `seed`."""
        order = np.random.default_rng(seed).permutation(len(self))
        cut = round(len(self) * fraction)
        return self._take(order[cut:]), self._take(order[:cut])

    def _take(self, rows: np.ndarray) -> Rehearsal:
        return Rehearsal(self.features[rows], self.labels[rows], self.encoder_key, self.sources)


def rehearsal_path(head_path: Path, precision_tag: str = "") -> Path:
    """Where the buffer of the head at `head_path` lies (beside it); for another precision's
    features (`precision_tag`, see SentenceEncoder.precision_tag) `head_path` is the fp32 head's,
    and the buffer is named as that precision's head would be."""
    stem = tagged_stem(head_path.name.removesuffix(".pt"), precision_tag)
    return head_path.with_name(stem + SUFFIX)


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to `n` rows, the same number per label where the set allows."""
    per_label = n // 2
    parts = [
        group.sample(min(per_label, len(group)), random_state=seed)
        for _, group in frame.groupby("label", sort=True)
    ]
    return pd.concat(parts, ignore_index=True)


def save_rehearsal(buffer: Rehearsal, path: Path) -> Path:
    """float16 features (a few MB), written atomically."""
    data = io.BytesIO()
    np.savez_compressed(
        data,
        features=buffer.features.astype(np.float16),
        labels=np.array([LABELS.index(label) for label in buffer.labels], dtype=np.int8),
        encoder_key=np.array(buffer.encoder_key),
        sources=np.array(buffer.sources),
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.getvalue())
    tmp.replace(path)
    return path


def load_rehearsal(path: Path, encoder_key: str) -> Rehearsal | None:
    """The buffer at `path` if it exists and was made by this encoder, else None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if str(data["encoder_key"]) != encoder_key:
            return None
        return Rehearsal(
            features=data["features"].astype(np.float32),
            labels=np.array(LABELS, dtype=object)[data["labels"]],
            encoder_key=encoder_key,
            sources=tuple(str(s) for s in data["sources"]),
        )
