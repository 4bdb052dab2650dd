"""Logging set-up: text or JSON lines on stderr, with every configured secret redacted."""

from __future__ import annotations

import json
import logging
import sys

REDACTED = "*****"


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every non-empty secret (longest first) replaced by *****."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then replaces every configured secret in the whole line by *****.

    Redacting the finished line also covers tracebacks and `extra` fields.
    """

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record), self.secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# alembic: its INFO lines come on every open; the store logs an upgrade in one line itself
QUIET_LOGGERS = (
    *("httpx", "httpcore", "urllib3", "filelock", "matplotlib", "PIL", "aiosqlite"),
    "alembic",
)


def configure_logging(
    level: str = "INFO",
    fmt: str = "text",
    secrets: list[str] | None = None,
    debug_loggers: str = "",
) -> None:
    """Route all logging to stderr in the chosen format, redacting secrets.

    Third-party loggers that print request parameters (aiosqlite logs every SQL statement with
    user text and ids) stay at WARNING even at DEBUG, unless named in `debug_loggers`.
    """
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    opened = {name.strip() for name in debug_loggers.split(",")}
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(root.level if name in opened else max(logging.WARNING, root.level))
