"""Text helpers shared by the chat adapters: platform limits are counted in UTF-16 units."""

from __future__ import annotations


def utf16_len(text: str) -> int:
    """Length as Telegram and Discord count it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most `limit` UTF-16 units, preferring line breaks."""
    pieces: list[str] = []
    while utf16_len(text) > limit:
        cut, units = 0, 0
        while units + utf16_len(text[cut]) <= limit:
            units += utf16_len(text[cut])
            cut += 1
        newline = text.rfind("\n", 0, cut)
        if newline > cut // 2:
            cut = newline + 1
        pieces.append(text[:cut].rstrip("\n"))
        text = text[cut:]
    if text.strip():
        pieces.append(text)
    return pieces
