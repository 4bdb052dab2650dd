"""/start, /help and /sort through the Router with the real sorter behind the batcher."""

import pytest

from dikkat.bot.router import Router
from dikkat.bot.types import Request
from dikkat.config import Settings
from dikkat.inference.service import InferenceService


def request(command: str, args: str = "", lang: str | None = None) -> Request:
    return Request("console", "u1", "c1", command, args, lang)


@pytest.fixture
def router(service: InferenceService, settings: Settings) -> Router:
    return Router(service, settings)


async def test_sort_answers_sorted_letters(router: Router) -> None:
    reply = await router.handle(request("sort", "CBABBC"))
    assert "ABBBCC" in reply.text


async def test_sort_accepts_spaces_commas_and_lower_case(router: Router) -> None:
    assert "ABBBCC" in (await router.handle(request("sort", "c b a, b b c"))).text


@pytest.mark.parametrize("args", ["", "ABCD", "XYZXYZ", "A" * 10_000, "ABCABCA", "🙂🙂🙂🙂🙂🙂"])
async def test_bad_sort_input_gets_usage_in_turkish_by_default(router: Router, args: str) -> None:
    reply = await router.handle(request("sort", args))
    assert "Örnek: /sort CBABBC" in reply.text
    assert "A, B ve C" in reply.text


async def test_bad_sort_input_gets_usage_in_english_for_english_clients(router: Router) -> None:
    reply = await router.handle(request("sort", "XYZXYZ", lang="en-GB"))
    assert reply.text.startswith("Please send exactly 6 letters")
    assert "Example: /sort CBABBC" in reply.text


async def test_help_lists_every_command_with_an_example(router: Router) -> None:
    turkish = (await router.handle(request("help"))).text
    english = (await router.handle(request("help", lang="en"))).text
    for command in router.commands:
        assert f"/{command}" in turkish and f"/{command}" in english
    assert "/sort CBABBC" in turkish and "Komutlar" in turkish and "Commands" in english


async def test_start_greets_in_the_users_language(router: Router) -> None:
    assert "Merhaba" in (await router.handle(request("start"))).text
    assert "Hi" in (await router.handle(request("start", lang="en"))).text


async def test_unknown_command_points_to_help(router: Router) -> None:
    reply = await router.handle(request("frobnicate"))
    assert "/help" in reply.text and "/frobnicate" in reply.text


async def test_concurrent_sorts_are_all_correct(router: Router) -> None:
    import asyncio
    from itertools import product

    inputs = ["".join(p) for p in product("ABC", repeat=6)][::7]
    replies = await asyncio.gather(*(router.handle(request("sort", s)) for s in inputs))
    for letters, reply in zip(inputs, replies, strict=True):
        assert "".join(sorted(letters)) in reply.text
