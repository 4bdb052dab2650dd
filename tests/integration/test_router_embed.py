"""/embed through the Router on the real encoder: the worked example, words, a word in context,
and a polite usage text for every bad input."""

import io
import re

import pytest
from PIL import Image

from dikkat.bot.types import Request


def request(args: str = "", lang: str | None = None) -> Request:
    return Request("telegram", "u1", "chat", "embed", args, lang)


def size(png: bytes | None) -> tuple[int, int]:
    assert png is not None and len(png) < 1_000_000
    return Image.open(io.BytesIO(png)).size


async def test_embed_without_argument_is_the_worked_example(bot) -> None:
    reply = await bot.router.handle(request(lang="en"))
    assert "Troll 2" in reply.text and "Gymkata" in reply.text
    assert re.search(r"\d\.\d\d", reply.text)  # the real numbers
    assert size(reply.image)[0] >= 800


async def test_words_get_their_vectors_nearest_neighbours_and_a_picture(bot) -> None:
    words = ["harika", "mükemmel", "berbat", "kötü", "masa"]
    reply = await bot.router.handle(request(" ".join(words)))
    assert size(reply.image)[0] >= 1000
    nearest = [line for line in reply.text.splitlines() if " → " in line]
    assert [line.split(" → ")[0] for line in nearest] == words
    for line in nearest:
        cosine = float(re.search(r"\((-?\d\.\d\d)\)", line).group(1))
        assert -1.0 <= cosine <= 1.0 and line.split(" → ")[1].split(" (")[0] in words
    assert "384" in reply.text  # MiniLM's width


async def test_a_word_in_two_sentences_has_one_input_and_two_contextual_vectors(bot) -> None:
    reply = await bot.router.handle(
        request("Bu film harika! | Telefonum bozuldu, harika!", lang="en")
    )
    assert size(reply.image)[0] >= 800
    assert "“harika”" in reply.text and "(cosine 1.00)" in reply.text
    cosines = [float(x) for x in re.findall(r"\d\.\d\d", reply.text)]
    assert len(cosines) == 4 and cosines[1] < 0.999  # the context changed the vector


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("harika", "Kullanım: /embed"),  # one word: nothing to compare
        ("😀 🎉 !!!", "Kullanım: /embed"),  # no letters or digits
        (" ".join(f"kelime{i}" for i in range(11)), "En fazla 10 kelime"),
        ("a" * 41 + " masa", "Kullanım: /embed"),
        ("Bu film harika! | Telefonum bozuldu", "ortak bir kelimesi"),
        ("bir | iki | üç", "Kullanım: /embed"),
        ("Bu film harika! |", "Kullanım: /embed"),
    ],
)
async def test_bad_input_gets_the_usage_text(bot, args: str, expected: str) -> None:
    reply = await bot.router.handle(request(args))
    assert expected in reply.text and reply.image is None


async def test_help_lists_embed(bot) -> None:
    assert "/embed" in (await bot.router.handle(Request("telegram", "u1", "c", "help", ""))).text
