"""What a command has imported when it is done, read from `sys.modules` in a fresh process.

A small `-c` wrapper runs the CLI's `main` exactly as `python -m monitor` does, then
writes the sorted module names to a file. Every module a query command does not need is
start-up time on every command (issue 17): the HTTP client, the scheduler and the feed
parser never; and no YAML, TOML, email package, logging, dateutil or mail composition
where the command has no use for them. (tests/cli/test_cli_startup.py checks the same
family of rules through `-X importtime`; bench/query.py times the commands.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import build_database

REPO = Path(__file__).resolve().parents[2]

WRAPPER = """
import sys
from monitor.cli import main
out, sys.argv = sys.argv[1], ["monitor", *sys.argv[2:]]
status = 0
try:
    main()
except SystemExit as exc:
    status = exc.code if isinstance(exc.code, int) else 1
with open(out, "w", encoding="utf-8") as f:
    f.write("\\n".join(sorted(sys.modules)))
sys.exit(status)
"""

NEVER = ("httpx", "httpcore", "apscheduler", "feedparser", "numpy", "monitor.pipeline")


def modules_after(args: list[str], *, cwd: Path) -> tuple[int, set[str]]:
    """Run `monitor ARGS` through the wrapper; its exit status and `sys.modules` at the end."""
    out = cwd / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), done.stderr[-2000:]
    return done.returncode, set(out.read_text(encoding="utf-8").split())


def loaded(modules: set[str], *names: str) -> set[str]:
    """The names given that `modules` holds, or a submodule of which it holds."""
    return {n for n in names if any(m == n or m.startswith(n + ".") for m in modules)}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_database(tmp_path_factory.mktemp("imports") / "m.db")


QUERIES = {
    "history table": ["history", "--since", "2022-09-01", "--until", "2022-10-01", "--every", "1d"],
    "history csv": ["history", "--since", "2022-09-01", "--until", "2022-10-01", "--format", "csv"],
    "history raw table": ["history", "-t", "kg-tj", "--since", "2022-09-01T00:00Z"],
    "alerts": ["alerts"],
    "explain": ["explain", "-t", "kg-tj"],
    "articles": ["articles", "--since", "2022-09-01"],
    "feeds": ["feeds"],
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_a_query_command_loads_no_network_scheduler_parser_yaml_or_mail(
    name: str, database: Path, tmp_path: Path
) -> None:
    code, modules = modules_after(["--db", str(database), *QUERIES[name]], cwd=tmp_path)
    assert code == 0
    assert "monitor.db" in modules  # it did run its query
    assert loaded(modules, *NEVER) == set()
    # it reads no watch list or settings file, composes no email, parses dates itself
    assert loaded(modules, "yaml", "tomllib", "email") == set()
    if name != "alerts":  # which names the indicators of its reasons as the emails do
        assert loaded(modules, "monitor.deliver.content") == set()
    assert loaded(modules, "dateutil") == set()
    # nothing it runs logs, so it configures no logging (app.LOGLESS_COMMANDS)
    assert loaded(modules, "logging") == set()


def test_a_query_with_its_database_from_settings_reads_toml_only(
    database: Path, tmp_path: Path
) -> None:
    settings = tmp_path / "monitor.toml"
    settings.write_text(f'database_path = "{database}"\n', encoding="utf-8")
    code, modules = modules_after(
        ["--config", str(settings), "history", "--every", "1d"], cwd=tmp_path
    )
    assert code == 0
    assert "tomllib" in modules and "monitor.config" in modules  # it did read the settings
    # no YAML (the watch list is not read) and no email package (no address to check)
    assert loaded(modules, *NEVER, "yaml", "email", "monitor.deliver.addresses") == set()


def test_help_configures_no_logging(tmp_path: Path) -> None:
    code, modules = modules_after(["--help"], cwd=tmp_path)
    assert code == 0
    assert loaded(modules, *NEVER, "logging", "monitor.config", "monitor.db") == set()


def test_an_unusual_time_still_goes_to_dateutil(database: Path, tmp_path: Path) -> None:
    # an ISO week date: not one of the usual forms the standard library reads
    code, modules = modules_after(
        ["--db", str(database), "history", "--since", "2022-W35-1", "--until", "2022-10-01"],
        cwd=tmp_path,
    )
    assert code == 0
    assert "dateutil.parser" in modules


def test_the_default_sender_needs_no_check_at_load() -> None:
    """Settings skip the address check (and its email import) for the built-in sender:
    that is only right while the built-in sender passes it."""
    from monitor.deliver.addresses import parse_address
    from monitor.models import SmtpSettings

    parse_address(SmtpSettings().sender, "")  # raises ValueError for a bad address


# The commands of other modules load only when one of them runs (`LAZY_COMMANDS`).
COMMAND_MODULES = (
    "monitor.cli.query_commands",
    "monitor.cli.ops_commands",
    "monitor.cli.data_commands",
    "monitor.cli.replay_command",
)


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["--help"], set()),
        (["history", "--help"], set()),
        (["--db", "{db}", "history", "--since", "2022-09-01"], set()),
        (["--db", "{db}", "explain", "-t", "kg-tj"], set()),
        (["--db", "{db}", "alerts"], set()),
        (["--db", "{db}", "feeds"], {"monitor.cli.ops_commands"}),
        (["--db", "{db}", "articles", "--since", "2022-09-01"], {"monitor.cli.query_commands"}),
        (["--db", "{db}", "status"], {"monitor.cli.query_commands"}),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_command_imports_no_other_command_module(
    args: list[str], needs: set[str], database: Path, tmp_path: Path
) -> None:
    code, modules = modules_after([a.format(db=database) for a in args], cwd=tmp_path)
    assert code in ((0, 1, 2) if "status" in args else (0,))
    assert loaded(modules, *COMMAND_MODULES) == needs


def test_the_logless_commands_are_the_query_commands_checked_here() -> None:
    from monitor.cli.app import LOGLESS_COMMANDS

    assert {args[0] for args in QUERIES.values()} == LOGLESS_COMMANDS


def test_a_query_command_with_verbose_logs_as_every_command_does(
    database: Path, tmp_path: Path
) -> None:
    code, modules = modules_after(["-v", "--db", str(database), "feeds"], cwd=tmp_path)
    assert code == 0 and "logging" in modules
    bad = subprocess.run(
        [sys.executable, "-m", "monitor", "--db", str(database), "feeds"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "MONITOR_LOG_LEVEL": "LOUD"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "MONITOR_LOG_LEVEL: unknown level 'LOUD'" in bad.stderr
