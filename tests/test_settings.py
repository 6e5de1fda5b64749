"""Operator settings: environment over TOML over secret files; names as in settings.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from escalator.errors import ConfigError
from escalator.settings import Settings, load_settings, split_host_port


def test_defaults_are_the_embedded_laptop_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings at all: SQLite under ./var, loopback listeners, dry run everywhere."""
    for name in ("ESCALATOR_CONFIG", "ESCALATOR_DATABASE_URL", "ESCALATOR_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.sqlite_path == Path("var/escalator.db")
    assert (settings.smtp_listen, settings.http_listen) == ("127.0.0.1:2525", "127.0.0.1:8025")
    assert settings.addresses == ("escalations@localhost", "critical-incident@localhost")
    assert settings.pagerduty_routing_key is None and settings.slack_bot_token is None
    assert settings.relay_url is None and settings.max_message_bytes == 10485760


def test_environment_wins_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TOML file named by ESCALATOR_CONFIG sets keys; the environment overrides them."""
    config = tmp_path / "escalator.toml"
    config.write_text(
        'addresses = ["a@example.org", "b@example.org"]\nsmtp_listen = "0.0.0.0:25"\n'
        'slack_alarm_channel = "alarms"\n'
    )
    monkeypatch.setenv("ESCALATOR_CONFIG", str(config))
    monkeypatch.setenv("ESCALATOR_SMTP_LISTEN", "127.0.0.1:2626")
    settings = load_settings()
    assert settings.addresses == ("a@example.org", "b@example.org")
    assert settings.smtp_listen == "127.0.0.1:2626"
    assert settings.slack_alarm_channel == "alarms"


def test_comma_separated_lists_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_ADDRESSES", " x@example.org , y@example.org,")
    assert load_settings().addresses == ("x@example.org", "y@example.org")


def test_secrets_directory_and_secret_masking(tmp_path: Path) -> None:
    """A Kubernetes-style secrets dir supplies the routing key; printing settings hides it."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "escalator_pagerduty_routing_key").write_text("R0UT1NGKEY")
    code = (
        "from escalator.settings import load_settings\n"
        "s = load_settings()\n"
        "print(s.pagerduty_routing_key.get_secret_value())\n"
        "print(repr(s))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"ESCALATOR_SECRETS_DIR": str(secrets), "PATH": "/usr/bin:/bin"},
    )
    first, rest = out.stdout.split("\n", 1)
    assert first == "R0UT1NGKEY"
    assert "R0UT1NGKEY" not in rest and "**********" in rest


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_CONFIG", "/nonexistent/escalator.toml")
    with pytest.raises(ConfigError, match="ESCALATOR_CONFIG"):
        load_settings()


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_MAX_MESSAGE_BYTES", "lots")
    with pytest.raises(ConfigError, match="max_message_bytes"):
        load_settings()


def test_postgres_url_means_no_sqlite_path() -> None:
    assert Settings(database_url="postgresql://u@127.0.0.1/db").sqlite_path is None
    assert Settings(database_url="sqlite:////tmp/x.db").sqlite_path == Path("/tmp/x.db")


@pytest.mark.parametrize(
    ("listen", "pair"),
    [("127.0.0.1:2525", ("127.0.0.1", 2525)), ("[::1]:25", ("::1", 25)), (":25", ("0.0.0.0", 25))],
)
def test_split_host_port(listen: str, pair: tuple[str, int]) -> None:
    assert split_host_port(listen, "ESCALATOR_SMTP_LISTEN") == pair


def test_split_host_port_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="ESCALATOR_SMTP_LISTEN"):
        split_host_port("localhost", "ESCALATOR_SMTP_LISTEN")
