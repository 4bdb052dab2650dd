"""Argument parsing for /sort and command splitting."""

import pytest

from dikkat.bot.validation import InvalidInput, parse_sort_input, split_command


@pytest.mark.parametrize(
    ("raw", "letters"),
    [
        ("CBABBC", "CBABBC"),
        ("cbabbc", "CBABBC"),
        ("c b a b b c", "CBABBC"),
        ("C,B,A, B,B,C", "CBABBC"),
        ("  aaaaaa\n", "AAAAAA"),
    ],
)
def test_accepts_six_letters_case_insensitive_ignoring_spaces_and_commas(
    raw: str, letters: str
) -> None:
    assert parse_sort_input(raw) == letters


@pytest.mark.parametrize(
    "raw", ["", "ABCD", "XYZXYZ", "ABCABCA", "A" * 10_000, "ABCAB1", "ABC;ABC", "ÄBCABC", "ıııııı"]
)
def test_rejects_everything_else(raw: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_sort_input(raw)
    assert error.value.key == "sort_usage"


def test_split_command() -> None:
    assert split_command("/sort@dikkat_bot CBA BBC") == ("sort", "CBA BBC", "dikkat_bot")
    assert split_command("/HELP") == ("help", "", None)
    assert split_command("merhaba dünya") == (None, "merhaba dünya", None)


def test_printable_drops_terminal_escapes_but_keeps_text_and_newlines() -> None:
    from dikkat.bot.types import parse_id, printable

    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    hostile = f"/\x1b]0;X\x07 ok\nçok güzel {family} \u202eabc"
    assert printable(hostile) == f"/]0;X ok\nçok güzel {family} abc"
    assert [parse_id(s) for s in ("12", " 7 ", "²", "0", "-3", "1" * 19, "")] == [
        12, 7, None, None, None, None, None,
    ]  # fmt: skip
