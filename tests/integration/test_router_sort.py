"""/start, /help and /sort through the Router with the real sorter behind the batcher."""

import asyncio
from itertools import product

import pytest

from dikkat.bot.types import Request


def request(command: str, args: str = "", lang: str | None = None, user: str = "u1") -> Request:
    return Request("telegram", user, "c1", command, args, lang)


async def test_sort_answers_sorted_letters(bot) -> None:
    reply = await bot.router.handle(request("sort", "CBABBC"))
    assert "CBABBC → ABBBCC" in reply.text


async def test_sort_accepts_spaces_commas_and_lower_case(bot) -> None:
    assert "ABBBCC" in (await bot.router.handle(request("sort", "c b a, b b c"))).text


@pytest.mark.parametrize("args", ["", "ABCD", "XYZXYZ", "A" * 10_000, "ABCABCA", "🙂🙂🙂🙂🙂🙂"])
async def test_bad_sort_input_gets_usage_in_turkish_by_default(bot, args: str) -> None:
    reply = await bot.router.handle(request("sort", args))
    assert "Örnek: /sort CBABBC" in reply.text
    assert "A, B ve C" in reply.text


async def test_bad_sort_input_gets_usage_in_english_for_english_clients(bot) -> None:
    reply = await bot.router.handle(request("sort", "XYZXYZ", lang="en-GB"))
    assert reply.text.startswith("Please send exactly 6 letters")
    assert "Example: /sort CBABBC" in reply.text


async def test_help_lists_every_public_command_with_an_example(bot) -> None:
    turkish = (await bot.router.handle(request("help", user="2"))).text
    english = (await bot.router.handle(request("help", lang="en", user="2"))).text
    for command, _ in bot.router.menu("tr"):
        assert f"/{command} —" in turkish and f"/{command} —" in english
    assert "/sort CBABBC" in turkish and "Komutlar" in turkish and "Commands" in english
    assert "/retrain" not in turkish


async def test_help_shows_admin_commands_to_admins(bot) -> None:
    reply = await bot.router.handle(request("help", user="1"))
    for command in ("retrain", "models", "rollback", "stats"):
        assert f"/{command} —" in reply.text


async def test_start_greets_in_the_users_language(bot) -> None:
    assert "Merhaba" in (await bot.router.handle(request("start"))).text
    assert "Hi" in (await bot.router.handle(request("start", lang="en"))).text


async def test_unknown_command_points_to_help(bot) -> None:
    reply = await bot.router.handle(request("frobnicate"))
    assert "/help" in reply.text and "/frobnicate" in reply.text


async def test_concurrent_sorts_are_all_correct(bot) -> None:
    bot.router.rate_limiter.burst = 10_000
    inputs = ["".join(p) for p in product("ABC", repeat=6)][::7]
    replies = await asyncio.gather(*(bot.router.handle(request("sort", s, user=s)) for s in inputs))
    for letters, reply in zip(inputs, replies, strict=True):
        assert f"{letters} → {''.join(sorted(letters))}" in reply.text
