"""Stored head versions: load one for the running encoder; make sure one is active at start-up."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dikkat.config import Settings
from dikkat.models.checksum import file_sha256
from dikkat.models.encoder import SentenceEncoder
from dikkat.models.head import (
    HeadLoadError,
    HeadMeta,
    HeadMismatchError,
    SentimentHead,
    default_head_path,
    head_file_name,
    load_head,
    save_head,
)
from dikkat.storage.feature_cache import FeatureCache
from dikkat.storage.records import ModelVersion, VersionStatus
from dikkat.storage.store import Store
from dikkat.training.candidate import evaluation_metrics, train_candidate
from dikkat.training.promotion import fixed_metrics
from dikkat.training.rehearsal import Rehearsal, load_rehearsal, rehearsal_path
from dikkat.training.sentiment import make_meta

log = logging.getLogger(__name__)

RELEARN_REQUESTER = "start-up (relearn the stored votes)"


def load_head_for(
    path: Path, encoder: SentenceEncoder, *, sha256: str | None = None
) -> SentimentHead:
    """A stored head checked against `encoder` (id, dimension, pooling) and `sha256`, on the
    encoder's device. Raises HeadLoadError or HeadMismatchError."""
    head, _ = load_head(
        path,
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        pooling=encoder.pooling,
        device=encoder.device,
        sha256=sha256,
    )
    return head


@dataclass(frozen=True)
class ShippedReference:
    """The head shipped for an encoder and its rehearsal buffer (either may be absent)."""

    head: SentimentHead | None
    rehearsal: Rehearsal | None

    @classmethod
    def load(cls, encoder: SentenceEncoder) -> ShippedReference:
        """What the package ships for `encoder`; a file that does not load counts as absent."""
        path = default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
        if path is None:
            return cls(None, None)
        try:
            head = load_head_for(path, encoder)
        except (HeadLoadError, HeadMismatchError) as error:
            log.warning("the shipped head %s cannot be used as a reference: %s", path.name, error)
            head = None
        fp32_head = path.with_name(head_file_name(encoder.encoder_id))
        buffer = rehearsal_path(fp32_head, encoder.precision_tag)  # this precision's features
        return cls(head, load_rehearsal(buffer, encoder.feature_key))


def head_versions_dir(settings: Settings) -> Path:
    """Where head versions live."""
    return settings.model_dir / "heads"


async def register_head(store: Store, path: Path, **version: Any) -> int:
    """Record a saved head as a version; a store that keeps weights (the shared SQL store) gets
    the file's bytes too, so that every host can serve it."""
    if hasattr(store, "put_head_blob"):
        version["blob"] = await asyncio.to_thread(path.read_bytes)
    sha256 = await asyncio.to_thread(file_sha256, path)
    return await store.add_model_version(path=str(path), sha256=sha256, **version)


async def head_file(store: Store, version: ModelVersion) -> Path:
    """The version's head file on this host, written from the database's copy when this host
    does not have it (another host trained it); the SHA-256 is checked when it is loaded."""
    path = Path(version.path)
    if path.is_file() or not hasattr(store, "get_head_blob"):
        return path
    blob = await store.get_head_blob(version.id)
    if blob is not None:
        await asyncio.to_thread(_write_atomically, path, blob)
        log.info("head #%d fetched from the database to %s", version.id, path)
    return path


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


async def ensure_active_head(
    store: Store, encoder: SentenceEncoder, cache: FeatureCache, settings: Settings
) -> tuple[SentimentHead, int]:
    """The head to serve: the active version; if its file cannot be loaded, the newest earlier
    version that loads (the bad one is marked); else the shipped head; else one trained now."""
    key = encoder.feature_key
    checks = dict(
        encoder_id=encoder.encoder_id,
        dim=encoder.dim,
        pooling=encoder.pooling,
        device=encoder.device,
    )
    active = await store.active_version(key)
    if active is not None:
        fallbacks = [
            v
            for v in await store.list_versions(key)
            if v.status == VersionStatus.RETIRED
            and v.problem is None
            and v.activated_at is not None
        ]
        fallbacks.sort(key=lambda v: v.activated_at or 0.0, reverse=True)
        for version in [active, *fallbacks]:
            try:
                head = await asyncio.to_thread(
                    load_head_for, await head_file(store, version), encoder, sha256=version.sha256
                )
            except (HeadLoadError, HeadMismatchError) as error:
                log.error("head #%d cannot be served: %s", version.id, error)
                await store.mark_unloadable(version.id, str(error))
                continue
            if version.id != active.id:
                await store.activate_version(version.id)
                log.warning("serving head #%d instead of the damaged #%d", version.id, active.id)
            return head, version.id
        log.error("no stored head for %s can be loaded; installing a new one", key)
    shipped = default_head_path(encoder.encoder_id, encoder.pooling, encoder.precision_tag)
    if shipped is not None:
        head, meta = await asyncio.to_thread(load_head, shipped, **checks)
        source = f"shipped {shipped.name}"
        log.info("installing the shipped sentiment head %s", shipped.name)
    else:
        log.info("no sentiment head for %s yet: training one on the seed corpus", key)
        report = await asyncio.to_thread(train_candidate, encoder, cache, None, [], progress=True)
        head, source = report.head, "trained at start-up on the seed corpus"
        meta = make_meta(encoder, report.after, report.data, source=source)
    metrics = meta.metrics
    if not _scored_on(meta, encoder) or ("macro_f1" not in metrics and "fixed" not in metrics):
        metrics = await asyncio.to_thread(evaluation_metrics, encoder, cache, head)
        meta.metrics = metrics
    path = head_versions_dir(settings) / f"{head_file_name(key)[:-3]}-{int(time.time())}.pt"
    await asyncio.to_thread(save_head, head, path, meta)
    version = await register_head(
        store,
        path,
        encoder=key,
        dim=encoder.dim,
        metrics=metrics,
        status=VersionStatus.ACTIVE,
        source=source,
    )
    log.info(
        "sentiment head #%d active (macro-F1 %.3f on the fixed evaluation set)",
        version,
        fixed_metrics(metrics)["macro_f1"],
    )
    await _relearn_stored_votes(store, key)
    return head.to(encoder.device).eval(), version


def _scored_on(meta: HeadMeta, encoder: SentenceEncoder) -> bool:
    """Whether a head's recorded scores were measured on `encoder`'s features; heads saved
    before their feature key was recorded were scored on fp32 features at their max length."""
    recorded = meta.extra.get("features")
    if recorded is not None:
        return recorded == encoder.feature_key
    return not encoder.precision_tag and meta.max_length == encoder.max_length


async def _relearn_stored_votes(store: Store, key: str) -> None:
    """A head just installed knows none of the users' votes (a new encoder or precision, or
    every learnt head lost): ask the trainer to learn them again, judged like any retrain."""
    votes = await store.feedback_count()
    if votes:
        request = await store.request_retrain(RELEARN_REQUESTER)
        log.warning(
            "the new head for %s has not learnt the %d stored votes: retrain request #%d left "
            "for the trainer",
            key,
            votes,
            request,
        )
