"""Training and evaluation of the sentiment head on frozen, cached encoder features."""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from dikkat.models.head import (
    LABELS,
    HeadMeta,
    SentimentHead,
    default_head_path,
    load_head,
    save_head,
)
from dikkat.storage.features import FeatureCache, text_hash

if TYPE_CHECKING:
    from dikkat.models.encoder import SentenceEncoder

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


def feature_cache_for(encoder: SentenceEncoder, db_path: str | Path) -> FeatureCache:
    """A FeatureCache keyed by the encoder's cache_key (id + pooling + max length)."""
    return FeatureCache(Path(db_path), encoder.cache_key)


def features_for(
    texts: Sequence[str],
    encoder: SentenceEncoder,
    cache: FeatureCache | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """(n, dim) features: cached ones looked up, misses encoded in length-sorted batches."""
    from tqdm.auto import tqdm

    if cache is not None and cache.encoder_id != encoder.cache_key:
        raise ValueError(
            f"feature cache is for {cache.encoder_id!r}, encoder is {encoder.cache_key!r}"
        )
    texts = list(texts)
    keys = [text_hash(text) for text in texts]
    found = cache.get_many(keys) if cache is not None else {}
    unique = dict(zip(keys, texts, strict=True))
    misses = [key for key in unique if key not in found]
    if misses:
        lengths = encoder.token_counts([unique[key] for key in misses])
        order = [misses[i] for i in np.argsort(lengths, kind="stable")]
        bar = tqdm(total=len(order), unit="text", desc="encoding", disable=not progress)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            vectors = encoder.encode([unique[key] for key in chunk])
            fresh = dict(zip(chunk, vectors, strict=True))
            if cache is not None:
                cache.put_many(fresh)
            found.update(fresh)
            bar.update(len(chunk))
        bar.close()
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)


@dataclass
class TrainResult:
    """A trained head, its per-epoch history and its validation metrics."""

    head: SentimentHead
    history: list[dict[str, float]]
    best_epoch: int
    metrics: dict[str, Any]
    seconds: float = 0.0
    class_weights: list[float] | None = None


@contextmanager
def _threads(n: int | None):
    previous = torch.get_num_threads()
    torch.set_num_threads(n or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def auto_class_weights(y: np.ndarray, ratio: float = 1.2) -> np.ndarray | None:
    """Balanced weights n / (k * count) when max/min class count exceeds `ratio`, else None."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    present = counts > 0
    if counts[present].max() / counts[present].min() <= ratio:
        return None
    weights = np.ones(len(LABELS))
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def _epoch_stats(
    head: SentimentHead, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    head.eval()
    with torch.inference_mode():
        logits = head(x)
        loss = float(loss_fn(logits, y))
        acc = float((logits.argmax(-1) == y).float().mean())
    return loss, acc


def train_head(
    X_train: np.ndarray,
    y_train: Sequence[str] | np.ndarray,
    X_val: np.ndarray | None = None,
    y_val: Sequence[str] | np.ndarray | None = None,
    *,
    epochs: int = 100,
    patience: int = 8,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    class_weights: str | Sequence[float] | None = "auto",
    torch_threads: int | None = None,
    init: SentimentHead | None = None,
) -> TrainResult:
    """Adam + cross-entropy; early stop on val loss, keep the best-val-accuracy checkpoint.

    Without validation data it trains exactly `epochs` epochs and keeps the last one. The head is
    tiny, so None means one CPU thread (more threads only add synchronisation, ~10x slower on a
    busy 2-core machine); torch's global thread setting is restored afterwards. `init` starts
    from a copy of that head's weights (it must take the same features) instead of from scratch.
    """
    started = time.perf_counter()
    ytr = label_indices(y_train)
    has_val = X_val is not None and y_val is not None and len(X_val) > 0
    if class_weights == "auto":
        weights = auto_class_weights(ytr)
    elif class_weights is None:
        weights = None
    else:
        weights = np.asarray(class_weights, dtype=np.float64)
    with _threads(torch_threads):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        xt = torch.as_tensor(np.asarray(X_train, np.float32))
        yt = torch.as_tensor(ytr)
        if init is not None and init.dim != xt.shape[1]:
            raise ValueError(f"init head takes {init.dim} features, the data has {xt.shape[1]}")
        head = copy.deepcopy(init).cpu() if init is not None else SentimentHead(xt.shape[1])
        optimiser = torch.optim.Adam(head.parameters(), lr=lr)
        weight_t = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        loss_fn = nn.CrossEntropyLoss(weight=weight_t)
        if has_val:
            xv = torch.as_tensor(np.asarray(X_val, np.float32))
            yv = torch.as_tensor(label_indices(y_val))
        history: list[dict[str, float]] = []
        best_state, best_epoch, best_acc = None, 0, -1.0
        best_loss, stale = math.inf, 0
        for epoch in range(1, epochs + 1):
            head.train()
            order = torch.randperm(len(xt), generator=generator)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                if len(idx) < 2:  # BatchNorm needs two rows in training mode
                    continue
                optimiser.zero_grad()
                loss_fn(head(xt[idx]), yt[idx]).backward()
                optimiser.step()
            train_loss, train_acc = _epoch_stats(head, loss_fn, xt, yt)
            row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
            if has_val:
                val_loss, val_acc = _epoch_stats(head, loss_fn, xv, yv)
                row.update(val_loss=val_loss, val_acc=val_acc)
                if val_acc > best_acc:
                    best_acc, best_epoch = val_acc, epoch
                    best_state = copy.deepcopy(head.state_dict())
                if val_loss < best_loss - 1e-6:
                    best_loss, stale = val_loss, 0
                else:
                    stale += 1
            history.append(row)
            if has_val and stale >= patience:
                break
        if best_state is not None:
            head.load_state_dict(best_state)
        else:
            best_epoch = len(history)
        head.eval()
        metrics = evaluate(head, X_val, y_val) if has_val else {}
    return TrainResult(
        head=head,
        history=history,
        best_epoch=best_epoch,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        class_weights=None if weights is None else [float(w) for w in weights],
    )


def evaluate(
    head: SentimentHead | None,
    X: np.ndarray,
    y: Sequence[str] | np.ndarray,
    *,
    proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """{"n", "accuracy", "macro_f1", "per_class", "confusion"} (+ "binary_accuracy" w/o neutral).

    macro_f1 averages over the classes present in y; confusion rows are true, columns predicted.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = label_indices(y)
    if proba is None:
        proba = head.predict_proba(X) if len(y_true) else np.zeros((0, len(LABELS)))
    y_pred = proba.argmax(axis=1)
    every = list(range(len(LABELS)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=every, zero_division=0
    )
    present = sorted(set(y_true.tolist()))
    metrics: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(np.mean([f1[i] for i in present])) if present else 0.0,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(LABELS)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=every).tolist(),
    }
    neutral = LABEL_INDEX["neutral"]
    if len(y_true) and neutral not in present:
        pos, neg = LABEL_INDEX["positive"], LABEL_INDEX["negative"]
        binary = np.where(proba[:, pos] > proba[:, neg], pos, neg)
        metrics["binary_accuracy"] = float((binary == y_true).mean())
    return metrics


def format_report(metrics: Mapping[str, Any]) -> str:
    """Plain-text report: headline figures, per-class table, confusion matrix."""
    lines = [f"n = {metrics['n']}", f"accuracy        {metrics['accuracy']:.4f}"]
    lines.append(f"macro-F1        {metrics['macro_f1']:.4f}")
    if "binary_accuracy" in metrics:
        lines.append(f"binary accuracy {metrics['binary_accuracy']:.4f}  (negative vs positive)")
    lines += ["", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, row in metrics["per_class"].items():
        lines.append(
            f"{label:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>10d}"
        )
    cells = [len(str(v)) for row in metrics["confusion"] for v in row]
    width = max(len(label) for label in LABELS) + 2
    width = max(width, *(cell + 2 for cell in cells))
    lines += ["", "confusion (rows = true, columns = predicted)"]
    lines.append(" " * 10 + "".join(f"{label:>{width}}" for label in LABELS))
    for label, row in zip(LABELS, metrics["confusion"], strict=True):
        lines.append(f"{label:<10}" + "".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)


@dataclass
class TrainOutcome:
    """What `train_sentiment_from_csv` produced (paths are None when not written)."""

    head: SentimentHead
    meta: HeadMeta
    result: TrainResult
    head_path: Path | None
    curves_path: Path | None
    n_train: int
    n_val: int
    dropped: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """Validation metrics of the kept checkpoint."""
        return self.result.metrics


def make_meta(
    encoder: SentenceEncoder, metrics: dict[str, Any], df: pd.DataFrame, **extra
) -> HeadMeta:
    """Head metadata tying it to the encoder that made its features."""
    return HeadMeta(
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        pooling=encoder.pooling,
        max_length=encoder.max_length,
        metrics=metrics,
        data_hash=data_hash(df),
        extra=extra,
    )


def new_head_path(out_dir: str | Path, encoder_id: str) -> Path:
    """out_dir/sentiment-<encoder>-<UTC time>.pt."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(out_dir) / f"sentiment-{slug}-{stamp}.pt"


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


def train_sentiment_from_csv(
    data: str | Path,
    encoder: SentenceEncoder,
    *,
    text_col: str = "text",
    label_col: str = "label",
    label_map: str | Mapping[str, str] | None = None,
    out_dir: str | Path | None = None,
    curves: str | Path | None = None,
    db_path: str | Path | None = None,
    val_fraction: float = 0.25,
    seed: int = 0,
    epochs: int = 100,
    patience: int = 8,
    progress: bool = True,
) -> TrainOutcome:
    """Load, split (stratified, seeded), featurise through the cache, train, save head and PNG."""
    df = load_labelled_csv(data, text_col, label_col, label_map)
    check_class_counts(df, str(data))
    train_df, val_df = split_train_val(df, val_fraction, seed)
    cache = feature_cache_for(encoder, db_path) if db_path is not None else None
    try:
        X_train = features_for(train_df["text"].tolist(), encoder, cache, progress=progress)
        X_val = features_for(val_df["text"].tolist(), encoder, cache, progress=progress)
    finally:
        if cache is not None:
            cache.close()
    result = train_head(
        X_train,
        train_df["label"],
        X_val,
        val_df["label"],
        epochs=epochs,
        patience=patience,
        seed=seed,
    )
    meta = make_meta(
        encoder,
        result.metrics,
        df,
        source=str(data),
        seed=seed,
        val_fraction=val_fraction,
        best_epoch=result.best_epoch,
        n_train=len(train_df),
        n_val=len(val_df),
    )
    head_path = None
    if out_dir is not None:
        head_path = save_head(result.head, new_head_path(out_dir, encoder.encoder_id), meta)
    curves_path = None
    if curves is not None:
        from dikkat.viz.curves import training_curves_png

        curves_path = Path(curves)
        curves_path.parent.mkdir(parents=True, exist_ok=True)
        curves_path.write_bytes(training_curves_png(result.history, best_epoch=result.best_epoch))
    return TrainOutcome(
        head=result.head,
        meta=meta,
        result=result,
        head_path=head_path,
        curves_path=curves_path,
        n_train=len(train_df),
        n_val=len(val_df),
        dropped=int(df.attrs.get("dropped", 0)),
    )


def evaluate_from_csv(
    data: str | Path,
    encoder: SentenceEncoder,
    *,
    head_path: str | Path | None = None,
    text_col: str = "text",
    label_col: str = "label",
    label_map: str | Mapping[str, str] | None = None,
    db_path: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of a head (default: the shipped one for this encoder) on a labelled CSV."""
    path = (
        Path(head_path)
        if head_path is not None
        else default_head_path(encoder.encoder_id, encoder.pooling)
    )
    if path is None:
        raise FileNotFoundError(
            f"no head for encoder {encoder.encoder_id} (pooling {encoder.pooling}); "
            "train one with `dikkat train sentiment` or pass --head"
        )
    head, _ = load_head(
        path, encoder_id=encoder.encoder_id, dim=encoder.dim, pooling=encoder.pooling
    )
    df = load_labelled_csv(data, text_col, label_col, label_map)
    cache = feature_cache_for(encoder, db_path) if db_path is not None else None
    try:
        X = features_for(df["text"].tolist(), encoder, cache, progress=progress)
    finally:
        if cache is not None:
            cache.close()
    metrics = evaluate(head, X, df["label"])
    metrics["dropped"] = int(df.attrs.get("dropped", 0))
    return metrics
