"""Stable keys for texts, shared by every layer (feature cache, recent features, predictions)."""

from __future__ import annotations

import hashlib


def text_hash(text: str) -> str:
    """Stable key of a text (sha256 of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
