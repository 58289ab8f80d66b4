"""What every `monitor` command shares: the global options' context, one-line errors,
time arguments and the `--format` option. Command modules (`cli`, `cli_query`,
`replay`) import from here, so none of them needs another's module at import time.

Imports stay light: `monitor --help` and the read-only query commands must answer at
once (issue 17), so the configuration (YAML, the rule compiler) and the database module
are imported when a command first needs them, and nothing here pulls in an HTTP client,
the scheduler, the feed parser or numpy (tests/cli/test_cli_startup.py).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from monitor.cli import output
from monitor.cli.timeparse import TimeArgumentError, parse_time
from monitor.errors import MonitorError

if TYPE_CHECKING:
    from pathlib import Path

    from monitor import db
    from monitor.config import Config
    from monitor.models import AlertSettings, Settings

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """What the global options say; the configuration is loaded on first use."""

    def __init__(self, config_path: str | None, indicators_path: str | None, db_path: str | None):
        self.config_path = config_path
        self.indicators_path = indicators_path
        self.db_path = db_path
        self._config: Config | None = None

    def load(self) -> Config:
        from monitor.config import load_config

        return load_config(
            indicators_path=self.indicators_path,
            settings_path=self.config_path,
            db_path=self.db_path,
        )

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self.load()
        return self._config

    @property
    def settings(self) -> Settings:
        """The deployment settings, without reading the watch list (query commands)."""
        if self._config is not None:
            return self._config.settings
        from monitor.config import load_deployment

        settings, _ = load_deployment(settings_path=self.config_path, db_path=self.db_path)
        return settings

    def alert_settings(self) -> AlertSettings:
        """The watch list's alert settings, without compiling its rules (`status`)."""
        if self._config is not None:
            return self._config.alerts
        from monitor.config import load_alert_settings

        return load_alert_settings(indicators_path=self.indicators_path)

    def db_path_for_reading(self) -> Path:
        """The database path, without reading the watch list when only the path is needed."""
        if self.db_path:
            from pathlib import Path

            return Path(self.db_path)
        return self.settings.db_path

    def open_readonly(self) -> db.Store:
        from monitor import db

        return db.Store.open(self.db_path_for_reading(), readonly=True)


def handle_errors(func: F) -> F:
    """Turn expected failures into one line on stderr and the right exit status: 2 for a
    usage or configuration error, 1 for a failure at run time (a `MonitorError`'s own
    status, or an OS error on a path such as a folder that cannot be written)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MonitorError as exc:
            click.echo(f"monitor: {exc}", err=True)
            sys.exit(exc.exit_code)
        except TimeArgumentError as exc:
            click.echo(f"monitor: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            # a path the user named: unwritable, missing, a folder where a file goes...
            click.echo(f"monitor: {describe_os_error(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def describe_os_error(exc: OSError) -> str:
    """One line: the path and what went wrong with it ("demo-out: Permission denied")."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        path = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            return f"{path} -> {os.fsdecode(exc.filename2)}: {reason}"
        return f"{path}: {reason}"
    return reason


def utcnow() -> datetime:
    return datetime.now(UTC)


def time_option(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value, now=utcnow())


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(output.FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
