"""Where an encoder's torch model comes from: a transformers folder or hub id, read on demand.

The encoder keeps a `ModelSource` instead of the model where it may not need the model at all
(int8 on CTranslate2): the config and a fingerprint of the weight files come from the folder, and
`load` builds the torch model only when something asks for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dikkat.models.checksum import file_sha256

if TYPE_CHECKING:
    import torch

__all__ = ["WEIGHT_SUFFIXES", "ModelSource"]

# The files that hold a checkpoint's weights (safetensors or torch pickles, single or sharded).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".index.json")
# Written by save_pretrained, not part of the model: a moved or re-saved folder keeps its prints.
_CONFIG_NOISE = ("_name_or_path", "transformers_version")
# Load options that change the model's config (the others, like add_pooling_layer, do not).
CONFIG_OPTIONS = ("num_hidden_layers",)


@dataclass(frozen=True)
class ModelSource:
    """A transformers `AutoModel` checkpoint: a local folder or a hub id already in the local
    cache, and the keyword options its `from_pretrained` takes (`add_pooling_layer=False`;
    `num_hidden_layers=10` builds the first 10 layers and leaves the rest of the weights)."""

    name_or_path: str
    options: Mapping[str, Any] = field(default_factory=dict)
    # sha256 of files this process has just verified (a checked e5 folder): not hashed again
    known_sha256: Mapping[str, str] = field(default_factory=dict)

    def load(self, *, local_files_only: bool = True) -> torch.nn.Module:
        """The torch model (downloaded first when `local_files_only` is False)."""
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a per-tensor bar at every start is noise
        verbosity = transformers_logging.get_verbosity()
        if self.config_overrides:  # the left-out layers' weights are "not used", as meant
            transformers_logging.set_verbosity_error()
        try:
            return AutoModel.from_pretrained(
                self.name_or_path, local_files_only=local_files_only, **self.options
            )
        finally:
            transformers_logging.set_verbosity(verbosity)

    @property
    def config_overrides(self) -> dict[str, Any]:
        """The load options that change the config (`num_hidden_layers`)."""
        return {key: self.options[key] for key in CONFIG_OPTIONS if key in self.options}

    def config(self, *, local_files_only: bool = True):
        """The model's transformers config as loaded (overrides applied), without its weights
        (fetched first when `local_files_only` is False)."""
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(
            self.name_or_path, local_files_only=local_files_only, **self.config_overrides
        )

    def folder(self) -> Path:
        """The local folder that holds the checkpoint (a hub id's cached snapshot)."""
        path = Path(self.name_or_path).expanduser()
        if path.is_dir():
            return path
        from transformers.utils import cached_file

        return Path(cached_file(self.name_or_path, "config.json", local_files_only=True)).parent

    def fingerprint(self) -> str:
        """sha256 of the config, the load options and every weight file's name, size and sha256:
        it changes with the weights, not with the folder's place (a moved folder keeps it)."""
        folder = self.folder()
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        for key in _CONFIG_NOISE:
            config.pop(key, None)
        described = {"config": config, "options": dict(self.options), "files": {}}
        for path in sorted(folder.iterdir()):
            if path.name.endswith(WEIGHT_SUFFIXES) and path.is_file():
                digest = self.known_sha256.get(path.name) or file_sha256(path)
                described["files"][path.name] = [path.stat().st_size, digest]
        if not described["files"]:
            raise FileNotFoundError(f"no weight files (safetensors, bin) in {folder}")
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
