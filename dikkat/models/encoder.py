"""The frozen sentence encoder: a tokenizer (`TextTokenizer`) + transformers AutoModel, CLS or
mean pooling.

Which encoder to load (auto, offline, hub, folder): `dikkat.models.loading`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dikkat.models.ct2_encoder import Ct2Encoder, Ct2Unavailable, load_int8_encoder
from dikkat.models.packing import Packing, pack, packed_tokens
from dikkat.models.piece_tokenizer import PieceTokenizer
from dikkat.models.precision import Precision, PrecisionSetting, chosen_precision
from dikkat.models.source import ModelSource
from dikkat.models.text_tokenizer import FastTokenizer, TextTokenizer, WordPieces

log = logging.getLogger(__name__)

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[str, ...] = ("cls", "mean")
DEFAULT_MODEL_DIR = Path("var/models")
DEFAULT_INT8_DIR = DEFAULT_MODEL_DIR / "encoders"


@dataclass(frozen=True)
class TokenizedText:
    """A text's token ids (prefix and special tokens included), cut to the encoder's max length."""

    text: str
    input_ids: tuple[int, ...]
    truncated: bool

    @property
    def cost(self) -> int:
        """Token count after truncation: the batching cost."""
        return len(self.input_ids)


class SentenceEncoder:
    """A frozen transformer encoder that turns texts into pooled float32 feature vectors.

    The torch model comes from `source` (or is handed in already loaded as `model`). With
    `precision="int8"` on CPU the sentiment vectors come from CTranslate2 int8, converted once
    under `int8_dir` and reused while the source's weight files are the same; the torch model is
    then loaded only for what CTranslate2 cannot give (attention pictures, hidden states and input
    embeddings for word vectors), on its first call (the conversion reads the weight files).
    Without ctranslate2 (or off the CPU) the vectors stay fp32.
    """

    def __init__(
        self,
        tokenizer: TextTokenizer,
        source: ModelSource,
        encoder_id: str,
        *,
        model: torch.nn.Module | None = None,
        max_length: int = 128,
        pooling: Pooling = "mean",
        device: str | torch.device = "cpu",
        text_prefix: str = "",
        precision: PrecisionSetting = "fp32",
        int8_dir: Path | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        wanted = chosen_precision(precision, encoder_id)
        if max_length < 3:
            raise ValueError("max_length must be at least 3 (two special tokens + one)")
        config = model.config if model is not None else source.config()
        limit = getattr(config, "max_position_embeddings", None) or max_length
        self.tokenizer = tokenizer
        self.source = source
        self.device = torch.device(device)
        self._model: torch.nn.Module | None = None if model is None else self._prepare(model)
        self._model_lock = threading.Lock()
        self._ct2: Ct2Encoder | None = None
        self.encoder_id = encoder_id
        self.max_length = min(max_length, int(limit))
        self.pooling: Pooling = pooling
        self.text_prefix = text_prefix
        self.dim = int(config.hidden_size)
        self._lock = threading.Lock()  # attentions() switches the attention kernel
        if wanted == "int8":
            self._to_int8(Path(int8_dir) if int8_dir is not None else DEFAULT_INT8_DIR)
        if self._ct2 is None and self._model is None:  # torch computes the vectors: load it now
            self._model = self._prepare(source.load())

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device).eval().requires_grad_(False)

    @property
    def model(self) -> torch.nn.Module:
        """The fp32 torch model, loaded on first use."""
        model = self._model
        if model is None:
            with self._model_lock:
                if self._model is None:
                    log.info("encoder %s: loading the torch model", self.encoder_id)
                    self._model = self._prepare(self.source.load())
                model = self._model
        return model

    def _to_int8(self, int8_dir: Path) -> None:
        """CTranslate2 int8 for the sentiment forward pass (CPU only); fp32 where it cannot run.
        torch's own dynamic int8 is not offered: it loses about 0.017 macro-F1 on e5."""
        if self.device.type != "cpu":
            log.info(
                "encoder %s: int8 is CPU-only; float weights on %s", self.encoder_id, self.device
            )
            return
        try:
            self._ct2, how = load_int8_encoder(self.source, int8_dir, self.encoder_id)
        except Ct2Unavailable as exc:
            log.warning("encoder %s: no CTranslate2 int8 (%s); fp32 instead", self.encoder_id, exc)
            return
        log.info("encoder %s: CTranslate2 int8 (%s)", self.encoder_id, how)
        self._model = None  # if handed in; back for the first attention picture

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, encoder_id: str | None = None, **options
    ) -> SentenceEncoder:
        """The encoder of a hub id or a local folder (no network fallbacks); a hub model that
        `local_files_only=False` lets download is loaded at once, so later loads find it cached."""
        from transformers import AutoTokenizer

        local_only = options.pop("local_files_only", False)
        layers = options.pop("layers", None)
        source = ModelSource(
            str(name_or_path),
            options.pop("model_options", {}),
            options.pop("known_sha256", {}),
        )
        encoder_id = encoder_id or source.name_or_path
        if layers is not None:
            source, encoder_id = _first_layers(source, encoder_id, layers, local_only)
        folder = Path(name_or_path).expanduser()
        if PieceTokenizer.in_folder(folder):
            tokenizer: TextTokenizer = PieceTokenizer(folder)
        else:
            tokenizer = FastTokenizer(
                AutoTokenizer.from_pretrained(source.name_or_path, local_files_only=local_only)
            )
        downloads = not local_only and not folder.is_dir()
        model = source.load(local_files_only=False) if downloads else None
        return cls(tokenizer, source, encoder_id, model=model, **options)

    @property
    def precision(self) -> Precision:
        """What the sentiment vectors are computed in: `int8` on CTranslate2, else `fp32`."""
        return "fp32" if self._ct2 is None else "int8"

    @property
    def runtime(self) -> str:
        """What runs the sentiment forward pass: `ctranslate2` (int8) or `torch`."""
        return "torch" if self._ct2 is None else "ctranslate2"

    @property
    def feature_key(self) -> str:
        """Feature-cache id: the vectors depend on encoder, pooling, max length, prefix and
        (when not fp32) precision and its runtime, so heads and features of different
        precisions or int8 runtimes never mix."""
        key = f"{self.encoder_id}|{self.pooling}|{self.max_length}"
        key = f"{key}|{self.text_prefix}" if self.text_prefix else key
        return f"{key}|{self.precision_tag}" if self.precision_tag else key

    @property
    def precision_tag(self) -> str:
        """How the vectors are computed when not in fp32: `int8-ct2` (CTranslate2 int8); empty
        for fp32. (Heads and features of torch's dynamic int8, offered earlier, end in `int8`.)"""
        return "" if self._ct2 is None else "int8-ct2"

    def tokenize(self, text: str) -> TokenizedText:
        """Token ids of one text, truncated to max_length, and whether the cut dropped tokens."""
        limit = self.max_length
        ids = self.tokenizer.ids(self.text_prefix + text, limit + 1)
        if len(ids) <= limit:
            return TokenizedText(text, tuple(ids), False)
        tail = self.tokenizer.closing_specials
        # the same ids as truncating at `limit`: drop the last body token, keep closing specials
        return TokenizedText(text, tuple(ids[: limit - tail]) + tuple(ids[len(ids) - tail :]), True)

    def token_count(self, text: str) -> int:
        """How many tokens `text` is without any cut (special tokens included, no prefix)."""
        return len(self.tokenizer.ids(text, 1 << 16))

    def piece_count(self, word: str) -> int:
        """How many tokens `word` is alone, without special tokens or prefix."""
        return self.token_count(word) - self.token_count("")

    def token_counts(self, texts: list[str]) -> list[int]:
        """Token counts after truncation (special tokens included): the batching cost."""
        return [self.tokenize(text).cost for text in texts]

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C) hidden states + (B, T) mask -> (B, C) sentence vectors."""
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled features of one padded batch: (n, dim) float32."""
        return self.encode_tokenized([self.tokenize(text) for text in texts])

    def encode_tokenized(self, items: Sequence[TokenizedText]) -> np.ndarray:
        """Pooled features of already tokenized texts: (n, dim) float32.

        Texts of different lengths share rows (packing) where the model allows it, otherwise each
        is padded to the longest; both give the same vectors.
        """
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._ct2 is not None:
            return self._encode_ct2(items)
        if self.packs:
            packing = pack([item.cost for item in items])
            if packing.shares_rows:
                return self._encode_packed(items, packing)
        return self._encode_padded(items)

    def _padded(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) token ids padded to the longest row, and the (B, T) mask of real tokens."""
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[index, : len(row)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _encode_padded(self, items: Sequence[TokenizedText]) -> np.ndarray:
        input_ids, mask = self._padded([item.input_ids for item in items])
        with self._lock, torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            pooled = self.pool(hidden, mask)  # (B, C)
        return pooled.float().cpu().numpy()

    def _encode_ct2(self, items: Sequence[TokenizedText]) -> np.ndarray:
        assert self._ct2 is not None
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for run, states in self._ct2.last_hidden_states([item.input_ids for item in items]):
            hidden = torch.from_numpy(states)  # (n, T, C)
            lengths = torch.tensor([items[i].cost for i in run])
            mask = (torch.arange(hidden.shape[1]) < lengths[:, None]).long()  # (n, T)
            out[run] = self.pool(hidden, mask).numpy()
        return out

    def _encode_packed(self, items: Sequence[TokenizedText], packing: Packing) -> np.ndarray:
        dtype = next(self.model.parameters()).dtype
        input_ids, positions, mask, segments = (
            t.to(self.device)
            for t in packing.tensors(
                [item.input_ids for item in items], self.tokenizer.pad_token_id, dtype
            )
        )
        with self._lock, torch.inference_mode():
            hidden = self.model(
                input_ids=input_ids, attention_mask=mask, position_ids=positions
            ).last_hidden_state
            pooled = self._pool_segments(hidden, segments, positions, len(items))
        return pooled.float().cpu().numpy()

    def _pool_segments(
        self, hidden: torch.Tensor, segments: torch.Tensor, positions: torch.Tensor, n: int
    ) -> torch.Tensor:
        """(R, W, C) packed hidden states -> (n, C): each item's CLS or mean over its tokens."""
        flat = hidden.reshape(-1, hidden.shape[-1]).float()  # sums in float32, also for fp16
        owner = segments.reshape(-1)
        keep = owner >= 0
        if self.pooling == "cls":
            keep &= positions.reshape(-1) == 0
            pooled = torch.empty((n, flat.shape[1]), dtype=flat.dtype, device=flat.device)
            pooled[owner[keep]] = flat[keep]
            return pooled
        sums = torch.zeros((n, flat.shape[1]), dtype=flat.dtype, device=flat.device)
        sums.index_add_(0, owner[keep], flat[keep])
        counts = torch.bincount(owner[keep], minlength=n).clamp(min=1)
        return sums / counts.unsqueeze(1).to(sums.dtype)

    def padded_tokens(self, costs: Sequence[int]) -> int:
        """Tokens one forward computes for texts of these token counts (packed, padded per
        length group on CTranslate2, or padded)."""
        if self._ct2 is not None:
            return self._ct2.computed_tokens(costs)
        if self.packs:
            return packed_tokens(costs)
        return max(costs) * len(costs)

    @property
    def parallel_batches(self) -> int:
        """Batches the sentiment forward runs side by side: one per CTranslate2 worker; 1 on
        torch, which spreads one batch over its threads."""
        return 1 if self._ct2 is None else self._ct2.workers

    @functools.cached_property
    def packs(self) -> bool:
        """Whether batches are packed: BERT models whose packed and padded vectors agree.

        Checked once on two short texts, so a transformers version that reads the packed
        attention mask differently falls back to padding instead of giving wrong vectors.
        CTranslate2 takes lists of ids and pads to the longest itself: never packed.
        """
        if self._ct2 is not None:
            return False
        if getattr(self.model.config, "model_type", None) != "bert":
            return False
        probe = [self.tokenize("iyi"), self.tokenize("hiç beğenmedim")]
        try:
            shared_row = pack([p.cost for p in probe], width=sum(p.cost for p in probe))
            packed = self._encode_packed(probe, shared_row)
            padded = self._encode_padded(probe)
        except Exception as error:  # e.g. transformers 4.x refuses a 4-D attention mask
            log.info(
                "encoder %s: no sequence packing (%s); padding instead", self.encoder_id, error
            )
            return False
        tolerance = 1e-3 * (float(np.abs(padded).max()) or 1.0)
        if not float(np.abs(packed - padded).max()) <= tolerance:  # NaN fails too
            log.info(
                "encoder %s: packed vectors differ from padded; padding instead", self.encoder_id
            )
            return False
        return True

    def hidden_states(
        self, texts: Sequence[str], max_tokens: int
    ) -> tuple[list[WordPieces], np.ndarray]:
        """Each text's tokens with their words (no text prefix) and the last hidden states,
        (B, T, dim), padding rows included."""
        tokenized = [self.tokenizer.words(text, max_tokens) for text in texts]
        input_ids, mask = self._padded([item.input_ids for item in tokenized])
        with self._lock, torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return tokenized, hidden.float().cpu().numpy()

    def input_embeddings(self, token_ids: Sequence[int]) -> np.ndarray:
        """Rows of the input embedding matrix, (n, dim): what a token is before any layer."""
        table = self.model.get_input_embeddings().weight
        index = torch.tensor(list(token_ids), dtype=torch.long, device=table.device)
        return table[index].detach().float().cpu().numpy()

    def attentions(self, text: str, max_tokens: int = 32) -> tuple[list[str], np.ndarray]:
        """Tokens of `text` (truncated to max_tokens) and attention as (layers, heads, T, T).

        The text prefix is left out: the picture shows the user's own tokens.
        """
        limit = max(3, min(max_tokens, self.max_length))
        ids = self.tokenizer.ids(text, limit)
        tokens = self.tokenizer.tokens(ids)
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        with self._lock, torch.inference_mode():
            previous = _attention_kernel(self.model)
            _set_attention_kernel(self.model, "eager")  # sdpa does not return the weights
            try:
                out = self.model(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    output_attentions=True,
                )
            finally:
                _set_attention_kernel(self.model, previous)
            attn = torch.stack([layer[0] for layer in out.attentions])  # (L, H, T, T)
        return tokens, attn.float().cpu().numpy()


class LayerCountError(ValueError):
    """The encoder has fewer layers than `DIKKAT_ENCODER_LAYERS` asks for."""


def _first_layers(
    source: ModelSource, encoder_id: str, layers: int, local_only: bool = True
) -> tuple[ModelSource, str]:
    """The source that builds only the first `layers` layers, and its encoder id (its own
    heads and features): `multilingual-e5-small-q4-10layers`; all layers: unchanged."""
    depth = int(source.config(local_files_only=local_only).num_hidden_layers)
    if not 1 <= layers <= depth:
        raise LayerCountError(f"{encoder_id} has {depth} layers: the layer count must be 1-{depth}")
    if layers == depth:
        return source, encoder_id
    options = {**source.options, "num_hidden_layers": layers}
    return replace(source, options=options), f"{encoder_id}-{layers}layers"


def _attention_kernel(model: torch.nn.Module) -> str:
    return getattr(model.config, "_attn_implementation", None) or "eager"


def _set_attention_kernel(model: torch.nn.Module, kernel: str) -> None:
    # transformers < 4.48 has no switch, but its sdpa attention falls back to eager by itself
    if _attention_kernel(model) != kernel and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(kernel)
