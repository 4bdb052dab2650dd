"""Request and Reply: the only things the Router sees and returns."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

_ASCII_ID = re.compile(r"[0-9]{1,18}")


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """`text` without control characters (newlines kept) or bidirectional overrides, so that
    echoing it cannot drive a terminal with escape sequences or reorder what is shown."""
    return "".join(
        ch
        for ch in text
        if ch == "\n" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
    )


def parse_id(text: str) -> int | None:
    """A positive database id written in ASCII digits (at most 18 of them), else None.

    str.isdigit() accepts '²' and other Unicode digits that int() rejects.
    """
    text = text.strip()
    if not _ASCII_ID.fullmatch(text):
        return None
    value = int(text)
    return value if value > 0 else None


@dataclass(frozen=True)
class Request:
    """One command from any platform, already stripped of platform objects."""

    platform: str
    user_id: str
    chat_id: str
    command: str
    args: str = ""
    lang: str | None = None


@dataclass(frozen=True)
class Button:
    """A button under a reply; `data` comes back in a ButtonPress when it is pressed."""

    label: str
    data: str


@dataclass(frozen=True)
class Reply:
    """What the bot answers: text, an optional PNG, optional buttons."""

    text: str
    image: bytes | None = None
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    private: bool = False
    image_name: str = "dikkat.png"


@dataclass(frozen=True)
class ButtonPress:
    """A button press coming back from a platform."""

    platform: str
    user_id: str
    chat_id: str
    data: str
    lang: str | None = None


Handler = Callable[[Request, str], Awaitable[Reply]]
"""A command: answers a Request in the given language."""
