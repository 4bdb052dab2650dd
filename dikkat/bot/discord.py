"""The Discord frontend: discord.py 2 slash commands and persistent feedback buttons."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation, TranslationContextTypes

from dikkat.aio import InFlight
from dikkat.bot.commands.registry import ARGUMENT_HELP, BY_NAME
from dikkat.bot.i18n import t
from dikkat.bot.text import split_text
from dikkat.bot.types import Button, ButtonPress, Reply, Request
from dikkat.config import Settings
from dikkat.i18n import normalise_language

if TYPE_CHECKING:
    from dikkat.bot.router import Router

log = logging.getLogger(__name__)

PLATFORM = "discord"
MAX_CONTENT = 2000
MAX_DESCRIPTION = 100
CUSTOM_ID_PREFIX = "dikkat:"
DISCORD_API_URL = discord.http.Route.BASE  # discord.py's own, https://discord.com/api/v10
# What discord.py raises for an interaction without an option declared required here (or with
# one of another type): commands synced by an older version, a client with a stale list.
OPTION_MISMATCH = (app_commands.CommandSignatureMismatch, app_commands.TransformerError)


def shorten(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Fit a description into Discord's limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_PREFIX + r"(?P<data>.{1,93})"
):
    """A button whose custom_id carries the Router's Button.data, so it works after a restart."""

    def __init__(self, data: str, label: str = "…") -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:80],
                style=discord.ButtonStyle.secondary,
                custom_id=CUSTOM_ID_PREFIX + data,
            )
        )
        self.data = data

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> FeedbackButton:
        return cls(match["data"], getattr(item, "label", None) or "…")

    async def callback(self, interaction: discord.Interaction) -> None:
        """Let the Router record the press; thank the presser ephemerally."""
        client = interaction.client
        if isinstance(client, DikkatDiscord):
            await client.on_button(interaction, self.data)


def feedback_view(buttons: tuple[Button, ...]) -> discord.ui.View | None:
    """A persistent View with one FeedbackButton per Reply button."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(FeedbackButton(button.data, button.label))
    return view


class MenuTranslator(app_commands.Translator):
    """Turkish command and parameter descriptions (names stay the same in every language)."""

    def __init__(self, router: Router) -> None:
        self.turkish = dict(router.menu("tr", admin=True))

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: TranslationContextTypes,
    ) -> str | None:
        if locale is not discord.Locale.turkish:
            return None
        if context.location is TranslationContextLocation.command_description:
            description = self.turkish.get(context.data.name)
            return shorten(description) if description else None
        if context.location is TranslationContextLocation.parameter_description:
            name = context.data.command.name
            return ARGUMENT_HELP.text(name, "tr") if name in ARGUMENT_HELP else None
        return None


def request_lang(interaction: discord.Interaction) -> str:
    """The user's client locale, e.g. 'tr' or 'en-US' (the Router normalises it)."""
    return interaction.locale.value


def use_api_url(url: str | None) -> None:
    """Send discord.py's REST calls, interaction responses included, to `url` (a proxy, a test
    double) or, for None, to Discord. discord.py keeps the base on its Route class, so it holds
    for every client of the process; the gateway is the one the API's /gateway/bot names."""
    discord.http.Route.BASE = url.rstrip("/") if url else DISCORD_API_URL


class DikkatDiscord(discord.Client):
    """A Discord client whose slash commands and buttons all go through the Router."""

    def __init__(
        self,
        router: Router,
        settings: Settings,
        *,
        defer_after_s: float = 2.0,
        **client_options: Any,
    ) -> None:
        super().__init__(intents=discord.Intents.default(), **client_options)
        self.router = router
        self.settings = settings
        self.defer_after_s = defer_after_s
        use_api_url(settings.discord_api_url)
        self.tree = app_commands.CommandTree(self)
        self.tree.error(self.on_command_error)
        self._answering = InFlight()
        everyone = {name for name, _ in router.menu("en")}
        for name, description in router.menu("en", admin=True):
            command = self._slash_command(name, description)
            if name not in everyone:  # listed for admins only; the Router still checks rights
                command = app_commands.default_permissions(administrator=True)(command)
            self.tree.add_command(command)
        router.set_notifier(PLATFORM, self.notify)

    def _slash_command(self, name: str, description: str) -> app_commands.Command[Any, ..., None]:
        """A slash command named like the Router's command, with at most one `text` parameter."""
        argument = BY_NAME[name].argument
        if argument is None:

            async def callback(interaction: discord.Interaction) -> None:
                await self.answer(interaction, name, "")

        elif argument.required:

            async def callback(interaction: discord.Interaction, text: str) -> None:
                await self.answer(interaction, name, text)

        else:

            async def callback(interaction: discord.Interaction, text: str | None = None) -> None:
                await self.answer(interaction, name, text or "")

        command = app_commands.Command(
            name=name, description=shorten(description), callback=callback
        )
        if argument is not None:
            command = app_commands.describe(
                text=app_commands.locale_str(ARGUMENT_HELP.text(name, "en"))
            )(command)
        return command

    @property
    def syncs_commands(self) -> bool:
        """Whether this process syncs the slash commands: exactly one does, the one that runs
        shard 0 (every process when not sharded runs shard 0)."""
        shard_ids = self.settings.shard_ids()
        return shard_ids is None or 0 in shard_ids

    async def setup_hook(self) -> None:
        """Register the persistent buttons and sync the slash commands (from one process)."""
        self.add_dynamic_items(FeedbackButton)
        await self.tree.set_translator(MenuTranslator(self.router))
        if self.syncs_commands:
            await self.sync_commands()

    async def sync_commands(self) -> None:
        """Sync to DIKKAT_DISCORD_GUILD_ID (instant, for development) or globally."""
        guild_id = self.settings.discord_guild_id
        try:
            if guild_id:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
            else:
                synced = await self.tree.sync()
        except discord.HTTPException as error:
            log.error("syncing the Discord commands failed: %s", error)
            return
        log.info("synced %d Discord commands (%s)", len(synced), guild_id or "global")

    @property
    def draining(self) -> bool:
        """True once a stop began: new interactions are told to try again shortly."""
        return self._answering.draining

    async def drain(self, timeout: float) -> int:
        """Stop taking new work (an interaction that comes now is told to try again shortly)
        and wait until every answer in flight is delivered, at most `timeout` seconds; the
        number still in flight then."""
        if self._answering.count:
            log.info("Discord: finishing %d answer(s) in flight", self._answering.count)
        return await self._answering.drain(timeout)

    async def _refused_while_draining(self, interaction: discord.Interaction) -> bool:
        """During a stop, answer a new interaction with "restarting, try again" at once."""
        if not self.draining:
            return False
        lang = normalise_language(request_lang(interaction), self.settings.lang)
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.send_message(t("restarting", lang), ephemeral=True)
        return True

    async def answer(self, interaction: discord.Interaction, command: str, args: str) -> None:
        """Route a slash command; defer when the Router needs longer than `defer_after_s`."""
        request = Request(
            PLATFORM,
            str(interaction.user.id),
            str(interaction.channel_id or interaction.user.id),
            command,
            args,
            request_lang(interaction),
        )
        private = BY_NAME[command].private  # for a deferred answer; a fast one: Reply.private
        if await self._refused_while_draining(interaction):
            return

        async def thinking() -> None:
            await interaction.response.defer(thinking=True, ephemeral=private)

        with self._answering.track():
            reply, deferred = await self._routed(self.router.handle(request), thinking)
            await send_reply(interaction, reply, private if deferred else None)

    async def _routed(
        self, work: Awaitable[Reply], defer: Callable[[], Awaitable[object]]
    ) -> tuple[Reply, bool]:
        """The Router's Reply and whether `defer` ran: Discord drops an interaction that gets
        no response within 3 s, so one whose answer takes longer than `defer_after_s` (a slow
        model, a write-locked database) is deferred first and answered when the Reply comes."""
        pending = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({pending}, timeout=self.defer_after_s)
            if not done:
                await defer()
            return await pending, not done
        finally:
            pending.cancel()

    async def on_button(self, interaction: discord.Interaction, data: str) -> None:
        """A feedback button: route the press, answer ephemerally, update the buttons if asked."""
        press = ButtonPress(
            PLATFORM,
            str(interaction.user.id),
            str(interaction.channel_id or interaction.user.id),
            data,
            request_lang(interaction),
        )
        if await self._refused_while_draining(interaction):
            return
        with self._answering.track():
            try:
                reply, deferred = await self._routed(
                    self.router.handle_button(press), interaction.response.defer
                )  # deferred: nothing shows until the answer below
                view = feedback_view(reply.buttons)
                if view is not None and deferred:
                    await interaction.edit_original_response(view=view)  # the buttons' message
                elif view is not None:
                    await interaction.response.edit_message(view=view)
                if interaction.response.is_done():
                    await interaction.followup.send(reply.text, ephemeral=True)
                else:
                    await interaction.response.send_message(reply.text, ephemeral=True)
            except Exception as error:
                await self.on_command_error(interaction, error)

    async def notify(self, chat_id: str, reply: Reply) -> None:
        """Post a Reply into a channel outside any interaction (the Router's notifier)."""
        channel = self.get_partial_messageable(int(chat_id))
        for message in outgoing(reply):
            message.pop("ephemeral")
            await channel.send(**message)

    async def on_command_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """A command whose option is missing gets the Router's usage text, as when the argument
        is left out elsewhere; any other failure is logged and the user told, ephemerally, that
        something went wrong."""
        command = interaction.command
        if (
            isinstance(error, OPTION_MISMATCH)
            and isinstance(command, app_commands.Command)
            and command.name in ARGUMENT_HELP
        ):
            log.warning("Discord sent /%s without its option (%s)", command.name, error)
            await self.answer(interaction, command.name, "")
            return
        log.error("answering a Discord interaction failed", exc_info=error)
        lang = normalise_language(request_lang(interaction), self.settings.lang)
        try:
            if interaction.response.is_done():
                await interaction.followup.send(t("internal_error", lang), ephemeral=True)
            else:
                await interaction.response.send_message(t("internal_error", lang), ephemeral=True)
        except discord.HTTPException as failure:
            log.warning("could not tell the user about the failure: %s", failure)


def outgoing(reply: Reply) -> list[dict[str, Any]]:
    """The send() arguments of a Reply: text split at 2000, file first, buttons last."""
    pieces = split_text(reply.text, MAX_CONTENT) or ["…"]
    messages: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        message: dict[str, Any] = {"content": piece, "ephemeral": reply.private}
        if index == 0 and reply.image is not None:
            message["file"] = discord.File(io.BytesIO(reply.image), filename=reply.image_name)
        view = feedback_view(reply.buttons) if index == len(pieces) - 1 else None
        if view is not None:
            message["view"] = view
        messages.append(message)
    return messages


async def send_reply(
    interaction: discord.Interaction, reply: Reply, deferred_private: bool | None = None
) -> None:
    """Text (split at 2000), the image as an attachment, buttons as a persistent View."""
    if deferred_private is False and reply.private:
        await interaction.delete_original_response()  # a public "thinking…" cannot turn private
    for message in outgoing(reply):
        if interaction.response.is_done():
            await interaction.followup.send(**message)
        else:
            await interaction.response.send_message(**message)


class ShardedDikkatDiscord(DikkatDiscord, discord.AutoShardedClient):
    """The same client over several gateway shards (DIKKAT_DISCORD_SHARD_IDS of _SHARD_COUNT)."""


def build_discord_client(router: Router, settings: Settings) -> DikkatDiscord:
    """A client with one slash command per Router command (not logged in yet); sharded when
    DIKKAT_DISCORD_SHARD_IDS is set (Discord wants a shard per 2,500 servers)."""
    shard_ids = settings.shard_ids()
    if shard_ids is None:
        return DikkatDiscord(router, settings)
    return ShardedDikkatDiscord(
        router, settings, shard_ids=shard_ids, shard_count=settings.discord_shard_count
    )


async def stop_discord(client: DikkatDiscord, drain_s: float) -> None:
    """Take no new work, deliver the answers in flight (at most `drain_s`), then close the
    gateway and the HTTP session."""
    left = await client.drain(drain_s)
    if left:
        log.warning("Discord: %d answer(s) still in flight after %.0f s; closing", left, drain_s)
    await client.close()


async def run_discord(
    client: DikkatDiscord, token: str, stop_event: asyncio.Event, drain_s: float
) -> None:
    """Serve Discord until `stop_event` is set, then stop gracefully; login errors propagate."""
    async with client:
        runner = asyncio.create_task(client.start(token), name="discord-client")
        stopper = asyncio.create_task(stop_event.wait(), name="discord-stop")
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            await stop_discord(client, drain_s)
            if not runner.done():
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
