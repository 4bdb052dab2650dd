"""How the encoder turns text into token ids: one small interface, two tokenizers.

`FastTokenizer` wraps a transformers tokenizer (any hub or folder model); the e5 folder's
`PieceTokenizer` (`dikkat.models.piece_tokenizer`) gives the same ids in a fifth of the memory.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class WordPieces:
    """A text's token ids, the word each token belongs to (None for special tokens) and the
    words as they read."""

    input_ids: list[int]
    word_of_token: list[int | None]
    words: list[str]


class TextTokenizer(Protocol):
    """What the encoder asks of a tokenizer."""

    pad_token_id: int
    closing_specials: int  # special tokens after the text ([SEP], </s>: 1)

    def ids(self, text: str, max_length: int) -> list[int]:
        """Token ids with the special tokens, cut so that they fit `max_length`."""
        ...

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """The token strings of `ids` ("▁film", "##ler", "<s>")."""
        ...

    def words(self, text: str, max_length: int) -> WordPieces:
        """`ids(text, max_length)` with the word of each token."""
        ...


class FastTokenizer:
    """A transformers (fast) tokenizer behind the encoder's interface."""

    def __init__(self, tokenizer: Any) -> None:
        self.hf = tokenizer
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    @functools.cached_property
    def closing_specials(self) -> int:
        plain = self.hf("a", add_special_tokens=False)["input_ids"]
        full = self.hf("a")["input_ids"]
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return len(full) - start - len(plain)
        return 0

    def ids(self, text: str, max_length: int) -> list[int]:
        return self.hf(text, truncation=True, max_length=max_length)["input_ids"]

    def tokens(self, ids: Sequence[int]) -> list[str]:
        return self.hf.convert_ids_to_tokens(list(ids))

    def words(self, text: str, max_length: int) -> WordPieces:
        encoding = self.hf(text, truncation=True, max_length=max_length)
        word_ids = encoding.word_ids()
        order = {word: index for index, word in enumerate(sorted(set(word_ids) - {None}))}
        words = []
        for word in order:
            span = encoding.word_to_chars(word)
            words.append(text[span.start : span.end].strip())
        word_of_token = [None if word is None else order[word] for word in word_ids]
        return WordPieces(list(encoding["input_ids"]), word_of_token, words)
