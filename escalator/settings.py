"""Operator settings: environment, then a TOML file named by ESCALATOR_CONFIG, then a secrets dir.

Names and meanings are a contract (shared/spec/settings.md): the environment name is
ESCALATOR_<FIELD>, the TOML key is the field name. Secrets are SecretStr so they never print.
"""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from escalator.core.ackplace import DEFAULT_PATTERNS
from escalator.core.model import SenderPolicy
from escalator.errors import ConfigError

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split_commas(value: Any) -> Any:
    """Accept "a, b" from the environment and ["a", "b"] from TOML alike."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Every knob of the service; defaults run a laptop in dry-run mode."""

    model_config = SettingsConfigDict(
        env_prefix="ESCALATOR_",
        extra="ignore",
        frozen=True,
    )

    config: Path | None = None
    database_url: str | None = None
    data_dir: Path = Path("./var")
    smtp_listen: str = "127.0.0.1:2525"
    http_listen: str = "127.0.0.1:8025"
    addresses: CommaList = ("escalations@localhost", "critical-incident@localhost")
    max_message_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_recipients: int = Field(default=20, gt=0)
    max_connections: int = Field(default=200, gt=0)
    max_connections_per_client: int = Field(default=20, gt=0)
    sender_rate_limit: int = Field(default=0, ge=0)  # 0 = off
    client_rate_limit: int = Field(default=0, ge=0)  # 0 = off
    smtp_command_timeout: float = Field(default=300.0, gt=0)
    smtp_hostname: str = "escalator.localhost"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    require_tls: bool = False
    proxy_protocol: bool = False
    workers: int = Field(default=1, ge=1, le=64)

    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com"
    pagerduty_ca_file: Path | None = None
    pagerduty_webhook_secret: SecretStr | None = None
    pagerduty_api_token: SecretStr | None = None  # REST API, read-only: polls open incidents
    pagerduty_api_url: str = "https://api.pagerduty.com"
    pagerduty_poll_after: float = Field(default=600.0, gt=0)  # seconds of quiet before a poll
    unanswered_after: float = Field(default=900.0, gt=0)
    join_window: float = Field(default=1800.0, ge=0)
    handover_times: CommaList = ("09:00", "18:00")
    slack_bot_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_alarm_channel: str = "high-priority-alarms"
    slack_review_channel: str | None = None
    ack_channel_patterns: CommaList = DEFAULT_PATTERNS
    relay_url: SecretStr | None = None
    reply_from: str = "escalations@localhost"
    public_url: str = "http://127.0.0.1:8025"
    status_page_url: str | None = None
    retry_horizon_seconds: float = Field(default=600.0, gt=0)
    storm_window_seconds: float = Field(default=900.0, ge=0)
    sender_reply_limit: int = Field(default=10, ge=0)  # replies an hour to one address; 0 = off
    pagerduty_events_per_minute: int = Field(default=120, gt=0)

    timezone: str = "Europe/London"
    extra_holidays_file: Path | None = None
    rules_file: Path | None = None
    allowed_senders: CommaList = ()
    trusted_list_ids: CommaList = ()
    authserv_id: str | None = None
    sender_policy: SenderPolicy = SenderPolicy.ANNOTATE
    verify_dkim: bool = False

    review_token: SecretStr | None = None
    trusted_proxies: CommaList = ()
    identity_header: str = "X-Forwarded-Email"
    raw_retention_days: int = Field(default=30, gt=0)
    decision_retention_days: int = Field(default=365, gt=0)
    log_format: str = "auto"
    probe_key: SecretStr | None = None

    _split = field_validator(
        "addresses",
        "allowed_senders",
        "trusted_list_ids",
        "trusted_proxies",
        "ack_channel_patterns",
        "handover_times",
        mode="before",
    )(_split_commas)

    @field_validator("handover_times")
    @classmethod
    def _handover_times(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """HH:MM wall-clock times (ESCALATOR_HANDOVER_TIMES), e.g. "09:00,18:00"."""
        for text in value:
            try:
                time.fromisoformat(text)
            except ValueError:
                raise ValueError(f"handover time {text!r} is not HH:MM") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment wins over the TOML file, which wins over secret files."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("ESCALATOR_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def sqlite_path(self) -> Path | None:
        """Where the embedded store lives, or None when PostgreSQL is configured."""
        url = self.database_url
        if url is None:
            return self.data_dir / "escalator.db"
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///"))
        return None


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning every validation problem into one clear ConfigError."""
    toml_path = os.environ.get("ESCALATOR_CONFIG")
    if toml_path and not Path(toml_path).is_file():
        raise ConfigError(f"ESCALATOR_CONFIG names {toml_path!r}, which is not a readable file")
    try:
        secrets_dir = os.environ.get("ESCALATOR_SECRETS_DIR") or None
        # pydantic-settings takes the directory as an init-only argument the model does not declare.
        return Settings(_secrets_dir=secrets_dir, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read settings: {exc}") from None


def split_host_port(listen: str, setting: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port') to a pair, with the setting's name in any error."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{setting} must be host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an explicit empty host means all
