"""`monitor config dump`: the settings in force, read back identical, secrets never shown."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from monitor.config import load_settings
from tests.ops.support import monitor, one_error_line

SECRET = "s3cret-pa55word"


def write_settings(folder: Path) -> Path:
    (folder / "password").write_text(SECRET + "\n", encoding="utf-8")
    path = folder / "monitor.toml"
    path.write_text(
        f"""
database_path = "{folder / "state.db"}"
report_url = "https://desk:{SECRET}@reports.example.org/risk/"

[smtp]
host = "relay.example.org"
security = "starttls"
username = "monitor"
password_file = "{folder / "password"}"
recipients = ["desk@example.org", "Duty Officer <duty@example.org>"]

[http]
allow_private_networks = ["10.0.0.0/8"]
max_redirects = 3

[schedule]
poll_tick_seconds = 30
""",
        encoding="utf-8",
    )
    return path


def test_dump_reads_back_as_the_same_settings(tmp_path: Path) -> None:
    settings_file = write_settings(tmp_path)
    environment = {"MONITOR_SMTP_PORT": "2525", "MONITOR_SMTP_SENDER": "alerts@example.org"}
    ran = monitor("--config", str(settings_file), "config", "dump", env=environment)
    assert ran.code == 0, ran.err
    assert "MONITOR_SMTP_PORT, MONITOR_SMTP_SENDER" in ran.out  # which variables applied
    assert "port = 2525" in ran.out and "poll_tick_seconds = 30" in ran.out
    assert SECRET not in ran.out
    assert "# password: set, not shown" in ran.out
    dumped = tmp_path / "dumped.toml"
    dumped.write_text(ran.out, encoding="utf-8")
    expected = load_settings(settings_file, env=environment)
    again = load_settings(dumped, env={})
    # the password is never written; the report URL's password is masked
    assert again == replace(
        expected,
        smtp=replace(expected.smtp, password=None),
        report_url="https://desk:***@reports.example.org/risk/",
    )


def test_dump_as_json_masks_the_password_from_the_environment(tmp_path: Path) -> None:
    ran = monitor("config", "dump", "--format", "json", env={"MONITOR_SMTP_PASSWORD": SECRET})
    assert ran.code == 0, ran.err
    assert SECRET not in ran.out
    document = json.loads(ran.out)
    assert document["settings"]["smtp"]["password"] == "***"
    assert document["sources"]["environment"] == "MONITOR_SMTP_PASSWORD"
    assert document["sources"]["settings file"].startswith("(none")


def test_dump_without_password_says_not_set() -> None:
    ran = monitor("config", "dump")
    assert ran.code == 0 and "# password: not set" in ran.out


def test_dump_of_a_broken_settings_file_is_the_loading_error(tmp_path: Path) -> None:
    broken = tmp_path / "monitor.toml"
    broken.write_text("[smtp]\nport = 'twenty-five'\n", encoding="utf-8")
    ran = monitor("--config", str(broken), "config", "dump")
    assert ran.code == 2
    assert one_error_line(ran) == (
        f"monitor: {broken}: smtp.port: expected a whole number, got 'twenty-five'"
    )


def test_check_config_still_answers_beside_the_config_group() -> None:
    ran = monitor("check-config")
    assert ran.code == 0 and "configuration OK" in ran.out


def test_odd_characters_survive_the_round_trip(tmp_path: Path) -> None:
    settings_file = tmp_path / "monitor.toml"
    settings_file.write_text(
        '[http]\ncontact_url = "https://x.example/?q=\\"a\\"\\\\b\\u007f\\u0001 ц # not a comment"\n',
        encoding="utf-8",
    )
    ran = monitor("--config", str(settings_file), "config", "dump")
    assert ran.code == 0, ran.err
    dumped = tmp_path / "dumped.toml"
    dumped.write_text(ran.out, encoding="utf-8")
    assert load_settings(dumped, env={}) == load_settings(settings_file, env={})
