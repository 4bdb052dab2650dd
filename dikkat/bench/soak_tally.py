"""What the soak benchmark counts, and how it tells an answer apart: ok, a polite "try again", or
an error."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dikkat.bench.common import percentiles
from dikkat.bot.i18n import MESSAGES, t
from dikkat.bot.types import Reply

__all__ = ["POLITE", "VOTED", "Tally", "is_message", "judge", "requests_summary"]

# "please try again" answers: a full model queue, a slow request, a database that stayed locked
POLITE = tuple(
    key
    for key in ("busy", "timeout", "unavailable", "store_busy", "database_busy")
    if key in set(MESSAGES)
)
VOTED = ("created", "changed", "unchanged")  # what acknowledges a vote as stored
_MARK = "\x00"


def is_message(text: str, key: str, lang: str, *fields: str) -> bool:
    """Whether `text` is message `key` with any values in its `fields`."""
    pieces = t(key, lang, **dict.fromkeys(fields, _MARK)).split(_MARK)
    if len(pieces) == 1:
        return text == pieces[0]
    at = len(pieces[0]) if text.startswith(pieces[0]) else -1
    for piece in pieces[1:-1]:
        at = -1 if at < 0 else text.find(piece, at)
    return at >= 0 and text.endswith(pieces[-1]) and len(text) >= at + len(pieces[-1])


def judge(command: str, reply: Reply, lang: str) -> str:
    """ok, polite (a "try again"), or error (the internal-error text or a reply without what
    the command must give)."""
    if any(reply.text == t(key, lang) for key in POLITE):
        return "polite"
    if reply.text == t("internal_error", lang):
        return "error"
    if command == "sentiment" and not reply.buttons:
        return "error"
    if command in ("attention", "explain") and reply.image is None:
        return "error"
    return "ok"


@dataclass
class Tally:
    """Everything the run counts."""

    requests: list[tuple[float, str, str, float]] = field(default_factory=list)  # t, cmd, kind, s
    odd_replies: Counter[str] = field(default_factory=Counter)  # error/unanswered, by text
    votes: Counter[str] = field(default_factory=Counter)
    expected: dict[tuple[str, int], str] = field(default_factory=dict)  # (user, prediction)
    checked: set[tuple[str, int]] = field(default_factory=set)  # compared with the database
    missing: list[tuple[str, int]] = field(default_factory=list)
    forgets: int = 0
    retrains: Counter[str] = field(default_factory=Counter)
    notices: int = 0
    activations: list[dict[str, Any]] = field(default_factory=list)
    locks: list[dict[str, Any]] = field(default_factory=list)


def requests_summary(tally: Tally) -> dict[str, Any]:
    """The requests by kind of answer, and per command with their p50 and p99 latency."""
    by_command: dict[str, dict[str, Any]] = {}
    for command in sorted({r[1] for r in tally.requests}):
        rows = [r for r in tally.requests if r[1] == command]
        kinds = Counter(r[2] for r in rows)
        p50, p99 = percentiles([r[3] * 1000 for r in rows if r[2] != "unanswered"])
        by_command[command] = {
            "n": len(rows),
            **{k: kinds[k] for k in ("ok", "polite", "error", "unanswered")},
            "p50_ms": None if p50 is None else round(p50, 1),
            "p99_ms": None if p99 is None else round(p99, 1),
        }
    kinds = Counter(r[2] for r in tally.requests)
    return {
        "total": len(tally.requests),
        **{k: kinds[k] for k in ("ok", "polite", "error", "unanswered")},
        "by_command": by_command,
        "odd_replies": dict(tally.odd_replies.most_common(20)),
    }
