"""Running `monitor` in-process (click's runner) with a clean environment and folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from monitor.cli.app import cli

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str | None]:
    """No MONITOR_* or systemd variable of the developer's shell leaks into a test."""
    env: dict[str, str | None] = {
        name: None
        for name in os.environ
        if name.startswith("MONITOR_") or name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    }
    env.update(extra)
    return env


def monitor(*args: str, env: dict[str, str] | None = None) -> Ran:
    result = CliRunner().invoke(cli, list(args), env=clean_env(**(env or {})))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is a bug: let pytest show it
    return Ran(result.exit_code, result.stdout, result.stderr)


def one_error_line(ran: Ran) -> str:
    """The single `monitor: …` line a refused command prints, nothing else."""
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("monitor: "), ran.err
    return lines[0]
