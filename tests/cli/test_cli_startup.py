"""Commands answer at once: what each command imports, checked in a fresh interpreter.

A query command (and `--help`) must not load the HTTP client, the scheduler, the feed
parser, numpy (sqlite-utils imports it where it is installed), the daemon's pipeline or
the rule compiler: together they cost most of a second of start-up (issue 17). This is a
behaviour test (which modules a process imported, from `python -X importtime`), not a
timing test; bench/query.py times the commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from monitor.cli.app import LAZY_COMMANDS, cli
from monitor.errors import ConfigError
from tests.support.cli import build_database

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "config"

# What no query command may load: network, scheduling, feed parsing, numpy, the pipeline.
NEVER = frozenset(
    {
        "httpx",
        "httpcore",
        "anyio",
        "apscheduler",
        "feedparser",
        "numpy",
        "sqlite_utils",
        "monitor.lab.replay",
        "monitor.cli.replay_command",
        "monitor.pipeline",
        "monitor.fetch.fetcher",
        "monitor.fetch.parser",
        "monitor.fetch.parse_sandbox",
        "monitor.service.daemon",
        # `monitor.score.stories` may load (db imports its pure rules); its stemmer and the feed
        # parser it uses load on first use, and stay forbidden here.
    }
)
# ... nor, unless it validates the watch list, the rule compiler and its stemmers.
COMPILER = frozenset(
    {"monitor.detect.rules", "monitor.detect.matcher", "monitor.detect.text", "snowballstemmer"}
)
# `--help` reads no configuration and no database at all.
HELP_EXTRA = frozenset({"yaml", "tabulate", "monitor.config", "monitor.db", "dateutil"})


def imported_modules(args: list[str], *, cwd: Path) -> tuple[int, set[str]]:
    """Run `python -X importtime -m monitor ARGS`; its exit status and every module it
    imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "monitor", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                modules.add(name)
    assert modules, done.stderr[-2000:]
    return done.returncode, modules


def loaded(modules: set[str], names: frozenset[str]) -> set[str]:
    """The names in `names` that `modules` holds, or a submodule of which it holds."""
    return {n for n in names if any(m == n or m.startswith(n + ".") for m in modules)}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_database(tmp_path_factory.mktemp("startup") / "m.db")


QUERIES = {
    "history": ["history", "--since", "2022-09-01", "--until", "2022-10-01"],
    "history daily": ["history", "--since", "2022-09-01", "--until", "2022-10-01", "--every", "1d"],
    "history json": [
        "history",
        "--since",
        "2022-09-01",
        "--until",
        "2022-10-01",
        "--format",
        "json",
    ],
    "alerts": ["alerts"],
    "explain": ["explain", "-t", "kg-tj"],
    "articles": ["articles", "-t", "kg-tj", "--since", "2022-09-01"],
    "articles search": ["articles", "--search", "Batken"],
    "feeds": ["feeds"],
    "status": ["status"],
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_a_query_command_loads_no_network_scheduler_parser_numpy_or_compiler(
    name: str, database: Path, tmp_path: Path
) -> None:
    code, modules = imported_modules(["--db", str(database), *QUERIES[name]], cwd=tmp_path)
    assert code in ((0, 1, 2) if name == "status" else (0,))
    assert "monitor.db" in modules  # it did run its query
    # a search stems its words as the matcher does (issue 15): the stemmer, not the rules
    stemmer = {"monitor.detect.text", "snowballstemmer"} if "--search" in QUERIES[name] else set()
    assert loaded(modules, NEVER | COMPILER) == stemmer


def test_a_query_without_db_option_finds_the_database_from_settings_alone(
    database: Path, tmp_path: Path
) -> None:
    settings = tmp_path / "monitor.toml"
    settings.write_text(f'database_path = "{database}"\n', encoding="utf-8")
    code, modules = imported_modules(["--config", str(settings), "alerts"], cwd=tmp_path)
    assert code == 0
    assert loaded(modules, NEVER | COMPILER) == set()


@pytest.mark.parametrize("args", [["--help"], ["history", "--help"], ["--version"]], ids=" ".join)
def test_help_loads_neither_configuration_nor_database(args: list[str], tmp_path: Path) -> None:
    code, modules = imported_modules(args, cwd=tmp_path)
    assert code == 0
    assert loaded(modules, NEVER | COMPILER | HELP_EXTRA) == set()


def test_check_config_compiles_the_rules_but_loads_no_network_or_numpy(tmp_path: Path) -> None:
    code, modules = imported_modules(["check-config"], cwd=tmp_path)
    assert code == 0
    assert "monitor.detect.rules" in modules
    assert loaded(modules, NEVER) == set()


def test_replay_is_listed_by_its_recorded_help_and_loads_when_run() -> None:
    from monitor.cli.replay_command import replay_command

    target, short_help = LAZY_COMMANDS["replay"]
    assert target == "monitor.cli.replay_command:replay_command"
    assert short_help == replay_command.get_short_help_str(limit=1000)
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0
    assert "replay" in listing.stdout and "Replay a dated corpus" in listing.stdout
    usage = CliRunner().invoke(cli, ["replay", "--help"])
    assert usage.exit_code == 0 and "--events" in usage.stdout


# -- `status` reads the alert thresholds, not the whole watch list -----------------------


def test_status_reads_the_alerts_section_with_the_same_checks(tmp_path: Path) -> None:
    from monitor.config import load_alert_settings, load_config

    path = FIXTURES / "bad_alerts_bad_timezone.yaml"
    expected = path.with_suffix(".err").read_text(encoding="utf-8").rstrip("\n")
    for load in (load_alert_settings, load_config):
        with pytest.raises(ConfigError) as caught:
            load(indicators_path=path, env={})
        assert str(caught.value) == expected.replace("indicators.yaml", str(path), 1)
    shipped = REPO / "indicators.yaml"
    assert load_alert_settings(indicators_path=shipped, env={}) == (
        load_config(indicators_path=shipped, env={}).alerts
    )


def test_status_does_not_fail_on_a_pattern_error_check_config_reports(
    database: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "indicators.yaml"
    broken.write_text(
        (FIXTURES / "bad_pattern_unbalanced.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert yaml.safe_load(broken.read_text(encoding="utf-8"))["alerts"] is not None
    runner = CliRunner()
    status = runner.invoke(cli, ["--indicators", str(broken), "--db", str(database), "status"])
    # the fixture's cycles are years old: down (2), reported, not a configuration error
    assert status.exit_code == 2 and status.stderr == ""
    assert "monitor status: DOWN" in status.stdout
    check = runner.invoke(cli, ["--indicators", str(broken), "check-config"])
    assert check.exit_code == 2 and "unbalanced" in check.stderr


# -- commands in other modules load only when they run ---------------------------------


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_a_lazy_command_is_listed_as_its_own_help_would_list_it(name: str) -> None:
    from monitor.cli.app import load_command

    target, summary = LAZY_COMMANDS[name]
    command = load_command(target)
    assert command.name == name or target.endswith(":" + command.callback.__name__)
    assert summary == " ".join((command.help or "").partition("\n\n")[0].split())
    stand_in = click.Command(name, help=summary)
    for limit in range(1, 200):  # every terminal width click may shorten it to
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit)
    assert not command.hidden and not command.deprecated  # a stand-in shows neither


def test_help_in_a_fresh_process_is_the_listing_of_the_loaded_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    fresh = subprocess.run(
        [sys.executable, "-m", "monitor", "--help"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO), "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    ctx = click.Context(cli)
    for name in LAZY_COMMANDS:  # loaded, as after running each of them
        assert cli.get_command(ctx, name) is not None
    assert set(LAZY_COMMANDS) <= set(cli.commands)
    loaded_listing = (
        CliRunner().invoke(cli, ["--help"], prog_name="monitor", terminal_width=78).stdout
    )
    assert fresh == loaded_listing
    assert "replay" in fresh and "feeds " in fresh and "status " in fresh
