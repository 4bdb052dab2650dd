"""The e5 folder's light tokenizer: SentencePiece's Unigram over the same pieces and scores.

The fast XLM-R tokenizer holds about 300 MiB for its 250k-piece trie; SentencePiece holds about
55 MiB and is about 5x as fast, so the e5 encoder tokenizes with this one alone (sentiment,
attention pictures, word vectors). Its ids equal the fast tokenizer's except
where two segmentations score the same ("...." as "." + "..." or "..." + "."), where it picks
what SentencePiece picks (how XLM-R's own tokenizer splits text), and where a text holds a
special token's name ("</s>", "<mask>"), which it reads as characters, not as that token.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from dikkat.models.text_tokenizer import WordPieces

MODEL_FILE = "pieces.model"
SETTINGS_FILE = "pieces.json"
_SPACES = re.compile(" {2,}")
_WORD_START = "\u2581"


def special_replacements(normalisation: Mapping[int, str]) -> dict[str, str]:
    """The characters that a normalisation table maps to something other than their NFKC form
    (applied before NFKC: one character to its replacement)."""
    return {
        chr(codepoint): target
        for codepoint, target in sorted(normalisation.items())
        if unicodedata.normalize("NFKC", chr(codepoint)) != target
    }


def write_piece_files(
    folder: Path,
    pieces: Sequence[str],
    scores: Sequence[float],
    special: Mapping[str, int],
    replacements: Mapping[str, str],
) -> None:
    """Write the SentencePiece model (pieces in id order, so its ids are the model's ids) and
    the normalisation settings into `folder`. `special` names the ids of bos, eos, pad, unk
    and any other special piece (mask)."""
    from sentencepiece import sentencepiece_model_pb2 as spm_model

    piece_kind = spm_model.ModelProto.SentencePiece
    # No text becomes a special token: "</s>" typed in a review is read as characters.
    kinds = {index: piece_kind.CONTROL for index in special.values()}
    kinds[special["unk"]] = piece_kind.UNKNOWN
    proto = spm_model.ModelProto()
    proto.trainer_spec.model_type = spm_model.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(pieces)
    for name in ("bos", "eos", "pad", "unk"):
        setattr(proto.trainer_spec, f"{name}_id", special[name])
    # The text arrives normalised (below) with its leading space: SentencePiece only splits it.
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    for index, (piece, score) in enumerate(zip(pieces, scores, strict=True)):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, float(score)
        entry.type = kinds.get(index, piece_kind.NORMAL)
    folder = Path(folder)
    (folder / MODEL_FILE).write_bytes(proto.SerializeToString())
    settings = {"special": dict(special), "replacements": dict(replacements)}
    (folder / SETTINGS_FILE).write_text(
        json.dumps(settings, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )


class PieceTokenizer:
    """Token ids of a text as the e5 model reads them: `<s>`, the pieces, `</s>` (a
    `TextTokenizer`)."""

    closing_specials = 1  # `</s>` after the text

    def __init__(self, folder: Path) -> None:
        import sentencepiece

        settings = json.loads((Path(folder) / SETTINGS_FILE).read_text(encoding="utf-8"))
        special = settings["special"]
        self.bos_id, self.eos_id = int(special["bos"]), int(special["eos"])
        self.pad_token_id = int(special["pad"])
        self._replacements = str.maketrans(settings["replacements"])
        self._processor = sentencepiece.SentencePieceProcessor(
            model_file=str(Path(folder) / MODEL_FILE)
        )

    @staticmethod
    def in_folder(folder: Path) -> bool:
        """Whether `folder` carries the light tokenizer's files."""
        return all((Path(folder) / name).is_file() for name in (MODEL_FILE, SETTINGS_FILE))

    def normalise(self, text: str) -> str:
        """nmt-NFKC as the fast tokenizer does it: the table's own mappings, NFKC, one space
        for runs of spaces, and the word-start space in front."""
        text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text.translate(self._replacements)))
        return text if not text or text.startswith(" ") else " " + text

    def ids(self, text: str, max_length: int) -> list[int]:
        """`<s>` + the text's piece ids (cut so that the whole fits `max_length`) + `</s>`."""
        body = self._processor.encode(self.normalise(text))
        return [self.bos_id, *body[: max(max_length - 2, 0)], self.eos_id]

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The pieces of `ids` ("▁film", "<s>")."""
        return [self._processor.id_to_piece(int(i)) for i in ids]

    def words(self, text: str, max_length: int) -> WordPieces:
        """`ids(text, max_length)` with each piece's word: a piece that starts with "▁" starts
        one. Words read as normalised ("ＡＢＣ" becomes "ABC")."""
        pieces = self._processor.encode(self.normalise(text), out_type="proto").pieces
        pieces = pieces[: max(max_length - 2, 0)]
        words: list[str] = []
        word_of_token: list[int | None] = [None]
        for piece in pieces:
            if not words or piece.piece.startswith(_WORD_START):
                words.append("")
            words[-1] += piece.surface
            word_of_token.append(len(words) - 1)
        ids = [self.bos_id, *(piece.id for piece in pieces), self.eos_id]
        return WordPieces(ids, [*word_of_token, None], [word.strip() for word in words])
