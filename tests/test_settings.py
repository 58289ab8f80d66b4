"""Deployment settings: monitor.toml + MONITOR_* environment, strict one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(None, {})
    assert settings.db_path == Path("monitor.db")
    assert settings.smtp.port == 25 and settings.smtp.recipients == ()
    assert settings.http.allow_private_networks == ()


def test_state_directory_sets_the_default_database() -> None:
    settings = load_settings(None, {"STATE_DIRECTORY": "/var/lib/monitor"})
    assert settings.db_path == Path("/var/lib/monitor/monitor.db")


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
database_path = "/tmp/x.db"
[smtp]
host = "mail.example.org"
security = "starttls"
recipients = ["a@example.org"]
[http]
max_body_bytes = 1024
allow_private_networks = ["10.0.0.0/8"]
[schedule]
score_tick_seconds = 60
""",
    )
    env = {"MONITOR_SMTP_RECIPIENTS": "x@example.org, y@example.org", "MONITOR_DB": "/tmp/y.db"}
    settings = load_settings(path, env)
    assert settings.db_path == Path("/tmp/y.db")
    assert settings.smtp.host == "mail.example.org" and settings.smtp.port == 587
    assert settings.smtp.recipients == ("x@example.org", "y@example.org")
    assert settings.http.max_body_bytes == 1024
    assert settings.http.allow_private_networks == ("10.0.0.0/8",)
    assert settings.schedule.score_tick_seconds == 60


def test_password_comes_from_environment_or_credential_and_is_never_shown(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "smtp-password").write_text("s3cret\n", encoding="utf-8")
    settings = load_settings(None, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert settings.smtp.password == "s3cret"
    assert "s3cret" not in repr(settings)
    settings = load_settings(None, {"MONITOR_SMTP_PASSWORD": "fromenv"})
    assert settings.smtp.password == "fromenv"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        pytest.param(
            "[smtp]\nhots = 'x'\n",
            {},
            "monitor.toml: smtp.hots: unknown key (expected one of: ",
            id="unknown-key",
        ),
        pytest.param(
            "[smtp]\nport = 'twenty-five'\n",
            {},
            "monitor.toml: smtp.port: expected a whole number, got 'twenty-five'",
            id="wrong-type",
        ),
        pytest.param(
            "[smtp]\nsecurity = 'ssl'\n",
            {},
            "monitor.toml: smtp.security: expected one of none, starttls, tls, got 'ssl'",
            id="bad-choice",
        ),
        pytest.param(
            "[smtp]\nrecipients = ['desk at example.org']\n",
            {},
            "monitor.toml: smtp.recipients[0]: 'desk at example.org' is not an email address (user@domain)",
            id="bad-recipient",
        ),
        pytest.param(
            "[http]\nallow_private_networks = ['localhost']\n",
            {},
            "monitor.toml: http.allow_private_networks[0]: not a network in CIDR form",
            id="bad-cidr",
        ),
        pytest.param(
            "metrics_listen = 'everywhere'\n",
            {},
            "monitor.toml: metrics_listen: 'everywhere': expected HOST:PORT",
            id="bad-listen",
        ),
        pytest.param("[smtp\n", {}, "monitor.toml: invalid TOML", id="bad-toml"),
        pytest.param(
            "",
            {"MONITOR_SMTP_PORT": "abc"},
            "environment: MONITOR_SMTP_PORT: expected a whole number, got 'abc'",
            id="bad-env",
        ),
        pytest.param(
            "[smtp]\npassword_file = '/nonexistent/pw'\n",
            {},
            "monitor.toml: smtp.password_file: cannot read the SMTP password file",
            id="missing-password-file",
        ),
        pytest.param(
            "[smtp]\nsecurity = 'tls'\nca_file = '/nonexistent/ca.pem'\n",
            {},
            "monitor.toml: smtp.ca_file: no such file: /nonexistent/ca.pem",
            id="missing-ca-file",
        ),
        pytest.param(
            "[smtp]\nsecurity = 'starttls'\nca_file = '/etc/passwd'\n",
            {},
            "monitor.toml: smtp.ca_file: not a readable PEM file of CA certificates",
            id="ca-file-not-pem",
        ),
        pytest.param(
            "[smtp]\nca_file = 'monitor.toml'\n",
            {},
            "monitor.toml: smtp.ca_file: only used with security starttls or tls",
            id="ca-file-without-tls",
        ),
        pytest.param(
            "[health]\nquiet_period_hours = 'a day'\n",
            {},
            "monitor.toml: health.quiet_period_hours: expected a number of hours from 0 (off) "
            "to 8760, got 'a day'",
            id="quiet-period-text",
        ),
        pytest.param(
            "[health]\nquiet_period_hours = -1\n",
            {},
            "monitor.toml: health.quiet_period_hours: expected a number of hours from 0 (off) "
            "to 8760, got -1",
            id="quiet-period-negative",
        ),
        pytest.param(
            "[health]\nquiet_period_hours = inf\n",
            {},
            "monitor.toml: health.quiet_period_hours: expected a number of hours from 0 (off) "
            "to 8760, got inf",
            id="quiet-period-infinite",
        ),
        pytest.param(
            "[health]\nquiet_period_hours = nan\n",
            {},
            "monitor.toml: health.quiet_period_hours: expected a number of hours",
            id="quiet-period-nan",
        ),
        pytest.param(
            "[health]\nquiet_period_hours = true\n",
            {},
            "monitor.toml: health.quiet_period_hours: expected a number of hours",
            id="quiet-period-bool",
        ),
        pytest.param(
            "[health]\nquiet_hours = 3\n",
            {},
            "monitor.toml: health.quiet_hours: unknown key (expected one of: quiet_period_hours)",
            id="health-unknown-key",
        ),
    ],
)
def test_bad_settings_stop_with_one_line(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env)
    error = str(caught.value).replace(str(path), "monitor.toml")
    assert error.startswith(message), error
    assert "\n" not in error
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("text", "hours"), [("", 24.0), ("[health]\nquiet_period_hours = 6\n", 6.0),
                                             ("[health]\nquiet_period_hours = 0.5\n", 0.5),
                                             ("[health]\nquiet_period_hours = 0\n", 0.0)])  # fmt: skip
def test_the_quiet_period(tmp_path: Path, text: str, hours: float) -> None:
    assert load_settings(write(tmp_path, text), {}).health.quiet_period_hours == hours


def test_missing_settings_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", {})
