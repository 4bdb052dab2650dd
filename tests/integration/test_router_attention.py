"""/attention and /explain through the Router: pictures that decode, captions with numbers."""

import io

import pytest
from PIL import Image

from dikkat.bot.types import Request


def request(command: str, args: str = "", lang: str | None = None) -> Request:
    return Request("telegram", "u1", "chat", command, args, lang)


def size(png: bytes | None) -> tuple[int, int]:
    assert png is not None and len(png) < 1_000_000
    return Image.open(io.BytesIO(png)).size


async def test_attention_without_argument_is_the_worked_example(bot) -> None:
    reply = await bot.router.handle(request("attention"))
    assert "[2, 4, 4]" in reply.text and "[1.94, 6.68, 1.60]" in reply.text
    assert "[2.0, 7.8, 0.3]" in reply.text and "√3" in reply.text
    width, height = size(reply.image)
    assert width >= 800 and height >= 800


async def test_attention_for_six_letters_shows_the_nano_gpt_and_the_answer(bot) -> None:
    reply = await bot.router.handle(request("attention", "c b a b b c", lang="en"))
    assert "ABBBCC" in reply.text
    assert size(reply.image)[0] >= 800


async def test_attention_for_a_sentence_shows_the_encoder_and_the_sentiment(bot) -> None:
    reply = await bot.router.handle(request("attention", "Bu film gerçekten harikaydı"))
    assert "Kodlayıcının dikkati" in reply.text and "Duygu:" in reply.text
    assert "yalnızca ilk" not in reply.text
    assert size(reply.image)[1] >= 800


async def test_a_long_sentence_is_capped_and_the_reply_says_so(bot) -> None:
    reply = await bot.router.handle(request("attention", "çok güzel bir gün " * 40))
    assert "yalnızca ilk 32 token" in reply.text
    size(reply.image)


async def test_explain_walks_through_the_forward_pass(bot) -> None:
    reply = await bot.router.handle(request("explain", "CBABBC"))
    assert "CBABBC → ABBBCC" in reply.text
    width, height = size(reply.image)
    assert height > width


@pytest.mark.parametrize(
    ("command", "args"), [("explain", ""), ("explain", "ABCD"), ("attention", "ABCABCA")]
)
async def test_bad_letters_get_usage(bot, command: str, args: str) -> None:
    reply = await bot.router.handle(request(command, args))
    assert f"/{command} CBABBC" in reply.text
    assert reply.image is None


@pytest.mark.parametrize("text", [r"$\frac{$ fiyat", "$x^2$ ve $y$ çok pahalı"])
async def test_dollar_signs_are_drawn_literally(bot, text: str) -> None:
    reply = await bot.router.handle(request("attention", text))
    assert reply.image is not None and "ters gitti" not in reply.text
    size(reply.image)
