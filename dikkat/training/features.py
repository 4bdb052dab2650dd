"""Encoder features for many texts: looked up in the feature cache, misses encoded in batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dikkat.hashing import text_hash
from dikkat.storage.feature_cache import FeatureCache

if TYPE_CHECKING:
    from dikkat.models.encoder import SentenceEncoder


def feature_cache_for(encoder: SentenceEncoder, db_path: str | Path) -> FeatureCache:
    """A FeatureCache keyed by the encoder's feature_key (id + pooling + max length)."""
    return FeatureCache.open(Path(db_path), encoder.feature_key)


def features_for(
    texts: Sequence[str],
    encoder: SentenceEncoder,
    cache: FeatureCache | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """(n, dim) features: cached ones looked up, misses encoded in length-sorted batches."""
    from tqdm.auto import tqdm

    if cache is not None and cache.feature_key != encoder.feature_key:
        raise ValueError(
            f"feature cache is for {cache.feature_key!r}, encoder is {encoder.feature_key!r}"
        )
    texts = list(texts)
    keys = [text_hash(text) for text in texts]
    found = cache.get_many(keys) if cache is not None else {}
    unique = dict(zip(keys, texts, strict=True))
    misses = [key for key in unique if key not in found]
    if misses:
        tokenized = {key: encoder.tokenize(unique[key]) for key in misses}  # once per text
        order = sorted(misses, key=lambda key: tokenized[key].cost)  # stable: ties keep order
        bar = tqdm(total=len(order), unit="text", desc="encoding", disable=not progress)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vectors = encoder.encode_tokenized([tokenized[key] for key in chunk])
            fresh = dict(zip(chunk, vectors, strict=True))
            if cache is not None:
                cache.put_many(fresh)
            found.update(fresh)
            bar.update(len(chunk))
        bar.close()
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
