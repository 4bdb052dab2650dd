"""Logs: secrets never reach a line, in text or JSON, messages or tracebacks."""

import json
import logging

import pytest

from dikkat.logs import configure_logging

SECRET = "123456:SECRET-token"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_everywhere(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", fmt, [SECRET])
    log = logging.getLogger("dikkat.test")
    log.info("calling https://api.telegram.org/bot%s/getMe", SECRET)
    log.info("plain", extra={"url": f"bot{SECRET}"})
    try:
        raise RuntimeError(f"failed for {SECRET}")
    except RuntimeError:
        log.exception("boom")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert err.count("*****") >= (3 if fmt == "json" else 2)  # text lines omit `extra`
    assert "RuntimeError: failed for *****" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert lines[0]["message"].endswith("/bot*****/getMe")
        assert lines[1]["url"] == "bot*****"


def test_request_log_line_has_command_platform_latency_and_outcome(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json", [])
    logging.getLogger("dikkat.bot.router").info(
        "handled",
        extra={
            "command": "sort",
            "platform": "telegram",
            "outcome": "ok",
            "latency_ms": 3.2,
            "batch_size": 4,
        },
    )
    entry = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert {k: entry[k] for k in ("command", "platform", "outcome", "batch_size")} == {
        "command": "sort",
        "platform": "telegram",
        "outcome": "ok",
        "batch_size": 4,
    }


async def test_debug_level_does_not_log_sql_with_user_text(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dikkat.storage.store import Store

    configure_logging("DEBUG", "text", [])
    store = await Store.open(tmp_path / "d.db")
    try:
        await store.set_language("telegram", "4242", "en")
    finally:
        await store.close()
    assert "4242" not in capsys.readouterr().err
    configure_logging("DEBUG", "text", [], debug_loggers="aiosqlite")
    store = await Store.open(tmp_path / "d.db")
    try:
        await store.set_language("telegram", "4343", "en")
    finally:
        await store.close()
    assert "4343" in capsys.readouterr().err
    configure_logging("WARNING", "text", [])
