"""Settings from the environment (DIKKAT_*), a .env file, and defaults that run offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Language = Literal["tr", "en"]
Role = Literal["all", "frontend", "inference", "trainer"]
PLATFORMS = ("telegram", "discord", "console")


def cron_trigger(spec: str) -> Any:
    """An APScheduler CronTrigger (UTC) from a crontab line: 5 fields, or 6 with seconds first."""
    from apscheduler.triggers.cron import CronTrigger

    fields = spec.split()
    if len(fields) != 6:
        return CronTrigger.from_crontab(spec, timezone="UTC")
    names = ("second", "minute", "hour", "day", "month", "day_of_week")
    return CronTrigger(timezone="UTC", **dict(zip(names, fields, strict=True)))


def cron_slot(spec: str, when: float) -> str:
    """The schedule slot a run at `when` belongs to: its minute, or its second for a 6-field
    crontab; two schedulers firing the same slot name it alike."""
    seconds = len(spec.split()) == 6
    return "cron:" + time.strftime(
        "%Y-%m-%dT%H:%M" + (":%S" if seconds else "") + "Z", time.gmtime(when)
    )


class Settings(BaseSettings):
    """Every knob of Dikkat; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="DIKKAT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    db_path: Path = Path("./var/dikkat.db")
    database_url: SecretStr | None = None
    model_dir: Path = Path("./var/models")

    role: Role = "all"
    ray_address: str | None = None
    ray_app: str = "dikkat"
    ray_replicas: int = Field(2, ge=1)
    ray_replica_cpus: float = Field(1.0, gt=0)
    ray_torch_threads: int = Field(1, ge=1)

    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_register_webhook: bool = True
    discord_token: SecretStr | None = None
    discord_api_url: str | None = None  # None: discord.py's own https://discord.com/api/v10
    discord_guild_id: int | None = None
    discord_shard_ids: str = ""
    discord_shard_count: int | None = Field(None, ge=1)
    admins: str = ""

    sentiment_encoder: str = "auto"
    sentiment_max_length: int = Field(128, ge=8, le=512)
    sentiment_pooling: Literal["cls", "mean"] = "mean"
    encoder_precision: Literal["auto", "fp32", "int8"] = "auto"  # auto: int8 (CPU) for e5
    encoder_layers: int | None = Field(None, ge=1)  # the first N layers only; None: all
    hub_probe_timeout_s: float = Field(3.0, ge=0)
    device: str = "auto"

    max_batch_size: int = Field(32, ge=1)
    max_batch_tokens: int = Field(8192, ge=1)
    max_wait_ms: float = Field(5.0, ge=0)
    max_queue: int = Field(512, ge=1)
    min_padding_efficiency: float = Field(0.8, ge=0, le=1)
    request_timeout_s: float = Field(30.0, gt=0)
    gil_switch_ms: float = Field(1.0, gt=0, le=100)

    retrain_cron: str = "0 3 * * *"
    retrain_min_feedback: int = Field(20, ge=0)
    retrain_tolerance: float = Field(0.05, ge=0)
    retrain_confidence: float = Field(0.9, gt=0.5, lt=1)
    retrain_feedback_weight: float = Field(3.0, ge=1, le=100)
    retrain_max_labels_per_user: int = Field(200, ge=1)
    retrain_feedback_holdout: float = Field(0.2, ge=0, lt=1)
    retrain_min_feedback_eval: int = Field(20, ge=1)
    retrain_nice: int = Field(19, ge=0, le=19)
    head_poll_s: float = Field(5.0, ge=0)

    rate_limit_per_minute: float = Field(20.0, gt=0)
    rate_limit_burst: int = Field(5, ge=1)

    http_host: str = Field("127.0.0.1", min_length=1)  # the image sets 0.0.0.0
    http_port: int = Field(8080, ge=0, le=65535)
    drain_s: float = Field(20.0, gt=0)  # on a stop: time to deliver the answers in flight
    lang: Language = "tr"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    debug_loggers: str = ""

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda") or value.startswith("cuda:"):
            return value
        raise ValueError("device must be auto, cpu, cuda or cuda:N")

    @field_validator("retrain_cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        try:
            cron_trigger(value)
        except ValueError as error:
            raise ValueError(
                f"DIKKAT_RETRAIN_CRON {value!r} is not a crontab line: {error}"
            ) from None
        return value

    @model_validator(mode="after")
    def _check_admins(self) -> Settings:
        self.admin_ids()
        self.shard_ids()
        return self

    def encoder_options(self) -> dict[str, Any]:
        """`load_encoder`'s keyword arguments for the configured sentiment encoder."""
        return dict(
            max_length=self.sentiment_max_length,
            pooling=self.sentiment_pooling,
            device=self.device,
            probe_timeout_s=self.hub_probe_timeout_s,
            model_dir=self.model_dir,
            precision=self.encoder_precision,
            layers=self.encoder_layers,
        )

    def console(self) -> bool:
        """Whether `dikkat run` chats on the console: a frontend role (`all` includes it) with no
        chat token; trainers and inference deployers chat with no one."""
        no_token = self.telegram_token is None and self.discord_token is None
        return self.role in ("all", "frontend") and no_token

    def shard_ids(self) -> list[int] | None:
        """DIKKAT_DISCORD_SHARD_IDS `0,1` as [0, 1]; None when unset (one process, one shard)."""
        if not self.discord_shard_ids.strip():
            return None
        try:
            ids = sorted({int(part) for part in self.discord_shard_ids.split(",") if part.strip()})
        except ValueError:
            raise ValueError("DIKKAT_DISCORD_SHARD_IDS must look like 0,1,2") from None
        if self.discord_shard_count is None or not all(
            0 <= i < self.discord_shard_count for i in ids
        ):
            raise ValueError(
                "DIKKAT_DISCORD_SHARD_IDS needs DIKKAT_DISCORD_SHARD_COUNT, and every id below it"
            )
        return ids

    def admin_ids(self) -> frozenset[tuple[str, str]]:
        """Parse `telegram:123,discord:456` into {(platform, user_id)}."""
        admins: set[tuple[str, str]] = set()
        for entry in filter(None, (part.strip() for part in self.admins.split(","))):
            platform, sep, user_id = entry.partition(":")
            if not sep or platform not in PLATFORMS or not user_id.strip():
                raise ValueError(
                    f"DIKKAT_ADMINS entry {entry!r} must look like telegram:123 or discord:456"
                )
            admins.add((platform, user_id.strip()))
        return frozenset(admins)

    def masked(self) -> dict[str, object]:
        """The resolved configuration with every secret masked, for `dikkat doctor` and logs."""
        shown: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(getattr(self, name), SecretStr):
                shown[name] = "***** (set)"
            elif value is None:
                shown[name] = "-"
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        return shown

    def secrets(self) -> list[str]:
        """The plain values of every configured secret (for log redaction)."""
        values = [
            value.get_secret_value()
            for value in (self.telegram_token, self.discord_token, self.telegram_webhook_secret)
            if value is not None and value.get_secret_value()
        ]
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            password = urlsplit(url).password
            values += [url, password] if password else [url]
        return values
