"""The one translation mechanism: supported languages, language normalisation, message catalogs.

Every text people read (bot replies, figure labels, captions, command descriptions) lives in a
`Catalog` beside the code that uses it and is looked up with `catalog.text(key, lang, **fields)`.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping

LANGUAGES = ("tr", "en")
DEFAULT_LANGUAGE = "tr"  # when nothing is known about the reader
OTHER_LANGUAGE = "en"  # for a known language that is not supported


def normalise_language(code: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """Map a client language code such as 'en-US', 'tr_TR' or 'de' to a supported language."""
    if code:
        base = code.strip().lower().replace("_", "-").split("-")[0]
        return base if base in LANGUAGES else OTHER_LANGUAGE
    return default


def fields(template: str) -> frozenset[str]:
    """The names of the `{fields}` a template is formatted with."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


class Catalog(Mapping[str, Mapping[str, str]]):
    """Messages by key, each in every language: {"key": {"tr": "...", "en": "..."}}."""

    def __init__(self, entries: Mapping[str, Mapping[str, str]]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, key: str) -> Mapping[str, str]:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def text(self, key: str, lang: str | None, **values: object) -> str:
        """The message `key` in `lang` (normalised), formatted with `values`."""
        return self._entries[key][normalise_language(lang)].format(**values)

    def problems(self) -> list[str]:
        """What is wrong: a key missing a language, or languages asking for different fields."""
        found = []
        for key, variants in self._entries.items():
            missing = [lang for lang in LANGUAGES if lang not in variants]
            if missing:
                found.append(f"{key}: no {', '.join(missing)}")
                continue
            names = {lang: fields(variants[lang]) for lang in LANGUAGES}
            if len(set(names.values())) > 1:
                found.append(f"{key}: fields differ {names}")
        return found
