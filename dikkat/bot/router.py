"""The platform-neutral Router: picks the language, checks rights and limits, dispatches a
Request to its command (dikkat.bot.commands) and turns failures into polite replies."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from dikkat.bot.commands.account import AccountCommands
from dikkat.bot.commands.admin import AdminCommands, Retrainer
from dikkat.bot.commands.attention import AttentionCommands
from dikkat.bot.commands.embed import EmbedCommands
from dikkat.bot.commands.registry import BY_NAME, COMMAND_HELP, COMMANDS
from dikkat.bot.commands.sentiment import SentimentCommands
from dikkat.bot.commands.sort import SortCommands
from dikkat.bot.i18n import store_error_key, t
from dikkat.bot.ratelimit import RateLimiter
from dikkat.bot.types import ButtonPress, Handler, Reply, Request, printable
from dikkat.bot.validation import InvalidInput
from dikkat.config import Settings
from dikkat.i18n import normalise_language
from dikkat.inference.backend import InferenceBackend
from dikkat.inference.batcher import BatcherStopped, Overloaded, RequestTimedOut, last_batch_size
from dikkat.storage.errors import StoreBusy, StoreError
from dikkat.storage.store import Store

log = logging.getLogger(__name__)

Notifier = Callable[[str, Reply], Awaitable[None]]


class _Refused(Exception):
    """The request is not served (rate limit, rights); `key` names the message."""

    def __init__(self, outcome: str, key: str, **values: object) -> None:
        super().__init__(key)
        self.outcome, self.key, self.values = outcome, key, values


class Router:
    """One entry for every command of every platform; adapters only translate."""

    def __init__(
        self,
        service: InferenceBackend,
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
        self.rate_limiter = rate_limiter or RateLimiter.for_settings(settings)
        self._admins = settings.admin_ids()
        self._notifiers: dict[str, Notifier] = {}
        account = AccountCommands(store, self.menu, self.is_admin)
        self._sentiment = SentimentCommands(service, store)
        groups = {
            "account": account,
            "sentiment": self._sentiment,
            "sort": SortCommands(service),
            "attention": AttentionCommands(service),
            "embed": EmbedCommands(service),
            "admin": AdminCommands(store, service, retrainer, self.notify),
        }
        self._handlers: dict[str, Handler] = {
            command.name: getattr(groups[command.group], command.name) for command in COMMANDS
        }

    @property
    def commands(self) -> list[str]:
        """Every command name, in the order /help lists them (admin commands last)."""
        return list(self._handlers)

    def menu(self, lang: str, *, admin: bool = False) -> list[tuple[str, str]]:
        """(command, one-line description) pairs for a platform's command menu."""
        return [
            (command.name, COMMAND_HELP.text(command.name, lang))
            for command in COMMANDS
            if admin or not command.admin
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
        lang = await self._language_or_client(request.platform, request.user_id, request.lang)
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
        except StoreError as error:
            log.log(
                logging.WARNING if isinstance(error, StoreBusy) else logging.ERROR,
                "command /%s: the database failed: %s (%s)",
                command[:32],
                type(error).__name__,
                error,
            )
            outcome, reply = "store", Reply(t(store_error_key(error), lang), private=True)
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
        spec = BY_NAME.get(command)
        if spec is None:
            return Reply(t("unknown_command", lang, command=printable(command)[:32]))
        if spec.admin and not self.is_admin(request.platform, request.user_id):
            raise _Refused("forbidden", "admin_only")
        if spec.limited and request.platform != "console":
            wait = self.rate_limiter.check(f"{request.platform}:{request.user_id}")
            if wait > 0:
                raise _Refused("rate_limited", "slow_down", seconds=max(1, round(wait)))
        return await self._handlers[command](request, lang)

    async def handle_button(self, press: ButtonPress) -> Reply:
        """Answer a feedback button press: `fb:<prediction id>:<label>`."""
        lang = await self._language_or_client(press.platform, press.user_id, press.lang)
        return await self._sentiment.feedback(press, lang)

    async def _language_or_client(self, platform: str, user_id: str, client: str | None) -> str:
        """`language`, or the client's language when the database cannot say."""
        try:
            return await self.language(platform, user_id, client)
        except StoreError as error:
            log.warning("language lookup failed: %s (%s)", type(error).__name__, error)
        except Exception:
            log.exception("language lookup failed")
        return normalise_language(client, self.settings.lang)
