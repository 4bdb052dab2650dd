"""Labelled sentiment data: label names in Turkish or English, CSV loading, seeded splits."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from dikkat.models.head import LABELS

log = logging.getLogger(__name__)

LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
SEED_CORPUS = "seed_corpus.csv"

_SYNONYMS = {
    "negative": ("olumsuz", "negatif", "negative", "neg"),
    "neutral": ("nötr", "notr", "tarafsız", "neutral", "neu"),
    "positive": ("olumlu", "pozitif", "positive", "pos"),
}
_FOLD = str.maketrans({"ı": "i", "ö": "o", "ü": "u", "ş": "s", "ç": "c", "ğ": "g", "\u0307": None})
_NUMERIC = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _fold(value: str) -> str:
    """Case- and Turkish-dotless-insensitive key: 'TARAFSIZ', 'Nötr', 'İyi' fold alike."""
    return value.strip().replace("İ", "i").replace("I", "i").lower().translate(_FOLD)


_TABLE = {_fold(word): label for label, words in _SYNONYMS.items() for word in words}


def _key(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def parse_label_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """'0=negative,1=positive' (or a dict) -> {'0': 'negative', '1': 'positive'}."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    else:
        pairs = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            raw, sep, label = part.partition("=")
            if not sep or not raw.strip() or not label.strip():
                raise ValueError(f"label map entry {part!r} must look like 0=negative")
            pairs.append((raw, label))
    return {_key(raw): normalise_label(label) for raw, label in pairs}


def normalise_label(value: object, label_map: Mapping[str, str] | None = None) -> str:
    """Map a Turkish or English label (any case), or a mapped raw value, to one of LABELS."""
    key = _key(value)
    if label_map:
        if key in label_map:
            return label_map[key]
        folded = {_fold(k): v for k, v in label_map.items()}
        if _fold(key) in folded:
            return folded[_fold(key)]
    if isinstance(value, int | float) or _NUMERIC.match(key):
        raise ValueError(
            f"numeric label {key!r} needs an explicit mapping, e.g. --label-map "
            "'0=negative,1=neutral,2=positive'"
        )
    label = _TABLE.get(_fold(key))
    if label is None:
        raise ValueError(
            f"unknown label {key!r}; use olumlu/pozitif/positive, olumsuz/negatif/negative, "
            "nötr/notr/tarafsız/neutral, or give a label map"
        )
    return label


def load_labelled_csv(
    path: str | Path,
    text_col: str = "text",
    label_col: str = "label",
    label_map: str | Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """CSV -> DataFrame[text, label] with normalised labels; rows with empty text are dropped."""
    mapping = parse_label_map(label_map)
    raw = pd.read_csv(path, dtype={text_col: "string"}, keep_default_na=False, na_values=[""])
    missing = [col for col in (text_col, label_col) if col not in raw.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing}; columns are {list(raw.columns)}")
    texts = raw[text_col].fillna("").astype(str).str.strip()
    keep = texts != ""
    labels_raw = raw.loc[keep, label_col]
    labels, bad = [], []
    for position, value in zip(labels_raw.index, labels_raw, strict=True):
        try:
            labels.append(normalise_label(value, mapping))
        except ValueError as exc:
            bad.append((position + 2, str(exc)))  # +2: header line and 1-based rows
    if bad:
        shown = "; ".join(f"line {line}: {message}" for line, message in bad[:3])
        raise ValueError(f"{path}: {len(bad)} rows with unusable labels ({shown})")
    df = pd.DataFrame({"text": texts[keep].tolist(), "label": labels})
    dropped = int((~keep).sum())
    df.attrs["dropped"] = dropped
    if dropped:
        log.info("%s: dropped %d of %d rows with empty text", path, dropped, len(raw))
    return df


def seed_corpus_path() -> Path:
    """The labelled seed corpus that ships with the package."""
    return Path(str(resources.files("dikkat.assets").joinpath(SEED_CORPUS)))


def data_hash(df: pd.DataFrame) -> str:
    """Order-independent sha256 of the (text, label) rows."""
    rows = sorted(f"{label}\t{text}" for text, label in zip(df["text"], df["label"], strict=True))
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


def split_train_val(
    df: pd.DataFrame, val_fraction: float = 0.25, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation split (plain random when a class is too small)."""
    from sklearn.model_selection import train_test_split

    counts = df["label"].value_counts()
    stratify = df["label"] if counts.min() >= 2 else None
    if stratify is None:
        log.warning("a class has fewer than 2 rows; the split is not stratified")
    train, val = train_test_split(
        df, test_size=val_fraction, random_state=seed, stratify=stratify, shuffle=True
    )
    return train.reset_index(drop=True), val.reset_index(drop=True)


def label_indices(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    """Label names (or already indices) -> int64 indices in LABELS order."""
    array = np.asarray(labels)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    return np.array([LABEL_INDEX[str(label)] for label in array], dtype=np.int64)


MIN_ROWS_PER_CLASS = 10


def check_class_counts(df: pd.DataFrame, source: str) -> None:
    """Refuse data that cannot teach three classes (a one-class CSV trains a 'perfect' head)."""
    counts = {label: int((df["label"] == label).sum()) for label in LABELS}
    thin = [f"{label} {n}" for label, n in counts.items() if n < MIN_ROWS_PER_CLASS]
    if thin:
        shown = ", ".join(f"{label} {n}" for label, n in counts.items())
        raise ValueError(
            f"{source}: every class needs at least {MIN_ROWS_PER_CLASS} rows to train a "
            f"three-class head; found {shown} (too few: {', '.join(thin)})"
        )
