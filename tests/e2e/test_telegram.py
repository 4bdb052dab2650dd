"""Telegram end to end: a real python-telegram-bot Application, a recording request, no network."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData
from waiting import HANG_S, until

from dikkat.bot.telegram import (
    TelegramFrontend,
    build_telegram,
    start_telegram,
    stop_telegram,
    webhook_receiver,
    webhook_secret,
)
from dikkat.bot.text import split_text
from dikkat.bot.types import Button, ButtonPress, Reply, Request
from dikkat.config import Settings
from dikkat.http import HttpServer

TOKEN = "123456:TEST-token-never-logged"
WEBHOOK_URL = "https://bot.example.com/telegram"
WEBHOOK_SECRET = "s3cret-Token_1"
BOT = {"id": 123456, "is_bot": True, "first_name": "Dikkat", "username": "dikkat_bot"}
USER = {"id": 111, "is_bot": False, "first_name": "Ayşe", "language_code": "tr"}
PRIVATE = {"id": 111, "type": "private", "first_name": "Ayşe"}
GROUP = {"id": -100777, "type": "supergroup", "title": "Transformers"}
PNG = b"\x89PNG\r\n\x1a\n fake image"


class RecordingRequest(BaseRequest):
    """Answers every Bot API call from canned JSON and records (method, parameters, files)."""

    def __init__(self, events: list[tuple[str, Any]]) -> None:
        self.events = events
        self.next_message_id = 1000

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if request_data and request_data.contains_files:
            params["files"] = {k: v[:2] for k, v in request_data.multipart_data.items()}
        if api_method == "getUpdates":
            await asyncio.sleep(0.01)
        else:
            self.events.append((api_method, params))
        return 200, json.dumps({"ok": True, "result": self.result(api_method, params)}).encode()

    def result(self, api_method: str, params: dict[str, Any]) -> Any:
        if api_method == "getMe":
            return BOT
        if api_method == "getUpdates":
            return []
        if api_method.startswith("send") or api_method.startswith("edit"):
            self.next_message_id += 1
            chat_id = params.get("chat_id", PRIVATE["id"])
            chat = PRIVATE if chat_id == PRIVATE["id"] else GROUP
            return {"message_id": self.next_message_id, "date": 0, "chat": chat, "from": BOT}
        return True


class FakeRouter:
    """Records what the adapter asks; answers with a fixed Reply (or raises it)."""

    commands = ["start", "help", "sort", "sentiment", "stats"]

    def __init__(self, events: list[tuple[str, Any]], reply: Reply | Exception) -> None:
        self.events = events
        self.reply = reply
        self.button_reply = Reply("Teşekkürler!", private=True)
        self.button_waits_for: Callable[[], Awaitable[None]] | None = None  # a slow Router
        self.notifiers: dict[str, Any] = {}

    def menu(self, lang: str, *, admin: bool = False) -> list[tuple[str, str]]:
        return [(name, f"{name} ({lang})") for name in self.commands if admin or name != "stats"]

    def set_notifier(self, platform: str, notifier: Any) -> None:
        self.notifiers[platform] = notifier

    async def handle(self, request: Request) -> Reply:
        self.events.append(("router", request))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    async def handle_button(self, press: ButtonPress) -> Reply:
        self.events.append(("router", press))
        if self.button_waits_for is not None:
            await self.button_waits_for()
        return self.button_reply


def api_calls(events: list[tuple[str, Any]], *methods: str) -> list[tuple[str, dict[str, Any]]]:
    return [(m, p) for m, p in events if m != "router" and (not methods or m in methods)]


def routed(events: list[tuple[str, Any]]) -> list[Any]:
    return [what for kind, what in events if kind == "router"]


def message(
    text: str | None = None,
    *,
    chat: dict[str, Any] = PRIVATE,
    user: dict[str, Any] = USER,
    message_id: int = 10,
    **extra: Any,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"message_id": message_id, "date": 0, "chat": chat, "from": user}
    if text is not None:
        payload["text"] = text
        if text.startswith("/"):
            length = len(text.split(maxsplit=1)[0])
            payload["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return payload | extra


@pytest.fixture
def tg_settings(settings: Settings) -> Settings:
    update = {"telegram_token": SecretStr(TOKEN), "admins": "telegram:1,discord:2"}
    return settings.model_copy(update=update)


@pytest.fixture
def webhook_settings(tg_settings: Settings) -> Settings:
    """Webhook mode with a configured secret."""
    update = {
        "telegram_webhook_url": WEBHOOK_URL,
        "telegram_webhook_secret": SecretStr(WEBHOOK_SECRET),
    }
    return tg_settings.model_copy(update=update)


@pytest.fixture
def events() -> list[tuple[str, Any]]:
    return []


async def started(
    router: Any, settings: Settings, events: list[tuple[str, Any]], **options: Any
) -> Application:
    """An initialised Application (getMe done) whose API calls land in `events`."""
    request = RecordingRequest(events)
    app = build_telegram(
        router, settings, request=request, get_updates_request=RecordingRequest(events), **options
    ).application
    await app.initialize()
    events.clear()
    return app


@pytest.fixture
async def fake(
    tg_settings: Settings, events: list[tuple[str, Any]]
) -> AsyncIterator[tuple[Application, FakeRouter]]:
    router = FakeRouter(events, Reply("ok"))
    app = await started(router, tg_settings, events)
    yield app, router
    await app.shutdown()


async def feed(app: Application, update_id: int = 1, **payload: Any) -> None:
    await app.process_update(Update.de_json({"update_id": update_id, **payload}, app.bot))


@pytest.fixture
async def real(
    bot: Any, tg_settings: Settings, events: list[tuple[str, Any]]
) -> AsyncIterator[Any]:
    """An Application on the fully wired bot of conftest (real models, store, Router)."""
    app = await started(bot.router, tg_settings, events)
    yield app
    await app.shutdown()


async def test_sort_in_a_private_chat_answers_the_sorted_letters(
    real: Application, events: list[tuple[str, Any]]
) -> None:
    await feed(real, message=message("/sort CBABBC"))
    [(method, params)] = api_calls(events)
    assert method == "sendMessage"
    assert params["chat_id"] == PRIVATE["id"]
    assert "CBABBC → ABBBCC" in params["text"]
    assert "reply_parameters" not in params  # no quoting in a private chat


async def test_bad_sort_input_gets_the_usage_message(
    real: Application, events: list[tuple[str, Any]]
) -> None:
    await feed(real, message=message("/sort XYZ", user=USER | {"language_code": "en"}))
    [(_, params)] = api_calls(events, "sendMessage")
    assert "Example: /sort CBABBC" in params["text"]


async def test_plain_text_gets_its_sentiment_and_a_button_press_stores_feedback(
    real: Application, bot: Any, events: list[tuple[str, Any]]
) -> None:
    await feed(real, 1, message=message("Bu film gerçekten harikaydı, çok beğendim!"))
    [(_, sent)] = api_calls(events, "sendMessage")
    [row] = sent["reply_markup"]["inline_keyboard"]
    data = [button["callback_data"] for button in row]
    assert [d.rsplit(":", 1)[1] for d in data] == ["negative", "neutral", "positive"]
    assert all(len(d.encode()) <= 64 for d in data)
    events.clear()
    query = callback_query(data[0]) | {"message": message(sent["text"], user=BOT, message_id=56)}
    await feed(real, 2, callback_query=query)
    [(method, answer)] = api_calls(events)
    assert method == "answerCallbackQuery" and answer["text"]  # the thanks, as a toast
    [stored] = await bot.store.feedback_rows()
    assert (stored["platform"], stored["user_id"], stored["label"]) == (
        "telegram",
        "111",
        "negative",
    )


async def test_command_for_another_bot_in_a_group_is_ignored(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, message=message("/sort@otherbot CBABBC", chat=GROUP))
    await feed(app, message=message("/frobnicate@otherbot", chat=GROUP))
    assert events == []


@pytest.mark.parametrize(
    "text", ["/sort@dikkat_bot CBABBC", "/sort CBABBC", "/SORT@Dikkat_Bot CBABBC"]
)
async def test_command_for_us_in_a_group_is_answered_as_a_reply(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]], text: str
) -> None:
    app, _ = fake
    await feed(app, message=message(text, chat=GROUP, message_id=42))
    assert routed(events) == [Request("telegram", "111", "-100777", "sort", "CBABBC", "tr")]
    [(method, params)] = api_calls(events)
    assert (method, params["chat_id"], params["text"]) == ("sendMessage", GROUP["id"], "ok")
    assert params["reply_parameters"]["message_id"] == 42


async def test_unknown_commands_reach_the_router_only_when_meant_for_us(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, message=message("/frobnicate now"))
    await feed(app, message=message("/frobnicate", chat=GROUP))
    await feed(app, message=message("/frobnicate@dikkat_bot", chat=GROUP))
    assert [(r.command, r.chat_id, r.args) for r in routed(events)] == [
        ("frobnicate", "111", "now"),
        ("frobnicate", "-100777", ""),
    ]


async def test_plain_text_in_private_is_sentiment_and_ignored_in_groups(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, message=message("Bugün hava çok güzel!\nHarika.", chat=GROUP))
    await feed(app, message=message("Bugün hava çok güzel!\nHarika."))
    assert routed(events) == [
        Request("telegram", "111", "111", "sentiment", "Bugün hava çok güzel!\nHarika.", "tr")
    ]


async def test_command_arguments_keep_their_line_breaks(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, message=message("/sentiment  birinci satır\nikinci satır "))
    assert routed(events)[0].args == "birinci satır\nikinci satır"


async def test_sticker_in_private_gets_the_help_and_is_ignored_in_groups(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    sticker = {
        "file_id": "s1",
        "file_unique_id": "u1",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
    await feed(app, message=message(chat=GROUP, sticker=sticker))
    await feed(app, message=message(sticker=sticker))
    photo = [{"file_id": "p1", "file_unique_id": "pu1", "width": 90, "height": 90}]
    await feed(app, message=message(photo=photo, caption="/sort CBABBC"))
    assert [r.command for r in routed(events)] == ["help", "help"]
    assert [m for m, _ in api_calls(events)] == ["sendMessage", "sendMessage"]


async def test_service_messages_are_not_answered(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, message=message(pinned_message=message("x", message_id=3)))
    assert events == []


async def test_an_edited_command_is_answered_again_quoting_the_edit(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, 1, message=message("/sort CBABC", message_id=7))
    await feed(app, 2, edited_message=message("/sort CBABBC", message_id=7, edit_date=5))
    await feed(app, 3, edited_message=message("güzel bir gün", message_id=8, edit_date=5))
    assert [(r.command, r.args) for r in routed(events)] == [
        ("sort", "CBABC"),
        ("sort", "CBABBC"),
        ("sentiment", "güzel bir gün"),
    ]
    sent = [p for _, p in api_calls(events, "sendMessage")]
    assert "reply_parameters" not in sent[0]
    assert [p["reply_parameters"]["message_id"] for p in sent[1:]] == [7, 8]


async def test_buttons_become_an_inline_keyboard(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, router = fake
    router.reply = Reply(
        "pozitif (0.91)",
        buttons=(Button("👍", "fb:123:ok"), Button("😐 nötr", "fb:123:neutral")),
    )
    await feed(app, message=message("harika"))
    [(_, params)] = api_calls(events, "sendMessage")
    assert params["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "👍", "callback_data": "fb:123:ok"},
                {"text": "😐 nötr", "callback_data": "fb:123:neutral"},
            ]
        ]
    }


async def test_an_image_is_sent_as_a_photo_with_the_text_as_caption(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, router = fake
    router.reply = Reply("attention", image=PNG, image_name="att.png", buttons=(Button("a", "b"),))
    await feed(app, message=message("/sort CBABBC"))
    [(method, params)] = api_calls(events)
    assert method == "sendPhoto"
    assert params["caption"] == "attention"
    assert params["reply_markup"] == {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
    assert params["files"]["photo"] == ("att.png", PNG)


async def test_a_long_caption_becomes_a_photo_then_messages(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, router = fake
    text = "\n".join(f"satır {i}: " + "x" * 90 for i in range(60))  # ~6,000 characters
    router.reply = Reply(text, image=PNG, buttons=(Button("a", "b"),))
    await feed(app, message=message("/sort CBABBC"))
    calls = api_calls(events)
    assert [m for m, _ in calls] == ["sendPhoto", "sendMessage", "sendMessage"]
    assert "caption" not in calls[0][1] and "reply_markup" not in calls[0][1]
    assert "reply_markup" not in calls[1][1] and "reply_markup" in calls[2][1]
    assert calls[1][1]["text"] + "\n" + calls[2][1]["text"] == text


def test_split_text_respects_the_limit_in_utf16_units() -> None:
    assert split_text("", 10) == []
    assert split_text("ab\ncd", 10) == ["ab\ncd"]
    pieces = split_text("🙂" * 5000, 4096)
    assert [len(p) for p in pieces] == [2048, 2048, 904]


async def test_language_code_goes_into_the_request(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, message=message("/start", user=USER | {"language_code": "en-GB"}))
    assert routed(events)[0].lang == "en-GB"


def callback_query(data: str = "fb:123:positive", **user: Any) -> dict[str, Any]:
    markup = {"inline_keyboard": [[{"text": "👍", "callback_data": "fb:123:positive"}]]}
    return {
        "id": "cq1",
        "from": USER | user,
        "chat_instance": "ci",
        "data": data,
        "message": message("pozitif", user=BOT, message_id=55, reply_markup=markup),
    }


async def test_a_button_press_is_routed_and_answered_with_a_toast(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, _ = fake
    await feed(app, callback_query=callback_query(language_code="en"))
    assert events == [
        ("router", ButtonPress("telegram", "111", "111", "fb:123:positive", "en")),
        ("answerCallbackQuery", {"callback_query_id": "cq1", "text": "Teşekkürler!"}),
    ]


async def test_a_slow_button_press_is_answered_first_and_the_reply_posted(
    tg_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    router = FakeRouter(events, Reply("ok"))

    async def the_spinner_stopped() -> None:  # slower than toast_wait_s, however fast it runs
        stopped = ("answerCallbackQuery", {"callback_query_id": "cq1"})
        await until(lambda: stopped in events, "the spinner to be stopped first")

    router.button_waits_for = the_spinner_stopped
    app = await started(router, tg_settings, events, toast_wait_s=0.01)
    try:
        await feed(app, callback_query=callback_query())
    finally:
        await app.shutdown()
    assert [kind for kind, _ in events] == ["router", "answerCallbackQuery", "sendMessage"]
    assert events[1][1] == {"callback_query_id": "cq1"}
    assert events[2][1]["text"] == "Teşekkürler!"
    assert events[2][1]["reply_parameters"]["message_id"] == 55


async def test_new_buttons_from_the_router_replace_the_keyboard(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    app, router = fake
    router.button_reply = Reply("ok", buttons=(Button("✅ 👍", "fb:123:positive"),))
    await feed(app, callback_query=callback_query())
    methods = [m for m, _ in api_calls(events)]
    assert methods == ["answerCallbackQuery", "editMessageReplyMarkup"]
    edit = api_calls(events, "editMessageReplyMarkup")[0][1]
    assert edit["message_id"] == 55
    assert edit["reply_markup"]["inline_keyboard"][0][0]["text"] == "✅ 👍"


async def test_the_router_can_post_into_a_chat_later(
    fake: tuple[Application, FakeRouter], events: list[tuple[str, Any]]
) -> None:
    _, router = fake
    await router.notifiers["telegram"]("-100777", Reply("yeniden eğitim bitti"))
    assert api_calls(events) == [
        ("sendMessage", {"chat_id": -100777, "text": "yeniden eğitim bitti"})
    ]


async def test_a_failing_router_gets_a_polite_answer_and_the_token_is_not_logged(
    tg_settings: Settings, events: list[tuple[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    router = FakeRouter(events, RuntimeError(f"boom with {TOKEN}"))
    app = await started(router, tg_settings, events)
    try:
        with caplog.at_level(logging.ERROR):
            await feed(app, message=message("/sort CBABBC", user=USER | {"language_code": "en"}))
    finally:
        await app.shutdown()
    [(_, params)] = api_calls(events, "sendMessage")
    assert params["text"] == "Sorry, something went wrong. Please try again."
    assert "boom" in caplog.text and "RuntimeError" in caplog.text
    assert TOKEN not in caplog.text


async def test_start_sets_the_command_menus_then_polls_and_stops(
    tg_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    router = FakeRouter(events, Reply("ok"))
    app = build_telegram(
        router,
        tg_settings,
        request=RecordingRequest(events),
        get_updates_request=RecordingRequest(events),
    ).application
    await start_telegram(app, tg_settings)
    assert app.running and app.updater.running
    await stop_telegram(app, HANG_S)
    assert not app.running
    menus = [p for _, p in api_calls(events, "setMyCommands")]
    assert [(p.get("scope"), p.get("language_code")) for p in menus] == [
        (None, None),
        (None, "tr"),
        (None, "en"),
        ({"type": "chat", "chat_id": 1}, None),
        ({"type": "chat", "chat_id": 1}, "tr"),
        ({"type": "chat", "chat_id": 1}, "en"),
    ]
    assert menus[0]["commands"][2] == {"command": "sort", "description": "sort (tr)"}
    assert menus[2]["commands"][0] == {"command": "start", "description": "start (en)"}
    assert "stats" not in str(menus[2]["commands"]) and "stats" in str(menus[5]["commands"])
    assert [m for m, _ in api_calls(events)][:2] == ["getMe", "setMyCommands"]
    assert "deleteWebhook" in [m for m, _ in api_calls(events)]


async def test_webhook_mode_registers_the_webhook_and_serves_it_on_the_http_server(
    webhook_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    router = FakeRouter(events, Reply("ok"))
    telegram = build_telegram(router, webhook_settings, request=RecordingRequest(events))
    app = telegram.application

    async def healthy() -> tuple[bool, dict[str, Any]]:
        return True, {}

    server = HttpServer(
        host="127.0.0.1",
        port=0,
        health=healthy,
        telegram_webhook=webhook_receiver(telegram),
        webhook_secret=webhook_secret(webhook_settings),
    )
    await start_telegram(app, webhook_settings)
    await server.start()
    try:
        [(_, hook)] = api_calls(events, "setWebhook")
        assert hook["url"] == "https://bot.example.com/telegram"
        assert hook["secret_token"] == WEBHOOK_SECRET
        assert hook["allowed_updates"] == ["message", "edited_message", "callback_query"]
        assert api_calls(events, "getUpdates") == []
        update = {"update_id": 9, "message": message("/start")}
        url = f"http://127.0.0.1:{server.port}/telegram"
        async with httpx.AsyncClient() as client:
            wrong = await client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
            )
            right = await client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
            )
        assert (wrong.status_code, right.status_code) == (403, 200)
        await until(lambda: bool(api_calls(events, "sendMessage")), "the answer")
    finally:
        await server.stop()
        await stop_telegram(app, HANG_S)
    assert [r.command for r in routed(events)] == ["start"]


def test_webhook_secret_defaults_to_one_derived_from_the_token(tg_settings: Settings) -> None:
    settings = tg_settings.model_copy(update={"telegram_webhook_url": "https://x.example/t"})
    secret = webhook_secret(settings)
    assert secret == webhook_secret(settings) and len(secret) == 64
    assert tg_settings.telegram_token.get_secret_value() not in secret


@pytest.mark.parametrize(
    ("update", "message_"),
    [
        ({"telegram_token": None}, "DIKKAT_TELEGRAM_TOKEN"),
        ({"telegram_webhook_secret": SecretStr("has spaces")}, "WEBHOOK_SECRET"),
    ],
)
def test_bad_configuration_is_refused_early(
    tg_settings: Settings, update: dict[str, Any], message_: str
) -> None:
    with pytest.raises(ValueError, match=message_):
        build_telegram(FakeRouter([], Reply("")), tg_settings.model_copy(update=update))


# several webhook replicas: registered once, each update processed once


class FlakyRequest(RecordingRequest):
    """A Bot API whose sendMessage fails (HTTP 500) the first `failures` times."""

    def __init__(self, events: list[tuple[str, Any]], failures: int = 0) -> None:
        super().__init__(events)
        self.failures = failures

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **kwargs: Any
    ) -> tuple[int, bytes]:
        if url.endswith("/sendMessage") and self.failures > 0:
            self.failures -= 1
            return 500, b'{"ok": false, "error_code": 500, "description": "Internal Server Error"}'
        if url.endswith("/getWebhookInfo"):
            info = {"url": "https://bot.example.com/telegram", "has_custom_certificate": False}
            info |= {"pending_update_count": 3, "max_connections": 80}
            return 200, json.dumps({"ok": True, "result": info}).encode()
        return await super().do_request(url, method, request_data, **kwargs)


@pytest.fixture
async def ledger(tmp_path: Any) -> AsyncIterator[Any]:
    from dikkat.storage.store import Store

    store = await Store.open(tmp_path / "ledger.db")
    yield store
    await store.close()


async def webhook_app(
    settings: Settings, events: list[tuple[str, Any]], router: FakeRouter, request: BaseRequest
) -> TelegramFrontend:
    telegram = build_telegram(router, settings, request=request)
    await telegram.application.initialize()
    events.clear()
    return telegram


async def test_a_re_sent_update_is_processed_once(
    tg_settings: Settings, events: list[tuple[str, Any]], ledger: Any
) -> None:
    router = FakeRouter(events, Reply("ok"))
    telegram = await webhook_app(tg_settings, events, router, RecordingRequest(events))
    receive = webhook_receiver(telegram, ledger)  # the App passes its store
    try:
        update = {"update_id": 41, "message": message("/sort CBA")}
        assert await receive(update) == 200
        assert await receive(update) == 200  # re-sent: answered, not processed again
        assert await receive({"update_id": 42, "message": message("/sort AB")}) == 200
    finally:
        await telegram.application.shutdown()
    assert [r.args for r in routed(events)] == ["CBA", "AB"]
    assert len(api_calls(events, "sendMessage")) == 2
    assert await ledger.telegram_update_done(41) and await ledger.telegram_update_done(42)


async def test_concurrent_duplicates_wait_for_the_one_being_processed(
    tg_settings: Settings, events: list[tuple[str, Any]], ledger: Any
) -> None:
    router = FakeRouter(events, Reply("ok"))
    entered, slow = asyncio.Event(), asyncio.Event()
    handle = router.handle

    async def slow_handle(request: Request) -> Reply:
        entered.set()
        await slow.wait()
        return await handle(request)

    router.handle = slow_handle  # type: ignore[method-assign]
    telegram = await webhook_app(tg_settings, events, router, RecordingRequest(events))
    receive = webhook_receiver(telegram, ledger)
    try:
        update = {"update_id": 7, "message": message("/start")}
        first = asyncio.ensure_future(receive(update))
        await asyncio.wait_for(entered.wait(), HANG_S)  # the first copy is being processed
        assert not first.done()
        # delivered again while the first copy is still being processed (e.g. by a proxy
        # that gave up waiting): "not yet", so that it is sent again
        # (a copy processed again would wait for `slow` too: the deadline catches that hang)
        again = asyncio.gather(*(receive(update) for _ in range(3)))
        assert await asyncio.wait_for(again, HANG_S) == [409] * 3
        slow.set()
        assert await first == 200
        assert await receive(update) == 200  # and now it is a plain duplicate
    finally:
        await telegram.application.shutdown()
    assert len(routed(events)) == 1
    assert len(api_calls(events, "sendMessage")) == 1


async def test_an_unanswered_failure_is_non_2xx_and_the_re_sent_update_succeeds(
    tg_settings: Settings, events: list[tuple[str, Any]], ledger: Any
) -> None:
    router = FakeRouter(events, Reply("ok"))
    request = FlakyRequest(events, failures=2)  # the answer and the apology both fail
    telegram = await webhook_app(tg_settings, events, router, request)
    receive = webhook_receiver(telegram, ledger)
    try:
        update = {"update_id": 99, "message": message("/sort BA")}
        assert await receive(update) == 503
        assert not await ledger.telegram_update_done(99)
        assert await receive(update) == 200  # Telegram sends it again: processed this time
        assert await receive(update) == 200
    finally:
        await telegram.application.shutdown()
    assert len(routed(events)) == 2  # processed twice, answered once
    assert len(api_calls(events, "sendMessage")) == 1


async def test_a_failure_the_user_was_told_about_is_answered(
    tg_settings: Settings, events: list[tuple[str, Any]], ledger: Any
) -> None:
    router = FakeRouter(events, RuntimeError("a bug"))
    telegram = await webhook_app(tg_settings, events, router, RecordingRequest(events))
    receive = webhook_receiver(telegram, ledger)
    try:
        update = {"update_id": 5, "message": message("/sort BA")}
        assert await receive(update) == 200  # "something went wrong" reached the user
        assert await receive(update) == 200
    finally:
        await telegram.application.shutdown()
    assert len(routed(events)) == 1
    [(_, params)] = api_calls(events, "sendMessage")
    from dikkat.bot.i18n import t

    assert params["text"] == t("internal_error", "tr")


async def test_the_http_server_answers_what_the_receiver_decided(
    tg_settings: Settings, events: list[tuple[str, Any]], ledger: Any
) -> None:
    router = FakeRouter(events, Reply("ok"))
    telegram = await webhook_app(tg_settings, events, router, FlakyRequest(events, failures=2))

    async def healthy() -> tuple[bool, dict[str, Any]]:
        return True, {}

    server = HttpServer(
        host="127.0.0.1",
        port=0,
        health=healthy,
        telegram_webhook=webhook_receiver(telegram, ledger),
        webhook_secret=webhook_secret(tg_settings),
    )
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/telegram"
        headers = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(tg_settings)}
        update = {"update_id": 3, "message": message("/start")}
        statuses = []
        async with httpx.AsyncClient() as client:
            for _ in range(3):  # what Telegram does: send again until a 2xx
                statuses.append((await client.post(url, json=update, headers=headers)).status_code)
    finally:
        await server.stop()
        await telegram.application.shutdown()
    assert statuses == [503, 200, 200]
    assert len(api_calls(events, "sendMessage")) == 1


async def test_a_replica_does_not_register_the_webhook_when_told_not_to(
    tg_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    settings = tg_settings.model_copy(
        update={
            "telegram_webhook_url": WEBHOOK_URL,
            "telegram_register_webhook": False,
        }
    )
    app = build_telegram(
        FakeRouter(events, Reply("ok")), settings, request=RecordingRequest(events)
    ).application
    await start_telegram(app, settings)
    try:
        assert app.running and (app.updater is None or not app.updater.running)
    finally:
        await stop_telegram(app, HANG_S)
    methods = [m for m, _ in api_calls(events)]
    assert "setWebhook" not in methods and "getUpdates" not in methods
    assert "deleteWebhook" not in methods


async def test_set_webhook_registers_once_with_its_options(
    tg_settings: Settings, webhook_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    from dikkat.bot.telegram import register_webhook

    info = await register_webhook(
        webhook_settings,
        max_connections=80,
        drop_pending_updates=True,
        request=FlakyRequest(events),
    )
    [(_, hook)] = api_calls(events, "setWebhook")
    assert hook["url"] == "https://bot.example.com/telegram"
    assert hook["secret_token"] == WEBHOOK_SECRET
    assert hook["max_connections"] == 80 and hook["drop_pending_updates"] is True
    assert hook["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert (info.url, info.max_connections) == ("https://bot.example.com/telegram", 80)
    with pytest.raises(ValueError, match="WEBHOOK_URL"):
        await register_webhook(tg_settings, request=FlakyRequest(events))


def test_set_webhook_without_a_url_is_one_clear_error(
    tg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dikkat.cli.telegram import telegram_app

    monkeypatch.setenv("DIKKAT_TELEGRAM_TOKEN", TOKEN)
    result = CliRunner().invoke(telegram_app, ["set-webhook", "--max-connections", "80"])
    assert result.exit_code == 2
    assert "DIKKAT_TELEGRAM_WEBHOOK_URL is not set" in result.output
    result = CliRunner().invoke(telegram_app, ["set-webhook", "--max-connections", "101"])
    assert result.exit_code == 2


async def test_the_command_registers_what_the_adapter_checks(
    tg_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    from dikkat.bot.telegram import ALLOWED_UPDATES
    from dikkat.serve import register_telegram_webhook  # what `dikkat telegram set-webhook` calls

    url = {"telegram_webhook_url": WEBHOOK_URL}
    derived = tg_settings.model_copy(update=url)  # no secret configured: derived from the token
    given = tg_settings.model_copy(update={**url, "telegram_webhook_secret": SecretStr("abc-1")})
    for settings in (derived, given):
        await register_telegram_webhook(settings, request=FlakyRequest(events))
    [(_, first), (_, second)] = api_calls(events, "setWebhook")
    assert first["allowed_updates"] == second["allowed_updates"] == list(ALLOWED_UPDATES)
    assert first["secret_token"] == webhook_secret(derived)
    assert second["secret_token"] == webhook_secret(given) == "abc-1"


async def test_a_write_lock_on_the_database_does_not_hold_up_webhook_updates(
    webhook_settings: Settings, events: list[tuple[str, Any]]
) -> None:
    import sqlite3
    import threading

    from dikkat.serve import open_update_ledger
    from dikkat.storage.store import Store

    store = await Store.open(webhook_settings.db_path)
    ledger, ledger_store = await open_update_ledger(webhook_settings, store)
    router = FakeRouter(events, Reply("ok"))
    telegram = await webhook_app(webhook_settings, events, router, RecordingRequest(events))
    receive = webhook_receiver(telegram, ledger)
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:  # another process's long write
        conn = sqlite3.connect(webhook_settings.db_path, isolation_level=None, timeout=10)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(4 * HANG_S)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, HANG_S)
        update = {"update_id": 7, "message": message("/help")}
        assert await asyncio.wait_for(receive(update), HANG_S) == 200  # while the lock is held
        assert await asyncio.wait_for(receive(update), HANG_S) == 200  # re-sent: not again
        assert holder.is_alive()
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 4 * HANG_S)
        await telegram.application.shutdown()
        if ledger_store is not None:
            await ledger_store.close()
        await store.close()
    assert [r.command for r in routed(events)] == ["help"]
    assert len(api_calls(events, "sendMessage")) == 1
