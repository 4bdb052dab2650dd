"""What training needs from whatever serves the sentiment head (the inference service)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dikkat.models.head import SentimentHead


class HeadServer(Protocol):
    """Serves a sentiment head: reports its version, swaps it, remembers recent features."""

    @property
    def head_version(self) -> int | None:
        """The version that serves the next request."""
        ...

    def swap_head(self, head: SentimentHead, version: int | None) -> None:
        """Serve `head` from the next batch on."""
        ...

    def recent_features(self, text: str) -> np.ndarray | None:
        """The features computed for `text` when it was last classified, if remembered."""
        ...
