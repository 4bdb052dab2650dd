"""Settings: environment prefix, .env, validation and masking of secrets."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from dikkat.config import Settings


def test_defaults_run_offline(settings: Settings) -> None:
    fresh = Settings()
    assert fresh.db_path == Path("var/dikkat.db")
    assert fresh.model_dir == Path("var/models")
    assert fresh.sentiment_encoder == "auto" and fresh.device == "auto" and fresh.lang == "tr"
    assert fresh.telegram_token is None and fresh.discord_token is None


def test_environment_and_dotenv(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("DIKKAT_MAX_BATCH_SIZE=7\nDIKKAT_LANG=en\n")
    monkeypatch.setenv("DIKKAT_MAX_BATCH_SIZE", "9")
    loaded = Settings()
    assert loaded.max_batch_size == 9
    assert loaded.lang == "en"


def test_admins_are_parsed_per_platform(settings: Settings) -> None:
    loaded = Settings(admins="telegram:123, discord:456")
    assert loaded.admin_ids() == {("telegram", "123"), ("discord", "456")}


@pytest.mark.parametrize("admins", ["123", "slack:1", "telegram:"])
def test_bad_admin_entries_are_rejected(settings: Settings, admins: str) -> None:
    with pytest.raises(ValidationError, match="DIKKAT_ADMINS"):
        Settings(admins=admins)


@pytest.mark.parametrize("device", ["gpu", "tpu:0"])
def test_bad_device_is_rejected(settings: Settings, device: str) -> None:
    with pytest.raises(ValidationError, match="device"):
        Settings(device=device)


def test_http_listens_only_on_this_machine_except_in_the_image(settings: Settings) -> None:
    assert Settings().http_host == "127.0.0.1"
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "DIKKAT_HTTP_HOST=0.0.0.0" in dockerfile  # the published port must reach it


def test_secrets_are_masked(settings: Settings) -> None:
    loaded = Settings(telegram_token="123:SECRET-TOKEN", discord_token="discord-secret")
    shown = str(loaded.masked())
    assert "SECRET-TOKEN" not in shown and "discord-secret" not in shown
    assert sorted(loaded.secrets()) == ["123:SECRET-TOKEN", "discord-secret"]
    assert "SECRET-TOKEN" not in repr(loaded)


def test_doctor_masks_secrets(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dikkat.cli import app

    monkeypatch.setenv("DIKKAT_TELEGRAM_TOKEN", "123:SECRET-TOKEN")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "SECRET-TOKEN" not in result.output
    assert "DIKKAT_TELEGRAM_TOKEN" in result.output and "sorter checkpoint" in result.output
