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

    def recent_features(self, text_hash: str) -> np.ndarray | None:
        """The features of the text with this hash from when it was last classified, if
        remembered."""
        ...


class DetachedHeadServer:
    """The trainer role's stand-in: nothing is served here, so a swap only records the version
    (serving processes follow the database: ActiveHeadWatcher) and no features are remembered."""

    def __init__(self, version: int | None) -> None:
        self._version = version

    @property
    def head_version(self) -> int | None:
        """The version last promoted or rolled back to by this process."""
        return self._version

    def swap_head(self, head: SentimentHead, version: int | None) -> None:
        """Record `version`; the head itself is served by the inference processes."""
        self._version = version

    def recent_features(self, text_hash: str) -> np.ndarray | None:
        """Nothing was classified here: always None (votes' texts are encoded at retrain)."""
        return None
