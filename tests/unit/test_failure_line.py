"""Errors that end a CLI command become one line without any configured secret."""

from __future__ import annotations

import discord
from telegram.error import InvalidToken

from dikkat.cli import failure_line
from dikkat.config import Settings

TOKEN = "123456:AAE-secret"
DISCORD = "MTA.secret.discord"


def test_rejected_tokens_and_other_errors_never_show_a_secret() -> None:
    settings = Settings(telegram_token=TOKEN, discord_token=DISCORD)
    telegram = failure_line(
        InvalidToken(f"The token `{TOKEN}` was rejected by the server."), settings
    )
    assert telegram == "Telegram rejected the token (401 Unauthorized): check DIKKAT_TELEGRAM_TOKEN"
    login = failure_line(
        discord.LoginFailure(f"Improper token has been passed: {DISCORD}"), settings
    )
    assert "check DIKKAT_DISCORD_TOKEN" in login and DISCORD not in login
    other = failure_line(RuntimeError(f"boom\nwith {TOKEN} and {DISCORD}"), settings)
    assert other == "Dikkat stopped: boom with ***** and *****"
