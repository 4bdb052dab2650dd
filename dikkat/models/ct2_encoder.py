"""The encoder's forward pass on CTranslate2 int8 (CPU), from a folder converted once.

`ensure_int8_folder` converts the transformers model into `<root>/<name>-ct2-int8/` (written
into a temporary folder, then renamed into place) and reuses it on the next start while the source
folder's fingerprint matches; the converter reads the checkpoint's files. CTranslate2 quantizes the
weights, embeddings included, and each row's activations at run time: about 4x fp32 torch on CPU
with no macro-F1 loss on e5-small.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dikkat.models.e5_image import publish_folder
from dikkat.models.length_groups import group_by_length, grouped_tokens
from dikkat.models.source import ModelSource

log = logging.getLogger(__name__)

SUFFIX = "-ct2-int8"
FINGERPRINT_FILE = "dikkat-source.sha256"


class Ct2Unavailable(RuntimeError):
    """CTranslate2 is not installed, or cannot convert or load this encoder."""


def int8_folder(root: Path, encoder_id: str) -> Path:
    """Where the converted int8 model of `encoder_id` lives under `root`."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", encoder_id).strip("-.") or "encoder"
    return Path(root) / f"{slug}{SUFFIX}"


def _is_current(folder: Path, fingerprint: str) -> bool:
    try:
        return (folder / FINGERPRINT_FILE).read_text().strip() == fingerprint and (
            folder / "model.bin"
        ).is_file()
    except OSError:
        return False


def convert_int8(
    source: Path, out_dir: Path, config_overrides: Mapping[str, Any] | None = None
) -> None:
    """Convert the BERT-like transformers checkpoint in folder `source` (with its tokenizer
    files; its config changed by `config_overrides`, e.g. fewer layers) into a CTranslate2 int8
    folder. The converter reads the files through links: this process never holds a torch copy
    of the model besides the converter's own."""
    import ctranslate2
    from transformers.utils import logging as transformers_logging

    with tempfile.TemporaryDirectory(prefix="dikkat-ct2-source-") as staged:
        for part in source.iterdir():
            if part.name != "config.json" and part.is_file():
                (Path(staged) / part.name).symlink_to(part.resolve())
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        # transformers 5 no longer writes this key; ctranslate2's BertLoader asserts on it
        config.setdefault("position_embedding_type", "absolute")
        config.update(config_overrides or {})
        (Path(staged) / "config.json").write_text(json.dumps(config), encoding="utf-8")
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # the unused pooler is "newly initialized"
        try:
            converter = ctranslate2.converters.TransformersConverter(staged)
            converter.convert(str(out_dir), quantization="int8", force=True)
        finally:
            transformers_logging.set_verbosity(verbosity)


def ensure_int8_folder(
    fingerprint: str, source: Path, folder: Path, config_overrides: Mapping[str, Any] | None = None
) -> tuple[Path, str]:
    """The converted folder for the checkpoint in `source` with this fingerprint, converted
    only when it is missing or was converted from other weights."""
    if _is_current(folder, fingerprint):
        return folder, "cached"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting it now
        if _is_current(folder, fingerprint):
            return folder, "converted by another process"
        for leftover in folder.parent.glob(f".{folder.name}.*"):  # from a killed conversion
            shutil.rmtree(leftover, ignore_errors=True)
        log.info("converting the encoder to CTranslate2 int8 in %s (once)", folder)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            convert_int8(source, work, config_overrides)
            (work / FINGERPRINT_FILE).write_text(fingerprint + "\n")
            publish_folder(work, folder)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return folder, "converted"


class Ct2Encoder:
    """A CTranslate2 int8 encoder on CPU: lists of token ids in, last hidden states out.

    It runs `threads` single-threaded workers and cuts each batch into that many runs of
    similar length, one per worker: on the 2-core machine this was measured on, two threads
    inside one forward cost about 7 ms of start-up per call, and a lone text took twice as long
    as on one thread.
    """

    def __init__(self, folder: Path, threads: int) -> None:
        import ctranslate2

        self.folder = Path(folder)
        self.workers = max(1, threads)
        torch_threads = torch.get_num_threads()
        self._encoder = ctranslate2.Encoder(
            str(folder),
            device="cpu",
            compute_type="int8",
            intra_threads=1,
            inter_threads=self.workers,
        )
        torch.set_num_threads(torch_threads)  # the constructor set the process's OpenMP threads
        self._helpers = ThreadPoolExecutor(
            max_workers=self.workers - 1 or 1, thread_name_prefix="ct2-run"
        )

    def computed_tokens(self, costs: Sequence[int]) -> int:
        """Tokens a forward computes for texts of these lengths: each run padded to its longest."""
        return grouped_tokens(costs, self.workers)

    def last_hidden_states(
        self, ids: Sequence[Sequence[int]]
    ) -> list[tuple[list[int], np.ndarray]]:
        """Each length group's item indices and its (n, T, C) float32 states, the groups run side
        by side on the workers; rows past a text's length are padding."""
        runs = group_by_length([len(row) for row in ids], self.workers)
        later = [self._helpers.submit(self._forward, ids, run) for run in runs[1:]]
        states = [self._forward(ids, runs[0]), *(f.result() for f in later)]
        return list(zip(runs, states, strict=True))

    def _forward(self, ids: Sequence[Sequence[int]], run: list[int]) -> np.ndarray:
        out = self._encoder.forward_batch([list(ids[i]) for i in run])
        return np.asarray(out.last_hidden_state, dtype=np.float32)


def load_int8_encoder(source: ModelSource, root: Path, encoder_id: str) -> tuple[Ct2Encoder, str]:
    """The CTranslate2 int8 encoder of `source`, converted under `root` once;
    raises Ct2Unavailable (with the reason) when ctranslate2 is missing or the model does not
    convert."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError as exc:
        raise Ct2Unavailable("ctranslate2 is not installed (a dikkat dependency)") from exc
    try:
        folder = int8_folder(root, encoder_id)
        folder, how = ensure_int8_folder(
            source.fingerprint(), source.folder(), folder, source.config_overrides
        )
        return Ct2Encoder(folder, torch.get_num_threads()), f"{how}, folder {folder}"
    except (OSError, ValueError, RuntimeError, AttributeError, AssertionError, KeyError) as exc:
        raise Ct2Unavailable(f"cannot convert or load it with ctranslate2: {exc!r}") from exc
