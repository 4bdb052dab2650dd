"""The platform-neutral Router: validates a Request, calls the models, returns a Reply."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from dikkat.bot.i18n import COMMAND_HELP, normalise_language, t
from dikkat.bot.types import ButtonPress, Reply, Request
from dikkat.bot.validation import InvalidInput, parse_sort_input
from dikkat.config import Settings
from dikkat.inference.batcher import BatcherStopped, Overloaded, RequestTimedOut
from dikkat.inference.service import InferenceService

log = logging.getLogger(__name__)

Handler = Callable[[Request, str], Awaitable[Reply]]


class Router:
    """One place for every behaviour of every command; adapters only translate."""

    def __init__(self, service: InferenceService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self._handlers: dict[str, Handler] = {
            "start": self._start,
            "help": self._help,
            "sort": self._sort,
        }

    @property
    def commands(self) -> list[str]:
        """Public command names, in the order /help lists them."""
        return list(self._handlers)

    def menu(self, lang: str) -> list[tuple[str, str]]:
        """(command, one-line description) pairs for a platform's command menu."""
        return [(name, COMMAND_HELP[name][lang]) for name in self.commands]

    async def handle_button(self, press: ButtonPress) -> Reply:
        """Answer a button press (the `data` of a Button this Router created)."""
        lang = normalise_language(press.lang, self.settings.lang)
        return Reply(t("unknown_button", lang))

    async def handle(self, request: Request) -> Reply:
        """Answer one request; never raises for bad input or a busy service."""
        lang = normalise_language(request.lang, self.settings.lang)
        command = request.command.lower()
        handler = self._handlers.get(command)
        if handler is None:
            return Reply(t("unknown_command", lang, command=command[:32]))
        try:
            return await handler(request, lang)
        except InvalidInput as error:
            return Reply(t(error.key, lang))
        except Overloaded:
            return Reply(t("busy", lang))
        except RequestTimedOut:
            return Reply(t("timeout", lang))
        except BatcherStopped:
            return Reply(t("unavailable", lang))
        except Exception:
            log.exception("command /%s failed", command)
            return Reply(t("internal_error", lang))

    async def _start(self, request: Request, lang: str) -> Reply:
        """Greets and points to /help."""
        return Reply(t("start", lang))

    async def _help(self, request: Request, lang: str) -> Reply:
        """Every command with a one-line description and an example."""
        lines = [t("help_header", lang)]
        lines += [f"/{name} — {COMMAND_HELP[name][lang]}" for name in self.commands]
        return Reply("\n".join(lines))

    async def _sort(self, request: Request, lang: str) -> Reply:
        """Sorts six letters over {A, B, C} with the nano-GPT."""
        letters = parse_sort_input(request.args)
        answer = await self.service.sort(letters)
        return Reply(t("sort_result", lang, letters=letters, answer=answer))
