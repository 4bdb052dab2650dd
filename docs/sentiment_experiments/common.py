"""Shared setup for issue-23 experiments: a stub encoder over the cached e5 features."""
from __future__ import annotations
import os, sys, time, json
sys.path.insert(0, os.environ.get("SNAP", "/tmp/exp23/snap"))  # the committed tree at 2d3dbc0 (the working tree changes); SNAP=/tmp/exp23/snap2: with recommended.diff
from pathlib import Path
import numpy as np, pandas as pd, torch

torch.set_num_threads(1)
FEATURES_DB = Path("/tmp/exp23/features.db")
DATA = Path("/work/shared/data/sentiment")


class StubEncoder:
    """Stands in for the offline e5 encoder: every needed text is in the feature cache."""
    encoder_id = "multilingual-e5-small-q4"
    pooling = "mean"
    max_length = 128
    text_prefix = "query: "
    precision = "fp32"
    dim = 384
    device = torch.device("cpu")

    @property
    def feature_key(self):
        return f"{self.encoder_id}|{self.pooling}|{self.max_length}|{self.text_prefix}"

    def tokenize(self, text):
        raise RuntimeError(f"feature not cached: {text[:60]!r}")


def setup():
    from dikkat.storage.feature_cache import FeatureCache
    from dikkat.training.data import load_labelled_csv
    from dikkat.training.seed_head import PUBLIC_SETS
    enc = StubEncoder()
    cache = FeatureCache.open(FEATURES_DB, enc.feature_key)
    frames = {s.file: load_labelled_csv(DATA / s.file) for s in PUBLIC_SETS}
    return enc, cache, frames
