"""The Telegram frontend: a python-telegram-bot v22 Application around the Router."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

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
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_TOAST = 200
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
UPDATES_KEEP_S = 2 * 24 * 3600.0  # Telegram keeps an undelivered update for 24 hours
PRUNE_EVERY_S = 3600.0
# Set by the webhook receiver around one update's processing: the error handler appends
# whether it could tell the user (True) or not (False).
_FAILURES: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "dikkat_telegram_failures", default=None
)


class UpdateLedger(Protocol):
    """What the webhook receiver needs of the Store to process each update once."""

    async def record_telegram_update(self, update_id: int) -> bool: ...
    async def telegram_update_done(self, update_id: int) -> bool: ...
    async def finish_telegram_update(self, update_id: int) -> None: ...
    async def release_telegram_update(self, update_id: int) -> None: ...
    async def prune_telegram_updates(self, older_than_s: float) -> int: ...


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
    """Handlers that turn updates into Requests and Replies into Telegram messages."""

    def __init__(self, router: Router, settings: Settings, *, toast_wait_s: float = 1.0) -> None:
        self.router = router
        self.settings = settings
        self.toast_wait_s = toast_wait_s

    def register(self, app: Application) -> None:
        """Add every handler to `app`, most specific first."""
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
        told = False
        try:
            if not isinstance(update, Update) or update.effective_chat is None:
                return
            user = update.effective_user
            lang = normalise_language(user.language_code if user else None, self.settings.lang)
            try:
                if update.callback_query is not None:
                    with contextlib.suppress(TelegramError):  # it may have been answered already
                        await update.callback_query.answer()
                await context.bot.send_message(update.effective_chat.id, t("internal_error", lang))
                told = True
            except TelegramError as failure:
                log.warning("could not tell the user about the failure: %s", type(failure).__name__)
        finally:
            failures = _FAILURES.get()
            if failures is not None:  # a webhook update: untold means "send it again"
                failures.append(told)

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

    async def notify(self, app: Application, chat_id: str, reply: Reply) -> None:
        """Post a Reply into a chat outside any update (the Router's notifier)."""
        await self.send(app.bot, int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id, reply)

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


def build_telegram_application(
    router: Router,
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    toast_wait_s: float = 1.0,
) -> Application:
    """An Application wired to the Router; `request`s replace the network (tests).

    A button press answered within `toast_wait_s` shows the Router's reply as a toast.
    """
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise ValueError("DIKKAT_TELEGRAM_TOKEN is not set")
    secret = settings.telegram_webhook_secret
    if secret is not None and not _SECRET_TOKEN.fullmatch(secret.get_secret_value()):
        raise ValueError("DIKKAT_TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z, a-z, 0-9, _ and -")
    frontend = TelegramFrontend(router, settings, toast_wait_s=toast_wait_s)
    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(True)
        .post_init(frontend.set_commands)
    )
    if request is not None:
        builder = builder.request(request)
    if get_updates_request is not None:
        builder = builder.get_updates_request(get_updates_request)
    app = builder.build()
    frontend.register(app)
    router.set_notifier(PLATFORM, functools.partial(frontend.notify, app))
    return app


def webhook_secret(settings: Settings) -> str:
    """The configured webhook secret, else one derived from the token (stable across restarts)."""
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    assert settings.telegram_token is not None
    token = settings.telegram_token.get_secret_value().encode()
    return hashlib.sha256(b"dikkat-webhook:" + token).hexdigest()


async def register_webhook(
    settings: Settings,
    *,
    max_connections: int = 40,
    drop_pending_updates: bool = False,
    request: Any = None,
) -> Any:
    """Bot.set_webhook with the URL and secret of the settings; the WebhookInfo after it.
    `request` replaces the network (tests)."""
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise ValueError("DIKKAT_TELEGRAM_TOKEN is not set")
    if not settings.telegram_webhook_url:
        raise ValueError("DIKKAT_TELEGRAM_WEBHOOK_URL is not set: the public URL of /telegram")
    bot = Bot(
        settings.telegram_token.get_secret_value(),
        base_url=settings.telegram_api_url,
        request=request,
    )
    async with bot:
        await _set_webhook(
            bot,
            settings,
            max_connections=max_connections,
            drop_pending_updates=drop_pending_updates,
        )
        return await bot.get_webhook_info()


async def _set_webhook(bot: Bot, settings: Settings, **options: Any) -> None:
    """The settings' URL and secret, and the update types this adapter handles."""
    await bot.set_webhook(
        url=settings.telegram_webhook_url,
        secret_token=webhook_secret(settings),
        allowed_updates=ALLOWED_UPDATES,
        **options,
    )


def webhook_receiver(
    app: Application, ledger: UpdateLedger | None = None
) -> Callable[[dict[str, Any]], Awaitable[int]]:
    """What the HTTP server calls with each webhook payload; it returns the HTTP status.

    The update is processed before the answer (so a crash makes Telegram send it again, and
    one chat's updates are handled in order). With a `ledger` (the App passes its store)
    each update_id is processed once across every replica sharing the database:

    - 200: processed now, or a re-sent duplicate of one already processed;
    - 409: a duplicate that another replica (or this one) is still processing: Telegram sends
      it again later, and then it is done, or its claim is taken over if that process died;
    - 503: processing failed and the user could not be told (the Bot API was unreachable, the
      database failed): the claim is released and the re-sent update is processed again.

    A handler failure whose polite "something went wrong" reached the user counts as answered
    (200): a re-send would only repeat it. A payload that is not an Update raises (400).
    """
    pruned_at = time.monotonic()

    async def receive(payload: dict[str, Any]) -> int:
        nonlocal pruned_at
        update = Update.de_json(payload, app.bot)
        if ledger is None:
            return 200 if await _process(app, update) else 503
        update_id = update.update_id
        try:
            if not await ledger.record_telegram_update(update_id):
                if await ledger.telegram_update_done(update_id):
                    log.info("Telegram update %d was re-sent: already answered", update_id)
                    return 200
                return 409
        except Exception as error:
            log.warning("Telegram update %d: the database failed: %r", update_id, error)
            return 503
        processed = False
        try:
            processed = await _process(app, update)
        finally:
            try:
                if processed:
                    await ledger.finish_telegram_update(update_id)
                else:
                    await ledger.release_telegram_update(update_id)
            except Exception as error:  # the claim expires by itself (TELEGRAM_CLAIM_S)
                log.warning("Telegram update %d: the database failed: %r", update_id, error)
                processed = False
        if time.monotonic() - pruned_at > PRUNE_EVERY_S:
            pruned_at = time.monotonic()
            with contextlib.suppress(Exception):
                await ledger.prune_telegram_updates(UPDATES_KEEP_S)
        return 200 if processed else 503

    return receive


async def _process(app: Application, update: Update) -> bool:
    """Run the handlers on one update; False when it failed and nobody was told."""
    failures: list[bool] = []
    token = _FAILURES.set(failures)
    try:
        await app.process_update(update)
    except Exception as error:
        log.warning("Telegram update %d failed: %r", update.update_id, error)
        return False
    finally:
        _FAILURES.reset(token)
    if not all(failures):
        log.warning("Telegram update %d failed unanswered: it will be re-sent", update.update_id)
        return False
    return True


async def start_telegram(app: Application, settings: Settings) -> None:
    """Initialise, set the command menu, start polling (or register the webhook, unless
    `telegram_register_webhook` is False: a replica behind one URL), handle."""
    await app.initialize()
    if app.post_init is not None:
        await app.post_init(app)
    if settings.telegram_webhook_url and settings.telegram_register_webhook:
        await _set_webhook(app.bot, settings)
        log.info("Telegram webhook registered; updates arrive on the HTTP server's /telegram")
    elif settings.telegram_webhook_url:  # one of several replicas: registered once elsewhere
        log.info(
            "Telegram webhook mode without registering (`dikkat telegram set-webhook` does it "
            "once); updates arrive on the HTTP server's /telegram"
        )
    else:
        await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        log.info("Telegram polling as @%s", app.bot.username)
    await app.start()


WebhookDrain = Callable[[float], Awaitable[int]]


async def stop_telegram(
    app: Application, drain_s: float, webhook_drain: WebhookDrain | None = None
) -> None:
    """Stop receiving (polling ends; the webhook answers 503 to new updates), deliver the
    answers in flight (at most `drain_s` each way), then release the HTTP clients."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if webhook_drain is not None:
        left = await webhook_drain(drain_s)
        if left:
            log.warning("Telegram: %d webhook update(s) in flight after %.0f s", left, drain_s)
    if app.running:
        try:
            async with asyncio.timeout(drain_s):
                await app.stop()  # waits for the updates being handled
        except TimeoutError:
            log.warning("Telegram: answers still in flight after %.0f s; closing", drain_s)
    await app.shutdown()


async def run_telegram(
    app: Application,
    settings: Settings,
    stop_event: asyncio.Event,
    webhook_drain: WebhookDrain | None = None,
) -> None:
    """Serve Telegram until `stop_event` is set, then stop gracefully."""
    try:
        await start_telegram(app, settings)
        await stop_event.wait()
    finally:
        await stop_telegram(app, settings.drain_s, webhook_drain)
