"""The WARNING+ log records, tracebacks above all, written while the soak benchmark runs."""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["LogCapture"]


class LogCapture(logging.Handler):
    """WARNING+ records of every logger, and exceptions that end a thread, grouped."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._hook = threading.excepthook

    def emit(self, record: logging.LogRecord) -> None:
        has_trace = bool(record.exc_info and record.exc_info[0] is not None)
        key = (record.levelname, record.name, str(record.msg)[:160])
        group = self.groups.setdefault(
            key,
            {
                "level": key[0],
                "logger": key[1],
                "message": key[2],
                "count": 0,
                "tracebacks": 0,
                "example": None,
            },
        )
        group["count"] += 1
        group["tracebacks"] += has_trace
        if group["example"] is None:
            text = record.getMessage()
            if has_trace:
                text += "\n" + logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            group["example"] = text[-3000:]

    def _thread_died(self, args: threading.ExceptHookArgs) -> None:
        logging.getLogger("threading").error(
            "thread %s died",
            getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        )

    def __enter__(self) -> LogCapture:
        logging.getLogger().addHandler(self)
        threading.excepthook = self._thread_died
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
        threading.excepthook = self._hook

    def summary(self) -> dict[str, Any]:
        groups = sorted(self.groups.values(), key=lambda g: -g["count"])
        return {
            "records": sum(g["count"] for g in groups),
            "tracebacks": sum(g["tracebacks"] for g in groups),
            "groups": groups,
        }
