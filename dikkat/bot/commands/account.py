"""/start, /help, /lang and /forget: what a user needs to know about and to control the bot."""

from __future__ import annotations

from collections.abc import Callable

from dikkat.bot.commands.registry import COMMAND_HELP, COMMANDS
from dikkat.bot.i18n import t
from dikkat.bot.types import Reply, Request
from dikkat.i18n import LANGUAGES
from dikkat.storage.store import Store

Menu = Callable[[str], list[tuple[str, str]]]
IsAdmin = Callable[[str, str], bool]


class AccountCommands:
    """Greeting, the command list, the language choice and deleting one's data."""

    def __init__(self, store: Store, menu: Menu, is_admin: IsAdmin) -> None:
        self.store = store
        self.menu = menu
        self.is_admin = is_admin

    async def start(self, request: Request, lang: str) -> Reply:
        """Greets and points to /help."""
        return Reply(t("start", lang))

    async def help(self, request: Request, lang: str) -> Reply:
        """Every command with a one-line description and an example."""
        lines = [t("help_header", lang)]
        lines += [f"/{name} — {text}" for name, text in self.menu(lang)]
        if self.is_admin(request.platform, request.user_id):
            lines += ["", t("help_admin_header", lang)]
            admin = sorted(command.name for command in COMMANDS if command.admin)
            lines += [f"/{name} — {COMMAND_HELP.text(name, lang)}" for name in admin]
        return Reply("\n".join(lines))

    async def lang(self, request: Request, lang: str) -> Reply:
        """Sets the user's language: /lang tr or /lang en."""
        choice = request.args.strip().lower()
        if choice not in LANGUAGES:
            return Reply(t("lang_usage", lang))
        await self.store.set_language(request.platform, request.user_id, choice)
        return Reply(t("lang_set", choice))

    async def forget(self, request: Request, lang: str) -> Reply:
        """Deletes everything stored about the caller."""
        result = await self.store.forget_user(request.platform, request.user_id)
        return Reply(
            t("forget_done", lang, predictions=result.predictions, feedback=result.feedback),
            private=True,
        )
