"""/sentiment, feedback buttons, /lang and /forget through the Router on the real models."""

import asyncio
import re

import pytest

from dikkat.bot.types import ButtonPress, Request


def request(command: str, args: str = "", lang: str | None = None, user: str = "u1") -> Request:
    return Request("telegram", user, "chat", command, args, lang)


def press(data: str, user: str = "u1", lang: str | None = None) -> ButtonPress:
    return ButtonPress("telegram", user, "chat", data, lang)


async def test_sentiment_answers_label_confidence_and_feedback_buttons(bot) -> None:
    reply = await bot.router.handle(request("sentiment", "Kargo çok hızlı geldi, çok memnunum!"))
    first_line = reply.text.splitlines()[0]
    assert re.fullmatch(r"(🙁 Olumsuz|😐 Nötr|🙂 Olumlu) \(%\d{1,3}\)", first_line)
    assert [b.data.split(":")[2] for b in reply.buttons] == ["negative", "neutral", "positive"]
    assert all(b.data.startswith("fb:") for b in reply.buttons)
    assert [b.label.split()[-1] for b in reply.buttons] == ["Olumsuz", "Nötr", "Olumlu"]


async def test_sentiment_in_english(bot) -> None:
    reply = await bot.router.handle(
        request("sentiment", "Berbat bir ürün, param çöpe gitti.", lang="en")
    )
    first_line = reply.text.splitlines()[0]
    assert re.fullmatch(r"(🙁 Negative|😐 Neutral|🙂 Positive) \(\d{1,3}%\)", first_line)
    assert "If this is wrong" in reply.text


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200b", "\x00\x01"])
async def test_empty_text_gets_usage(bot, text: str) -> None:
    reply = await bot.router.handle(request("sentiment", text))
    assert "Örnek: /sentiment" in reply.text
    assert reply.buttons == ()


@pytest.mark.parametrize(
    "text",
    [
        "😀😀😀",
        "مرحبا بالعالم، هذا رائع",
        "'; DROP TABLE predictions; --",
        "The delivery was fast and the product is great",
        "iyi\x07 ürün\u200b \u202egüzel",
    ],
)
async def test_unusual_text_still_gets_an_answer(bot, text: str) -> None:
    reply = await bot.router.handle(request("sentiment", text))
    assert "%" in reply.text.splitlines()[0]
    assert len(reply.buttons) == 3


async def test_sql_looking_text_is_stored_verbatim(bot) -> None:
    text = "'; DROP TABLE predictions; --"
    reply = await bot.router.handle(request("sentiment", text))
    await bot.router.handle_button(press(reply.buttons[0].data))
    rows = await bot.store.feedback_rows()
    assert rows[0]["text"] == text


async def test_100_kb_text_is_truncated_with_a_note(bot) -> None:
    reply = await bot.router.handle(request("sentiment", "güzel bir gün " * 8000))
    assert "yalnızca başına baktım" in reply.text
    assert len(reply.buttons) == 3


async def test_feedback_is_stored_changeable_and_thanked(bot) -> None:
    reply = await bot.router.handle(request("sentiment", "Fena değil, idare eder."))
    negative, neutral, _ = (b.data for b in reply.buttons)
    assert "Teşekkürler" in (await bot.router.handle_button(press(neutral))).text
    assert "zaten" in (await bot.router.handle_button(press(neutral))).text
    assert "değiştirdim" in (await bot.router.handle_button(press(negative))).text
    assert "Thanks" in (await bot.router.handle_button(press(neutral, user="u2", lang="en"))).text
    rows = await bot.store.feedback_rows()
    assert sorted((r["user_id"], r["label"]) for r in rows) == [
        ("u1", "negative"),
        ("u2", "neutral"),
    ]


@pytest.mark.parametrize("data", ["fb:999999:positive", "fb:1:great", "xx:1:positive", "fb::"])
async def test_unknown_or_forged_buttons_get_a_polite_answer(bot, data: str) -> None:
    reply = await bot.router.handle_button(press(data))
    assert reply.text and "Traceback" not in reply.text
    assert await bot.store.feedback_rows() == []


async def test_lang_is_remembered_per_user(bot) -> None:
    assert "English" in (await bot.router.handle(request("lang", "en"))).text
    reply = await bot.router.handle(request("sort", "XYZ"))
    assert reply.text.startswith("Please send")
    assert "Komutlar" in (await bot.router.handle(request("help", user="other"))).text
    assert "/lang" in (await bot.router.handle(request("lang", "de"))).text
    assert "Türkçe" in (await bot.router.handle(request("lang", "TR"))).text


async def test_forget_deletes_the_callers_data_and_old_buttons_answer_politely(bot) -> None:
    mine = await bot.router.handle(request("sentiment", "Harika bir film!"))
    theirs = await bot.router.handle(request("sentiment", "Berbat bir film!", user="u2"))
    await bot.router.handle_button(press(mine.buttons[2].data))
    await bot.router.handle_button(press(theirs.buttons[0].data, user="u2"))
    reply = await bot.router.handle(request("forget"))
    assert "1 tahmin, 1 geri bildirim" in reply.text
    assert (
        "artık kayıtlı değil" in (await bot.router.handle_button(press(mine.buttons[0].data))).text
    )
    assert [r["user_id"] for r in await bot.store.feedback_rows()] == ["u2"]


async def test_an_old_button_after_forget_never_labels_another_users_text(bot) -> None:
    theirs_old = await bot.router.handle(request("sentiment", "Eski metin", user="u1"))
    await bot.router.handle(request("forget", user="u1"))
    other = Request("telegram", "u2", "other chat", "sentiment", "B'nin metni", None)
    await bot.router.handle(other)
    reply = await bot.router.handle_button(press(theirs_old.buttons[0].data, user="u1"))
    assert "artık kayıtlı değil" in reply.text
    assert await bot.store.feedback_rows() == []


async def test_a_button_pressed_in_another_chat_is_refused(bot) -> None:
    reply = await bot.router.handle(request("sentiment", "Harika bir film!"))
    elsewhere = ButtonPress("telegram", "u1", "another chat", reply.buttons[2].data)
    assert "artık kayıtlı değil" in (await bot.router.handle_button(elsewhere)).text
    assert await bot.store.feedback_rows() == []


async def test_rate_limit_answers_slow_down_with_the_wait(bot) -> None:
    burst = bot.settings.rate_limit_burst
    replies = [await bot.router.handle(request("sort", "CBABBC")) for _ in range(burst + 1)]
    assert all("ABBBCC" in r.text for r in replies[:burst])
    assert "Biraz yavaş" in replies[-1].text and "saniye" in replies[-1].text
    assert "ABBBCC" in (await bot.router.handle(request("sort", "CBABBC", user="u9"))).text


async def test_overload_answers_busy(bot, monkeypatch: pytest.MonkeyPatch) -> None:
    from dikkat.inference.batcher import Overloaded

    async def full(text: str):
        raise Overloaded("queue full")

    monkeypatch.setattr(bot.service, "sentiment", full)
    reply = await bot.router.handle(request("sentiment", "merhaba"))
    assert "yoğunum" in reply.text


async def test_a_bug_gets_a_polite_answer_and_the_bot_keeps_serving(bot, monkeypatch) -> None:
    async def broken(text: str):
        raise ZeroDivisionError

    monkeypatch.setattr(bot.service, "sentiment", broken)
    reply = await bot.router.handle(request("sentiment", "merhaba"))
    assert "ters gitti" in reply.text
    monkeypatch.undo()
    assert "%" in (await bot.router.handle(request("sentiment", "merhaba"))).text


async def test_concurrent_sentiment_requests_are_batched(bot) -> None:
    bot.router.rate_limiter.burst = 10_000
    texts = [f"Ürün {i} çok güzel ama kargo {i} gün gecikti" for i in range(40)]
    replies = await asyncio.gather(*(bot.router.handle(request("sentiment", t)) for t in texts))
    assert all(len(r.buttons) == 3 for r in replies)
    stats = next(b for b in bot.service.batchers if b.name == "sentiment").stats
    assert stats.items == 40 and stats.batches < 40


async def test_a_vote_keeps_the_texts_features_for_retraining(bot) -> None:
    from dikkat.hashing import text_hash

    text = "Bu ürünü herkese tavsiye ederim"
    reply = await bot.router.handle(request("sentiment", text))
    key = bot.service.feature_key
    assert await bot.store.get_features(key, [text_hash(text)]) == {}
    await bot.router.handle_button(press(reply.buttons[2].data))
    (vector,) = (await bot.store.get_features(key, [text_hash(text)])).values()
    assert vector.shape == (bot.service.sentiment_pipeline.encoder.dim,)
