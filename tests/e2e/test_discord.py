"""Discord through discord.py's own objects: gateway payloads in, recorded HTTP calls out."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from aiohttp import web
from discord.webhook.async_ import AsyncWebhookAdapter, async_context
from waiting import HANG_S, until

from dikkat.bot.discord import (
    DikkatDiscord,
    FeedbackButton,
    build_discord_client,
    run_discord,
    split_text,
    stop_discord,
)
from dikkat.bot.i18n import t
from dikkat.bot.types import Button, ButtonPress, Reply, Request
from dikkat.config import Settings

APPLICATION_ID = 4242
USER = {
    "id": "111",
    "username": "ayse",
    "discriminator": "0",
    "global_name": "Ayşe",
    "avatar": None,
}
BOT = {"id": "4242", "username": "Dikkat", "discriminator": "0", "avatar": None, "bot": True}
BOT |= {"global_name": None}
OK = Reply("ok")
PNG = b"\x89PNG\r\n\x1a\n fake image"
EPHEMERAL = 64
DM_CHANNEL = {"id": "555", "type": 1, "recipients": [USER]}
GUILD_CHANNEL = {"id": "555", "type": 0, "guild_id": "999", "name": "genel", "position": 0}


@dataclass
class Call:
    """One HTTP call of an interaction webhook: method, route template, JSON body, files."""

    method: str
    path: str
    payload: dict[str, Any] | None
    files: list[tuple[str, bytes]]


def message_payload(**extra: Any) -> dict[str, Any]:
    return {
        "id": "777",
        "channel_id": "555",
        "author": BOT,
        "content": "",
        "type": 0,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "role_mentions": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "flags": 0,
    } | extra


class RecordingAdapter(AsyncWebhookAdapter):
    """discord.py's interaction HTTP adapter with the network replaced by a recorder."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    async def request(self, route: Any, session: Any, **kwargs: Any) -> Any:
        payload = kwargs.get("payload")
        if kwargs.get("multipart"):
            payload = json.loads(kwargs["multipart"][0]["value"])
        files = []
        for file in kwargs.get("files") or []:
            file.reset()
            files.append((file.filename, file.fp.read()))
        self.calls.append(Call(route.method, route.path, payload, files))
        if route.path.endswith("/callback"):
            return {"interaction": {"id": str(route.webhook_id), "type": 2}}
        if route.method == "DELETE":
            return None
        return message_payload(content=(payload or {}).get("content", ""))


class FakeRouter:
    """Records what the adapter asks; answers with a fixed Reply (or raises it), maybe slowly:
    only once `waits_for()` has returned."""

    commands = ["start", "help", "sort", "attention", "stats"]

    def __init__(
        self, reply: Reply | Exception = OK, waits_for: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.reply = reply
        self.waits_for = waits_for
        self.seen: list[Request | ButtonPress] = []
        self.button_reply = Reply("Teşekkürler!", private=True)
        self.notifiers: dict[str, Any] = {}

    def menu(self, lang: str, *, admin: bool = False) -> list[tuple[str, str]]:
        return [(name, f"{name} ({lang})") for name in self.commands if admin or name != "stats"]

    def set_notifier(self, platform: str, notifier: Any) -> None:
        self.notifiers[platform] = notifier

    async def handle(self, request: Request) -> Reply:
        self.seen.append(request)
        if self.waits_for is not None:
            await self.waits_for()
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply

    async def handle_button(self, press: ButtonPress) -> Reply:
        self.seen.append(press)
        if self.waits_for is not None:
            await self.waits_for()
        return self.button_reply


@pytest.fixture
def adapter() -> Iterator[RecordingAdapter]:
    recorder = RecordingAdapter()
    token = async_context.set(recorder)
    yield recorder
    async_context.reset(token)


async def ready(router: Any, settings: Settings, **options: Any) -> DikkatDiscord:
    """A client as after login: loop bound, setup_hook run (command sync recorded)."""
    client = build_discord_client(router, settings)
    for key, value in options.items():
        setattr(client, key, value)
    client._connection.application_id = APPLICATION_ID
    client._connection.user = discord.ClientUser(state=client._connection, data=BOT)  # as login
    client.synced: list[tuple[str, Any]] = []  # type: ignore[misc]

    async def global_sync(application_id: int, payload: Any) -> list[Any]:
        client.synced.append(("global", payload))  # type: ignore[attr-defined]
        return []

    async def guild_sync(application_id: int, guild_id: int, payload: Any) -> list[Any]:
        client.synced.append((str(guild_id), payload))  # type: ignore[attr-defined]
        return []

    client.http.bulk_upsert_global_commands = global_sync  # type: ignore[method-assign]
    client.http.bulk_upsert_guild_commands = guild_sync  # type: ignore[method-assign]
    await client._async_setup_hook()
    await client.setup_hook()
    return client


@pytest.fixture
async def fake(settings: Settings) -> AsyncIterator[tuple[DikkatDiscord, FakeRouter]]:
    router = FakeRouter()
    client = await ready(router, settings)
    yield client, router
    await client.close()


def command_payload(
    name: str, text: str | None = None, *, locale: str = "en-US", guild: bool = False
) -> dict[str, Any]:
    options = [] if text is None else [{"type": 3, "name": "text", "value": text}]
    payload = {
        "id": "900",
        "application_id": str(APPLICATION_ID),
        "type": 2,
        "token": "interaction-token",
        "version": 1,
        "channel_id": "555",
        "channel": GUILD_CHANNEL if guild else DM_CHANNEL,
        "locale": locale,
        "attachment_size_limit": 10_485_760,
        "data": {"id": "1", "name": name, "type": 1, "options": options},
    }
    if guild:
        member = {"user": USER, "roles": [], "joined_at": "2026-01-01T00:00:00+00:00"}
        return payload | {
            "guild_id": "999",
            "member": member | {"deaf": False, "mute": False, "flags": 0},
        }
    return payload | {"user": USER}


def button_payload(custom_id: str, label: str = "👍") -> dict[str, Any]:
    button = {"type": 2, "style": 2, "label": label, "custom_id": custom_id}
    return {
        "id": "901",
        "application_id": str(APPLICATION_ID),
        "type": 3,
        "token": "button-token",
        "version": 1,
        "channel_id": "555",
        "channel": DM_CHANNEL,
        "locale": "en-US",
        "attachment_size_limit": 10_485_760,
        "user": USER,
        "data": {"custom_id": custom_id, "component_type": 2},
        "message": message_payload(components=[{"type": 1, "components": [button]}]),
    }


async def deliver(client: DikkatDiscord, payload: dict[str, Any]) -> None:
    """Hand an INTERACTION_CREATE to discord.py and wait for the tasks it starts."""
    client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
    for _ in range(500):
        await asyncio.sleep(0)
        pending = [
            task
            for task in asyncio.all_tasks()
            if not task.done()
            and task.get_name().startswith(("CommandTree-invoker", "discord-ui-dynamic-item"))
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=5)


DEFERRALS = {5, 6}  # "thinking…" (a command), "update the message later" (a button)


def deferred(adapter: RecordingAdapter) -> Callable[[], Awaitable[None]]:
    """For a Router slower than `defer_after_s` however fast the machine: it answers only
    once the interaction it handles has been deferred."""

    async def wait() -> None:
        before = len(adapter.calls)
        await until(
            lambda: any(
                c.path.endswith("/callback") and (c.payload or {}).get("type") in DEFERRALS
                for c in adapter.calls[before:]
            ),
            "the interaction to be deferred",
        )

    return wait


def response(call: Call) -> tuple[int, dict[str, Any]]:
    """(interaction response type, data) of a POST /interactions/.../callback."""
    assert call.method == "POST" and call.path.endswith("/callback")
    assert call.payload is not None
    data = dict(call.payload.get("data", {}))
    assert data.pop("tts", False) is False
    return call.payload["type"], data


@pytest.fixture
async def real(bot: Any, settings: Settings) -> AsyncIterator[DikkatDiscord]:
    """A client on the fully wired bot of conftest (real models, store, Router)."""
    client = await ready(bot.router, settings)
    yield client
    await client.close()


async def test_sort_answers_the_sorted_letters(
    real: DikkatDiscord, adapter: RecordingAdapter
) -> None:
    await deliver(real, command_payload("sort", "CBABBC", locale="tr"))
    [call] = adapter.calls
    kind, data = response(call)
    assert kind == 4  # channel message with source
    assert "CBABBC → ABBBCC" in data["content"]
    assert "flags" not in data


async def test_sentiment_buttons_store_feedback_through_the_persistent_view(
    real: DikkatDiscord, bot: Any, adapter: RecordingAdapter
) -> None:
    await deliver(real, command_payload("sentiment", "Bu film gerçekten harikaydı!", guild=True))
    _, data = response(adapter.calls[0])
    [row] = data["components"]
    custom_ids = [button["custom_id"] for button in row["components"]]
    assert [c.rsplit(":", 1)[1] for c in custom_ids] == ["negative", "neutral", "positive"]
    assert all(c.startswith("dikkat:fb:") and len(c) <= 100 for c in custom_ids)
    real._connection._view_store._views.clear()  # as after a restart
    await deliver(real, button_payload(custom_ids[1]))
    kind, thanks = response(adapter.calls[1])
    assert (kind, thanks["flags"]) == (4, EPHEMERAL)
    assert "went wrong" not in thanks["content"]
    [stored] = await bot.store.feedback_rows()
    assert (stored["platform"], stored["user_id"], stored["label"]) == ("discord", "111", "neutral")


async def test_a_guild_command_reaches_the_router_with_user_channel_and_locale(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake
    await deliver(client, command_payload("sort", "c b a b b c", locale="tr", guild=True))
    await deliver(client, command_payload("help"))
    await deliver(client, command_payload("attention"))
    assert router.seen == [
        Request("discord", "111", "555", "sort", "c b a b b c", "tr"),
        Request("discord", "111", "555", "help", "", "en-US"),
        Request("discord", "111", "555", "attention", "", "en-US"),
    ]
    assert [response(c)[1]["content"] for c in adapter.calls] == ["ok"] * 3


async def test_a_private_reply_is_ephemeral(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake
    router.reply = Reply("only admins may do this", private=True)
    await deliver(client, command_payload("stats"))
    [call] = adapter.calls
    assert response(call) == (4, {"content": "only admins may do this", "flags": EPHEMERAL})


async def test_an_image_becomes_an_attachment_and_buttons_a_persistent_view(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake
    buttons = (Button("👍", "fb:123:positive"), Button("😐", "fb:123:neutral"))
    router.reply = Reply("attention", image=PNG, image_name="att.png", buttons=buttons)
    await deliver(client, command_payload("attention", "CBABBC"))
    [call] = adapter.calls
    _, data = response(call)
    assert call.files == [("att.png", PNG)]
    assert data["attachments"][0]["filename"] == "att.png"
    [row] = data["components"]
    assert [(b["label"], b["custom_id"]) for b in row["components"]] == [
        ("👍", "dikkat:fb:123:positive"),
        ("😐", "dikkat:fb:123:neutral"),
    ]


async def test_a_button_press_after_a_restart_routes_the_custom_id_data(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake  # a fresh client: no View was ever sent by this process
    await deliver(client, button_payload("dikkat:fb:123:positive"))
    assert router.seen == [ButtonPress("discord", "111", "555", "fb:123:positive", "en-US")]
    [call] = adapter.calls
    assert response(call) == (4, {"content": "Teşekkürler!", "flags": EPHEMERAL})


async def test_buttons_from_the_router_replace_the_view_and_the_thanks_stay_private(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake
    router.button_reply = Reply("ok", buttons=(Button("✅ 👍", "fb:123:positive"),))
    await deliver(client, button_payload("dikkat:fb:123:positive"))
    edit, followup = adapter.calls
    kind, data = response(edit)
    assert kind == 7  # update message
    assert data["components"][0]["components"][0]["label"] == "✅ 👍"
    assert (followup.method, followup.path) == ("POST", "/webhooks/{webhook_id}/{webhook_token}")
    assert followup.payload == {"content": "ok", "flags": EPHEMERAL, "tts": False}


async def test_foreign_buttons_are_not_ours(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake
    await deliver(client, button_payload("someone-else:1"))
    assert router.seen == [] and adapter.calls == []


async def test_slow_work_is_deferred_then_followed_up(
    settings: Settings, adapter: RecordingAdapter
) -> None:
    router = FakeRouter(Reply("done"), waits_for=deferred(adapter))
    client = await ready(router, settings, defer_after_s=0.01)
    try:
        await deliver(client, command_payload("sort", "CBABBC"))
    finally:
        await client.close()
    defer, followup = adapter.calls
    assert response(defer) == (5, {})  # deferred, public "thinking…"
    assert followup.path == "/webhooks/{webhook_id}/{webhook_token}"
    assert followup.payload == {"content": "done", "tts": False}


async def test_a_slow_private_reply_replaces_the_public_thinking_message(
    settings: Settings, adapter: RecordingAdapter
) -> None:
    router = FakeRouter(Reply("secret", private=True), waits_for=deferred(adapter))
    client = await ready(router, settings, defer_after_s=0.01)
    try:
        await deliver(client, command_payload("sort", "CBABBC"))
        await deliver(client, command_payload("stats"))
    finally:
        await client.close()
    methods = [(c.method, c.path.rsplit("/", 1)[-1]) for c in adapter.calls]
    assert methods == [
        ("POST", "callback"),
        ("DELETE", "@original"),
        ("POST", "{webhook_token}"),
        ("POST", "callback"),
        ("POST", "{webhook_token}"),
    ]
    assert adapter.calls[2].payload == {"content": "secret", "flags": EPHEMERAL, "tts": False}
    assert response(adapter.calls[3]) == (5, {"flags": EPHEMERAL})  # an admin command


async def test_a_vote_the_database_holds_up_is_deferred_then_answered(
    bot: Any, settings: Settings, adapter: RecordingAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    prediction = await bot.store.log_prediction(
        platform="discord",
        user_id="111",
        chat_id="555",
        text="Kargo çok hızlı geldi",
        label="positive",
        probabilities={"negative": 0.1, "neutral": 0.2, "positive": 0.7},
        head_version=1,
    )
    add_feedback = bot.store.add_feedback

    async def write_locked(*args: Any, **kwargs: Any) -> Any:
        """The vote's write waits, as behind another process's lock, until Discord has the
        deferral: only then is it written."""
        await until(
            lambda: any(c.path.endswith("/callback") for c in adapter.calls),
            "the button press to be deferred",
        )
        return await add_feedback(*args, **kwargs)

    monkeypatch.setattr(bot.store, "add_feedback", write_locked)
    client = await ready(bot.router, settings, defer_after_s=0.01)
    try:
        await deliver(client, button_payload(f"dikkat:fb:{prediction}:neutral"))
    finally:
        await client.close()
    defer, followup = adapter.calls
    assert response(defer) == (6, {})  # deferred: the message is updated later, if at all
    assert followup.path == "/webhooks/{webhook_id}/{webhook_token}"
    thanks = {"content": t("feedback_created", "en", label="Neutral"), "flags": EPHEMERAL}
    assert followup.payload == thanks | {"tts": False}
    [stored] = await bot.store.feedback_rows()
    assert (stored["user_id"], stored["label"]) == ("111", "neutral")


async def test_a_slow_press_that_changes_the_buttons_edits_them_after_the_deferral(
    settings: Settings, adapter: RecordingAdapter
) -> None:
    router = FakeRouter(waits_for=deferred(adapter))
    router.button_reply = Reply("ok", buttons=(Button("✅ 👍", "fb:123:positive"),))
    client = await ready(router, settings, defer_after_s=0.01)
    try:
        await deliver(client, button_payload("dikkat:fb:123:positive"))
    finally:
        await client.close()
    defer, edit, followup = adapter.calls
    assert response(defer) == (6, {})
    assert (edit.method, edit.path) == (
        "PATCH",
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
    )
    assert edit.payload is not None
    assert edit.payload["components"][0]["components"][0]["label"] == "✅ 👍"
    assert followup.payload == {"content": "ok", "flags": EPHEMERAL, "tts": False}


async def test_a_command_without_its_required_option_gets_the_usage_text(
    real: DikkatDiscord, adapter: RecordingAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    """As from a stale command list: Discord sends no option for a required one."""
    cases = [("sort", "tr"), ("sentiment", "en-US"), ("explain", "tr")]
    with caplog.at_level(logging.INFO):
        for command, locale in cases:
            await deliver(real, command_payload(command, locale=locale))
    assert [response(call) for call in adapter.calls] == [
        (4, {"content": t("sort_usage", "tr")}),
        (4, {"content": t("sentiment_usage", "en")}),
        (4, {"content": t("explain_usage", "tr")}),
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_admin_commands_are_registered_for_administrators_only(real: DikkatDiscord) -> None:
    [(_, payload)] = real.synced  # type: ignore[attr-defined]
    permissions = {command["name"]: command["default_member_permissions"] for command in payload}
    admin_only = {name for name, value in permissions.items() if value is not None}
    assert admin_only == {"retrain", "models", "rollback", "stats"}  # not /forget
    assert {permissions[name] for name in admin_only} == {discord.Permissions.administrator.flag}
    explain = next(command for command in payload if command["name"] == "explain")
    assert explain["options"][0]["required"] is True  # as the Router: no letters, no walkthrough


async def test_rest_calls_go_to_the_configured_api_url(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)  # restored after
    seen: list[tuple[str, str, str | None]] = []
    owner = USER | {"public_flags": 0}
    answers = {
        "/api/users/@me": BOT,
        "/api/oauth2/applications/@me": {
            "id": str(APPLICATION_ID),
            "name": "Dikkat",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": owner,
            "verify_key": "0" * 64,
            "flags": 0,
        },
    }

    async def fake_discord(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.headers.get("Authorization")))
        body = json.dumps(answers.get(request.path, [])).encode()
        return web.Response(body=body, headers={"Content-Type": "application/json"})  # exactly

    api = web.Application()
    api.router.add_route("*", "/{path:.*}", fake_discord)
    runner = web.AppRunner(api)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("DIKKAT_DISCORD_API_URL", f"http://127.0.0.1:{port}/api/")
    configured = Settings(db_path=settings.db_path, model_dir=settings.model_dir)
    try:
        client = build_discord_client(FakeRouter(), configured)
        try:
            await client.login("discord-token")  # who am I, which application, sync commands
        finally:
            await client.close()
    finally:
        await runner.cleanup()
    assert seen == [
        ("GET", "/api/users/@me", "Bot discord-token"),
        ("GET", "/api/oauth2/applications/@me", "Bot discord-token"),
        ("PUT", f"/api/applications/{APPLICATION_ID}/commands", "Bot discord-token"),
    ]
    build_discord_client(FakeRouter(), settings)
    assert discord.http.Route.BASE == "https://discord.com/api/v10"  # unset: Discord itself


async def test_long_text_is_split_into_a_response_and_followups(
    fake: tuple[DikkatDiscord, FakeRouter], adapter: RecordingAdapter
) -> None:
    client, router = fake
    text = "\n".join(f"line {i}: " + "x" * 90 for i in range(30))  # ~3,000 characters
    router.reply = Reply(text, buttons=(Button("a", "b"),))
    await deliver(client, command_payload("help"))
    first, second = adapter.calls
    _, data = response(first)
    assert "components" not in data
    assert second.payload is not None and "components" in second.payload
    assert data["content"] + "\n" + second.payload["content"] == text


async def test_a_failing_router_gets_an_ephemeral_apology(
    settings: Settings, adapter: RecordingAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    client = await ready(FakeRouter(RuntimeError("boom")), settings)
    try:
        with caplog.at_level(logging.ERROR):
            await deliver(client, command_payload("sort", "CBABBC", locale="tr"))
    finally:
        await client.close()
    [call] = adapter.calls
    kind, data = response(call)
    assert (kind, data["flags"]) == (4, EPHEMERAL)
    assert data["content"] == "Üzgünüm, bir şeyler ters gitti. Lütfen tekrar deneyin."
    assert "boom" in caplog.text


async def test_setup_hook_syncs_commands_from_the_router_menu(
    fake: tuple[DikkatDiscord, FakeRouter],
) -> None:
    client, router = fake
    [(scope, payload)] = client.synced  # type: ignore[attr-defined]
    assert scope == "global"
    by_name = {command["name"]: command for command in payload}
    assert list(by_name) == router.commands
    sort = by_name["sort"]
    assert sort["description"] == "sort (en)"
    assert sort["description_localizations"] == {"tr": "sort (tr)"}
    [option] = sort["options"]
    assert (option["name"], option["type"], option["required"]) == ("text", 3, True)
    assert option["description"].startswith("six letters")
    assert "tr" in option["description_localizations"]
    assert by_name["attention"]["options"][0]["required"] is False
    assert by_name["help"]["options"] == []
    assert (
        FeedbackButton.__discord_ui_compiled_template__
        in client._connection._view_store._dynamic_items
    )


async def test_setup_hook_syncs_to_the_development_guild_when_set(settings: Settings) -> None:
    client = await ready(FakeRouter(), settings.model_copy(update={"discord_guild_id": 31337}))
    await client.close()
    assert [scope for scope, _ in client.synced] == ["31337"]  # type: ignore[attr-defined]


def test_long_descriptions_are_shortened_for_discord(settings: Settings) -> None:
    router = FakeRouter()
    router.menu = lambda lang, admin=False: [("sort", "x" * 300)]  # type: ignore[method-assign]
    client = build_discord_client(router, settings)
    [command] = client.tree.get_commands()
    assert len(command.description) == 100 and command.description.endswith("…")


async def test_the_router_can_post_into_a_channel_later(
    fake: tuple[DikkatDiscord, FakeRouter],
) -> None:
    client, router = fake
    sent: list[tuple[int, str, Any]] = []

    async def send_message(channel_id: int, *, params: Any) -> dict[str, Any]:
        sent.append((channel_id, params.payload["content"], params.payload.get("flags")))
        return message_payload(content=params.payload["content"])

    client.http.send_message = send_message  # type: ignore[method-assign]
    await router.notifiers["discord"]("555", Reply("yeniden eğitim bitti", private=True))
    assert sent == [(555, "yeniden eğitim bitti", None)]


def test_split_text() -> None:
    assert split_text("", 2000) == []
    assert [len(p) for p in split_text("a" * 4500, 2000)] == [2000, 2000, 500]


async def test_a_stop_delivers_the_answers_in_flight_and_turns_new_work_away(
    settings: Settings, adapter: RecordingAdapter
) -> None:
    release = asyncio.Event()
    router = FakeRouter(Reply("done"), waits_for=release.wait)
    client = await ready(router, settings, defer_after_s=HANG_S)
    closed_at_answer: list[bool] = []
    request = adapter.request

    async def recording(route: Any, session: Any, **kwargs: Any) -> Any:
        closed_at_answer.append(client.is_closed())
        return await request(route, session, **kwargs)

    adapter.request = recording  # type: ignore[method-assign]
    client._connection.parse_interaction_create(command_payload("sort", "CBABBC"))
    await until(lambda: len(router.seen) == 1, "the command to reach the Router")
    stopping = asyncio.create_task(stop_discord(client, HANG_S))
    await until(lambda: client.draining, "the stop to begin")
    client._connection.parse_interaction_create(command_payload("help"))  # during the stop
    await until(lambda: len(adapter.calls) == 1, "the new command to be answered")
    assert len(router.seen) == 1  # not routed: told to come back
    turned_away = response(adapter.calls[0])
    assert turned_away == (4, {"content": t("restarting", "en"), "flags": EPHEMERAL})
    assert not client.is_closed() and not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, HANG_S)
    answer = response(adapter.calls[-1])
    assert answer == (4, {"content": "done"}) and closed_at_answer[-1] is False
    assert client.is_closed()


async def test_run_discord_logs_in_serves_and_stops_when_asked(settings: Settings) -> None:
    client = build_discord_client(FakeRouter(), settings)
    logins: list[str] = []
    serving = asyncio.Event()  # set once connected and served a while (10 polls)
    closed_when_asked: list[bool] = []  # whether stop was set when serving ended

    async def login(token: str) -> None:
        logins.append(token)

    async def connect(*, reconnect: bool = True) -> None:
        polls = 0
        try:
            while not client.is_closed():
                polls += 1
                if polls == 10:
                    serving.set()
                await asyncio.sleep(0.005)
        finally:  # closed, or cancelled
            closed_when_asked.append(stop.is_set())

    client.login = login  # type: ignore[method-assign]
    client.connect = connect  # type: ignore[method-assign]
    stop = asyncio.Event()
    runner = asyncio.create_task(run_discord(client, "discord-token", stop, HANG_S))
    served = asyncio.ensure_future(serving.wait())
    await asyncio.wait({runner, served}, timeout=HANG_S, return_when=asyncio.FIRST_COMPLETED)
    served.cancel()
    assert logins == ["discord-token"] and serving.is_set() and not runner.done()
    stop.set()
    await asyncio.wait_for(runner, HANG_S)
    assert client.is_closed() and closed_when_asked == [True]
