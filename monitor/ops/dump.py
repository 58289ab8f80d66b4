"""`monitor config dump`: the deployment settings in force, after `monitor.toml` and the
MONITOR_* environment, written back as TOML (or JSON) with every secret masked.

Owns turning a `Settings` into text that `config.load_settings` reads back to the same
settings (tests/ops/test_config_dump.py checks the round trip). Secrets never appear:
the SMTP password is only said to be set or not, and a password in a URL's user part is
replaced by `***`. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from monitor.models import Settings

MASK = "***"

# Settings field -> its key in monitor.toml, for the top-level values.
_TOP_LEVEL = (
    ("db_path", "database_path"),
    ("maildir", "maildir"),
    ("metrics_listen", "metrics_listen"),
    ("report_dir", "report_dir"),
    ("report_url", "report_url"),
)
_TABLES = ("smtp", "http", "schedule", "health")


def mask_url(url: str) -> str:
    """`https://user:secret@host/x` -> `https://user:***@host/x`; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def settings_as_data(settings: Settings) -> dict[str, Any]:
    """The settings as monitor.toml's keys and tables; None values left out, secrets masked."""
    data: dict[str, Any] = {}
    for attribute, key in _TOP_LEVEL:
        value = getattr(settings, attribute)
        if value is not None:
            data[key] = _plain(value)
    if "report_url" in data:
        data["report_url"] = mask_url(data["report_url"])
    for table in _TABLES:
        record = getattr(settings, table)
        section: dict[str, Any] = {}
        for item in fields(record):
            value = getattr(record, item.name)
            if item.name == "password":
                continue  # said separately, never shown
            if value is not None:
                section[item.name] = _plain(value)
        data[table] = section
    return data


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def dump_json(settings: Settings, *, sources: dict[str, str]) -> str:
    data = settings_as_data(settings)
    data["smtp"]["password"] = MASK if settings.smtp.password else None
    return json.dumps({"sources": sources, "settings": data}, indent=2, ensure_ascii=False)


def dump_toml(settings: Settings, *, sources: dict[str, str]) -> str:
    """The settings as a monitor.toml that loads back to them (the password aside)."""
    data = settings_as_data(settings)
    lines = ["# The settings in force (monitor config dump): files, then environment."]
    lines += [f"# {name}: {where}" for name, where in sources.items()]
    lines.append("")
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{name} = {_toml_value(item)}" for name, item in value.items()]
            if key == "smtp":
                state = "set, not shown" if settings.smtp.password else "not set"
                lines.append(f"# password: {state}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string: the same escapes (\", \\, \n, \uXXXX),
        # except that TOML also refuses a raw DEL.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
