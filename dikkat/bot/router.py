"""The platform-neutral Router: validates a Request, calls the models, returns a Reply."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable

import numpy as np

from dikkat.bot.admin import AdminCommands, Retrainer
from dikkat.bot.attention import AttentionCommands
from dikkat.bot.i18n import (
    ADMIN_COMMANDS,
    COMMAND_HELP,
    LABEL_EMOJI,
    LABEL_NAMES,
    LANGUAGES,
    normalise_language,
    t,
)
from dikkat.bot.ratelimit import RateLimiter
from dikkat.bot.types import Button, ButtonPress, Reply, Request, parse_id, printable
from dikkat.bot.validation import InvalidInput, clean_text, parse_sort_input
from dikkat.config import Settings
from dikkat.inference.batcher import BatcherStopped, Overloaded, RequestTimedOut, last_batch_size
from dikkat.inference.service import InferenceService
from dikkat.storage.store import LABELS, Store

log = logging.getLogger(__name__)

Handler = Callable[[Request, str], Awaitable[Reply]]
Notifier = Callable[[str, Reply], Awaitable[None]]
FEEDBACK_PREFIX = "fb"
UNLIMITED = frozenset({"start", "help", "lang", "forget"})  # and the local console


class _Refused(Exception):
    """The request is not served (rate limit, rights); `key` names the message."""

    def __init__(self, outcome: str, key: str, **values: object) -> None:
        super().__init__(key)
        self.outcome, self.key, self.values = outcome, key, values


class Router:
    """One place for every behaviour of every command; adapters only translate."""

    def __init__(
        self,
        service: InferenceService,
        settings: Settings,
        store: Store,
        *,
        retrainer: Retrainer | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.store = store
        self.retrainer = retrainer
        self.rate_limiter = rate_limiter or RateLimiter(
            per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
        )
        self._admins = settings.admin_ids()
        self._notifiers: dict[str, Notifier] = {}
        self._attention = AttentionCommands(service)
        self._admin = AdminCommands(store, service, retrainer, self.notify)
        self._handlers: dict[str, Handler] = {
            "start": self._start,
            "help": self._help,
            "sentiment": self._sentiment,
            "sort": self._sort,
            "attention": self._attention.attention,
            "explain": self._attention.explain,
            "lang": self._lang,
            "forget": self._forget,
            "retrain": self._admin.retrain,
            "models": self._admin.models,
            "rollback": self._admin.rollback,
            "stats": self._admin.stats,
        }

    @property
    def commands(self) -> list[str]:
        """Every command name, in the order /help lists them (admin commands last)."""
        return list(self._handlers)

    def menu(self, lang: str, *, admin: bool = False) -> list[tuple[str, str]]:
        """(command, one-line description) pairs for a platform's command menu."""
        lang = lang if lang in LANGUAGES else "tr"
        return [
            (name, COMMAND_HELP[name][lang])
            for name in self.commands
            if admin or name not in ADMIN_COMMANDS
        ]

    def is_admin(self, platform: str, user_id: str) -> bool:
        """Admins are configured per platform; the local console is always the operator."""
        return platform == "console" or (platform, user_id) in self._admins

    def set_notifier(self, platform: str, notifier: Notifier) -> None:
        """How to post a message into a chat later (e.g. when a /retrain finishes)."""
        self._notifiers[platform] = notifier

    async def notify(self, platform: str, chat_id: str, reply: Reply) -> None:
        """Post a Reply to a chat outside a request; logged and dropped when impossible."""
        notifier = self._notifiers.get(platform)
        if notifier is None:
            log.info("no notifier for %s; dropping a message", platform)
            return
        try:
            await notifier(chat_id, reply)
        except Exception:
            log.exception("could not notify %s chat", platform)

    async def language(self, platform: str, user_id: str, client_lang: str | None) -> str:
        """The user's /lang choice, else their client's language, else the default."""
        chosen = await self.store.get_language(platform, user_id)
        return chosen or normalise_language(client_lang, self.settings.lang)

    async def handle(self, request: Request) -> Reply:
        """Answer one request; never raises for bad input, a busy service or a bug."""
        started = time.perf_counter()
        command = request.command.lower()
        outcome = "ok"
        try:
            lang = await self.language(request.platform, request.user_id, request.lang)
        except Exception:
            log.exception("language lookup failed")
            lang = normalise_language(request.lang, self.settings.lang)
        try:
            reply = await self._dispatch(request, command, lang)
        except InvalidInput as error:
            outcome, reply = "invalid", Reply(t(error.key, lang))
        except _Refused as refusal:
            outcome, reply = (
                refusal.outcome,
                Reply(t(refusal.key, lang, **refusal.values), private=True),
            )
        except Overloaded:
            outcome, reply = "busy", Reply(t("busy", lang))
        except RequestTimedOut:
            outcome, reply = "timeout", Reply(t("timeout", lang))
        except BatcherStopped:
            outcome, reply = "unavailable", Reply(t("unavailable", lang))
        except Exception:
            log.exception("command /%s failed", command[:32])
            outcome, reply = "error", Reply(t("internal_error", lang), private=True)
        fields = {
            "command": command[:32],
            "platform": request.platform,
            "outcome": outcome,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "batch_size": last_batch_size.get(),
        }
        log.info(
            "handled /%(command)s on %(platform)s: %(outcome)s in %(latency_ms).1f ms, "
            "batch %(batch_size)d",
            fields,
            extra=fields,
        )
        return reply

    async def _dispatch(self, request: Request, command: str, lang: str) -> Reply:
        handler = self._handlers.get(command)
        if handler is None:
            return Reply(t("unknown_command", lang, command=printable(command)[:32]))
        if command in ADMIN_COMMANDS and not self.is_admin(request.platform, request.user_id):
            raise _Refused("forbidden", "admin_only")
        if command not in UNLIMITED and request.platform != "console":
            wait = self.rate_limiter.check(f"{request.platform}:{request.user_id}")
            if wait > 0:
                raise _Refused("rate_limited", "slow_down", seconds=max(1, round(wait)))
        return await handler(request, lang)

    async def handle_button(self, press: ButtonPress) -> Reply:
        """Answer a feedback button press: `fb:<prediction id>:<label>`."""
        lang = await self.language(press.platform, press.user_id, press.lang)
        prefix, _, rest = press.data.partition(":")
        raw_id, _, label = rest.partition(":")
        prediction = parse_id(raw_id)
        if prefix != FEEDBACK_PREFIX or prediction is None or label not in LABELS:
            return Reply(t("unknown_button", lang), private=True)
        try:
            outcome = await self.store.add_feedback(
                prediction,
                press.platform,
                press.user_id,
                label,
                features=await self._remembered_features(prediction),
            )
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                log.exception("feedback could not be stored")
                return Reply(t("internal_error", lang), private=True)
            log.warning("feedback not stored: the database stayed locked (%s)", error)
            return Reply(t("store_busy", lang), private=True)
        except Exception:
            log.exception("feedback could not be stored")
            return Reply(t("internal_error", lang), private=True)
        log.info("feedback on %s: %s", press.platform, outcome)
        name = LABEL_NAMES[label][lang]
        return Reply(t(f"feedback_{outcome}", lang, label=name), private=True)

    async def _remembered_features(self, prediction_id: int) -> tuple[str, np.ndarray] | None:
        """The voted text's features if the service still remembers them (stored with the vote,
        so retraining never re-runs the encoder for it)."""
        try:
            text = await self.store.prediction_text(prediction_id)
        except Exception:
            log.warning("could not read the voted text", exc_info=True)
            return None
        vector = None if text is None else self.service.recent_features(text)
        return None if vector is None else (self.service.feature_key, vector)

    async def _start(self, request: Request, lang: str) -> Reply:
        """Greets and points to /help."""
        return Reply(t("start", lang))

    async def _help(self, request: Request, lang: str) -> Reply:
        """Every command with a one-line description and an example."""
        lines = [t("help_header", lang)]
        lines += [f"/{name} — {text}" for name, text in self.menu(lang)]
        if self.is_admin(request.platform, request.user_id):
            lines += ["", t("help_admin_header", lang)]
            lines += [f"/{name} — {COMMAND_HELP[name][lang]}" for name in sorted(ADMIN_COMMANDS)]
        return Reply("\n".join(lines))

    async def _sentiment(self, request: Request, lang: str) -> Reply:
        """Negative / neutral / positive with a confidence, and feedback buttons."""
        text, cut = clean_text(request.args)
        if not text:
            raise InvalidInput("sentiment_usage")
        result = await self.service.sentiment(text)
        prediction_id = await self.store.log_prediction(
            platform=request.platform,
            user_id=request.user_id,
            chat_id=request.chat_id,
            text=text,
            label=result.label,
            probabilities=result.probabilities,
            head_version=result.head_version,
        )
        lines = [
            t(
                "sentiment_result",
                lang,
                emoji=LABEL_EMOJI[result.label],
                label=LABEL_NAMES[result.label][lang],
                confidence=round(100 * result.probabilities[result.label]),
            ),
            " · ".join(
                f"{LABEL_NAMES[label][lang]} {100 * result.probabilities[label]:.0f}%"
                for label in LABELS
            ),
        ]
        if cut or result.truncated:
            lines.append(t("text_truncated", lang))
        lines.append(t("sentiment_ask_feedback", lang))
        buttons = tuple(
            Button(
                f"{LABEL_EMOJI[label]} {LABEL_NAMES[label][lang]}",
                f"{FEEDBACK_PREFIX}:{prediction_id}:{label}",
            )
            for label in LABELS
        )
        return Reply("\n".join(lines), buttons=buttons)

    async def _sort(self, request: Request, lang: str) -> Reply:
        """Sorts six letters over {A, B, C} with the nano-GPT."""
        letters = parse_sort_input(request.args)
        answer = await self.service.sort(letters)
        return Reply(t("sort_result", lang, letters=letters, answer=answer))

    async def _lang(self, request: Request, lang: str) -> Reply:
        """Sets the user's language: /lang tr or /lang en."""
        choice = request.args.strip().lower()
        if choice not in LANGUAGES:
            return Reply(t("lang_usage", lang))
        await self.store.set_language(request.platform, request.user_id, choice)
        return Reply(t("lang_set", choice))

    async def _forget(self, request: Request, lang: str) -> Reply:
        """Deletes everything stored about the caller."""
        result = await self.store.forget_user(request.platform, request.user_id)
        return Reply(
            t("forget_done", lang, predictions=result.predictions, feedback=result.feedback),
            private=True,
        )
