"""Telegram updates in, Router Replies out: the handlers of a python-telegram-bot Application."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import traceback
from typing import TYPE_CHECKING

from telegram import (
    Bot,
    BotCommand,
    BotCommandScope,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from dikkat.bot.i18n import t
from dikkat.bot.text import split_text, utf16_len
from dikkat.bot.types import Button, ButtonPress, Reply, Request
from dikkat.config import Settings
from dikkat.i18n import normalise_language

if TYPE_CHECKING:
    from dikkat.bot.router import Router

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_TOAST = 200
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def keyboard(buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
    """Reply buttons as one row of an inline keyboard; `data` goes into callback_data unchanged."""
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in buttons]]
    )


def parse_command(message: Message) -> tuple[str, str | None, str]:
    """'/Sort@Dikkat_Bot CBA' -> ('sort', 'Dikkat_Bot', 'CBA'); args keep their line breaks."""
    text = message.text or ""
    length = message.entities[0].length  # handlers only see a bot_command at offset 0
    command, _, addressee = text[1:length].partition("@")
    return command.lower(), addressee or None, text[length:].strip()


class TelegramFrontend:
    """The Application and its handlers: updates become Requests, Replies become messages."""

    def __init__(
        self, router: Router, settings: Settings, application: Application, toast_wait_s: float
    ) -> None:
        self.router = router
        self.settings = settings
        self.application = application
        self.toast_wait_s = toast_wait_s
        self._told: dict[int, list[bool]] = {}  # update_id -> the error handler's outcomes

    def register(self) -> None:
        """Add every handler, most specific first."""
        app = self.application
        messages = filters.UpdateType.MESSAGES
        for name in self.router.commands:
            app.add_handler(CommandHandler(name, self.on_command, filters=messages))
        app.add_handler(MessageHandler(filters.COMMAND & messages, self.on_other_command))
        app.add_handler(
            MessageHandler(
                filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE & messages,
                self.on_text,
            )
        )
        app.add_handler(
            MessageHandler(
                ~filters.TEXT
                & ~filters.StatusUpdate.ALL
                & filters.ChatType.PRIVATE
                & filters.UpdateType.MESSAGE,
                self.on_non_text,
            )
        )
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_error_handler(self.on_error)

    async def process(self, update: Update) -> bool:
        """Run the handlers on one update: False when it failed and the user was not told."""
        outcomes = self._told[update.update_id] = []
        try:
            await self.application.process_update(update)
        except Exception as error:
            log.warning("Telegram update %d failed: %r", update.update_id, error)
            return False
        finally:
            del self._told[update.update_id]
        return all(outcomes)

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A known command: /sort CBABBC, /sort@dikkat_bot CBABBC (also when edited)."""
        command, _, args = parse_command(update.effective_message)
        await self._answer(update, command, args)

    async def on_other_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any other command: ours in a private chat, in a group only when addressed to us."""
        command, addressee, args = parse_command(update.effective_message)
        if update.effective_chat.type != ChatType.PRIVATE:
            if addressee is None or addressee.lower() != context.bot.username.lower():
                return
        await self._answer(update, command, args)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text in a private chat asks for its sentiment."""
        await self._answer(update, "sentiment", update.effective_message.text or "")

    async def on_non_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A sticker, photo, voice note... in a private chat: answer with /help."""
        await self._answer(update, "help", "")

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A feedback button: the Router's answer as a toast, or answer at once if it is slow."""
        query = update.callback_query
        chat = update.effective_chat
        press = ButtonPress(
            PLATFORM,
            str(query.from_user.id),
            str(chat.id if chat else query.from_user.id),
            query.data or "",
            query.from_user.language_code,
        )
        pending = asyncio.ensure_future(self.router.handle_button(press))
        try:
            done, _ = await asyncio.wait({pending}, timeout=self.toast_wait_s)
            if not done:
                await query.answer()  # stop the client's spinner; the answer follows as a message
            reply = await pending
        finally:
            pending.cancel()
        toast = bool(done) and reply.image is None and 0 < len(reply.text) <= MAX_TOAST
        if done:
            await query.answer(reply.text if toast else None)
        message = query.message if isinstance(query.message, Message) else None
        markup = keyboard(reply.buttons)
        if message is not None and markup is not None and markup != message.reply_markup:
            await query.edit_message_reply_markup(reply_markup=markup)
        if not toast and chat is not None:
            reply_to = message.message_id if message is not None else None
            await self.send(context.bot, chat.id, dataclasses.replace(reply, buttons=()), reply_to)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure (token redacted) and tell the user something went wrong."""
        error = context.error
        details = "".join(traceback.format_exception(error)) if error else "unknown error"
        token = self.settings.telegram_token
        if token is not None and token.get_secret_value():
            details = details.replace(token.get_secret_value(), "*****")
        log.error("handling a Telegram update failed:\n%s", details)
        if not isinstance(update, Update):
            return
        told = await self._tell_failure(update, context.bot)
        if update.update_id in self._told:  # a webhook update: untold means "send it again"
            self._told[update.update_id].append(told)

    async def _tell_failure(self, update: Update, bot: Bot) -> bool:
        """Send the polite "something went wrong"; whether it reached the user."""
        if update.effective_chat is None:
            return False
        user = update.effective_user
        lang = normalise_language(user.language_code if user else None, self.settings.lang)
        try:
            if update.callback_query is not None:
                with contextlib.suppress(TelegramError):  # it may have been answered already
                    await update.callback_query.answer()
            await bot.send_message(update.effective_chat.id, t("internal_error", lang))
        except TelegramError as failure:
            log.warning("could not tell the user about the failure: %s", type(failure).__name__)
            return False
        return True

    async def _answer(self, update: Update, command: str, args: str) -> None:
        """Route one Request; answer in the chat, quoting the message in groups and on edits."""
        message = update.effective_message
        user = update.effective_user
        request = Request(
            PLATFORM,
            str(user.id if user else message.chat_id),
            str(message.chat_id),
            command,
            args,
            user.language_code if user else None,
        )
        reply = await self.router.handle(request)
        quote = update.edited_message is not None or message.chat.type != ChatType.PRIVATE
        await self.send(
            message.get_bot(), message.chat_id, reply, message.message_id if quote else None
        )

    async def send(
        self, bot: Bot, chat_id: int | str, reply: Reply, reply_to: int | None = None
    ) -> None:
        """Text (split at 4096), a photo (caption up to 1024) and an inline keyboard."""
        quote = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        markup = keyboard(reply.buttons)
        pieces = split_text(reply.text, MAX_TEXT)
        if reply.image is not None:
            caption = reply.text if utf16_len(reply.text) <= MAX_CAPTION else None
            await bot.send_photo(
                chat_id,
                photo=reply.image,
                filename=reply.image_name,
                caption=caption,
                reply_markup=markup if caption is not None or not pieces else None,
                reply_parameters=quote,
            )
            if caption is not None:
                return
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            await bot.send_message(
                chat_id, piece, reply_markup=markup if last else None, reply_parameters=quote
            )

    async def notify(self, chat_id: str, reply: Reply) -> None:
        """Post a Reply into a chat outside any update (the Router's notifier)."""
        target = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        await self.send(self.application.bot, target, reply)

    async def set_commands(self, app: Application) -> None:
        """Command menus (post_init): tr, en and default; admins also see the admin commands."""
        admins = [int(u) for p, u in self.settings.admin_ids() if p == PLATFORM and u.isdigit()]
        scopes: list[tuple[BotCommandScope | None, bool]] = [(None, False)]
        scopes += [(BotCommandScopeChat(admin), True) for admin in admins]
        for scope, admin in scopes:
            for language_code, lang in {None: self.settings.lang, "tr": "tr", "en": "en"}.items():
                menu = self.router.menu(lang, admin=admin)
                commands = [BotCommand(name, text[:256]) for name, text in menu]
                try:
                    await app.bot.set_my_commands(
                        commands, scope=scope, language_code=language_code
                    )
                except TelegramError as error:
                    log.warning("set_my_commands(%s, %s) failed: %s", scope, language_code, error)


def build_telegram(
    router: Router,
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    toast_wait_s: float = 1.0,
) -> TelegramFrontend:
    """The frontend and its Application wired to the Router; `request`s replace the network
    (tests). A button press answered within `toast_wait_s` shows the reply as a toast."""
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise ValueError("DIKKAT_TELEGRAM_TOKEN is not set")
    secret = settings.telegram_webhook_secret
    if secret is not None and not _SECRET_TOKEN.fullmatch(secret.get_secret_value()):
        raise ValueError("DIKKAT_TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z, a-z, 0-9, _ and -")
    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(True)
    )
    if request is not None:
        builder = builder.request(request)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    application = builder.build()
    frontend = TelegramFrontend(router, settings, application, toast_wait_s)
    application.post_init = frontend.set_commands
    frontend.register()
    router.set_notifier(PLATFORM, frontend.notify)
    return frontend
