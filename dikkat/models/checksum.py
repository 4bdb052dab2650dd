"""SHA-256 of files, for the e5 folder manifest and the head versions."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path | str, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
