"""The sentiment head's command-line flows: train one from a labelled CSV (`dikkat train
sentiment`), and measure one on a labelled CSV (`dikkat evaluate`)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dikkat.models.head import HeadMeta, SentimentHead, default_head_path, load_head, save_head
from dikkat.training.data import check_class_counts, load_labelled_csv, split_train_val
from dikkat.training.features import feature_cache_for, features_for
from dikkat.training.metrics import Metrics, evaluate
from dikkat.training.sentiment import TrainResult, make_meta, train_head

if TYPE_CHECKING:
    from dikkat.models.encoder import SentenceEncoder


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
    def metrics(self) -> Metrics | None:
        """Validation metrics of the kept checkpoint."""
        return self.result.metrics


def new_head_path(out_dir: str | Path, encoder_id: str) -> Path:
    """out_dir/sentiment-<encoder>-<UTC time>.pt."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path(out_dir) / f"sentiment-{slug}-{stamp}.pt"


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
        result.metrics.as_dict() if result.metrics else {},
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
) -> tuple[Metrics, int]:
    """Metrics of a head (default: the shipped one for this encoder) on a labelled CSV, and how
    many rows were dropped (empty text or unknown label)."""
    path = (
        Path(head_path)
        if head_path is not None
        else default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
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
    return evaluate(head, X, df["label"]), int(df.attrs.get("dropped", 0))
