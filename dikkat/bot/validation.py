"""Parsing and checking of command arguments."""

from __future__ import annotations

import re
import unicodedata

from dikkat.inference.sort_spec import ALPHABET, SEQUENCE_LENGTH

_IGNORED_IN_SORT = re.compile(r"[\s,]+")
MAX_TEXT_CHARS = 2000
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")


class InvalidInput(ValueError):
    """The arguments do not fit the command; `key` names the usage message to show."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_sort_input(raw: str) -> str:
    """'c b a, b b c' -> 'CBABBC'; anything but six of A/B/C raises InvalidInput."""
    letters = _IGNORED_IN_SORT.sub("", raw).upper()
    if len(letters) != SEQUENCE_LENGTH or any(ch not in ALPHABET for ch in letters):
        raise InvalidInput("sort_usage")
    return letters


def split_command(text: str) -> tuple[str | None, str, str | None]:
    """'/sort@dikkat_bot CBA' -> ('sort', 'CBA', 'dikkat_bot'); plain text -> (None, text, None)."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None, stripped, None
    head, _, args = stripped[1:].partition(" ")
    command, _, addressee = head.partition("@")
    return command.lower(), args.strip(), addressee or None


def clean_text(raw: str, max_chars: int = MAX_TEXT_CHARS) -> tuple[str, bool]:
    """Drop control, zero-width and bidi-control characters, squeeze spaces, cap the length.

    Returns the text and whether it was cut. Emoji and right-to-left letters stay.
    """
    text = _INVISIBLE.sub("", raw)
    text = "".join(ch if unicodedata.category(ch) != "Cc" else " " for ch in text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True
    return text, False
