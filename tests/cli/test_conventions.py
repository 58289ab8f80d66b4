"""One convention for every command (issue 15), through the real CLI on a real database:
the theatre is `--theatre/-t` everywhere, unknown ids are usage errors that list the known
ones, windows are `--since/--until` and checked, defaults are stated, deprecated forms
still work with a note, and progress bars appear on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.app import cli
from tests.support.cli import add_articles, build_database

REPO = Path(__file__).resolve().parents[2]
DEV_CORPUS = REPO / "tests" / "fixtures" / "corpus" / "dev.jsonl"
KNOWN = "(known: am-az, csto, kg-tj)"  # the database's kg-tj and the built-in watch list


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_articles(build_database(tmp_path_factory.mktemp("conv") / "m.db"))


@pytest.fixture(autouse=True)
def _builtin_watch_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def with_out(command: str, tmp_path: Path) -> list[str]:
    if command == "chart":
        return ["--out", str(tmp_path / "c.svg"), "--since", "2022-09-01", "--until", "2022-10-01"]
    if command == "report":
        return ["--out", str(tmp_path / "site")]
    return []


THEATRE_COMMANDS = ["history", "alerts", "articles", "explain", "chart", "report"]


@pytest.mark.parametrize("command", THEATRE_COMMANDS)
def test_the_theatre_is_the_same_option_everywhere(
    database: Path, tmp_path: Path, command: str
) -> None:
    if command == "chart":
        pytest.importorskip("matplotlib")
    for spelling in ("-t", "--theatre"):
        code, out, err = invoke(
            "--db", str(database), command, spelling, "kg-tj", *with_out(command, tmp_path)
        )
        assert code == 0, err
        assert err == ""
        assert out


@pytest.mark.parametrize("command", THEATRE_COMMANDS)
def test_an_unknown_theatre_lists_the_known_ones(
    database: Path, tmp_path: Path, command: str
) -> None:
    code, out, err = invoke(
        "--db", str(database), command, "-t", "kg-kz", *with_out(command, tmp_path)
    )
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == (
        f"Error: Invalid value for '--theatre' / '-t': unknown theatre 'kg-kz' {KNOWN}"
    )
    assert not (tmp_path / "site").exists() and not (tmp_path / "c.svg").exists()


def test_a_theatre_of_the_watch_list_without_data_is_not_an_error(database: Path) -> None:
    code, out, err = invoke("--db", str(database), "history", "-t", "csto", "--format", "json")
    assert code == 0 and json.loads(out) == [] and err == ""


@pytest.mark.parametrize("command", ["explain", "chart"])
def test_explain_and_chart_need_a_theatre(database: Path, tmp_path: Path, command: str) -> None:
    code, _, err = invoke("--db", str(database), command, *with_out(command, tmp_path))
    assert code == 2 and "Error: Missing option '--theatre' / '-t'" in err


def test_the_old_positional_theatre_still_works_with_a_note(database: Path) -> None:
    code, out, err = invoke("--db", str(database), "explain", "kg-tj", "--format", "json")
    assert code == 0 and json.loads(out)["score"]["theatre_id"] == "kg-tj"
    assert err == "monitor: note: `explain THEATRE` is deprecated; use `explain -t THEATRE`\n"
    code, _, err = invoke("--db", str(database), "explain", "kg-tj", "-t", "am-az")
    assert code == 2 and "two theatres given" in err


@pytest.mark.parametrize("command", ["history", "alerts", "articles", "chart"])
def test_since_and_until_on_every_listing_and_checked(
    database: Path, tmp_path: Path, command: str
) -> None:
    args = ["-t", "kg-tj"] + (["--out", str(tmp_path / "c.svg")] if command == "chart" else [])
    code, _, err = invoke(
        "--db", str(database), command, *args, "--since", "2022-10-01", "--until", "2022-09-01"
    )
    assert code == 2
    [problem] = [line for line in err.splitlines() if line.startswith("Error:")]
    assert "'2022-10-01' is later than --until '2022-09-01'" in problem or (
        command == "chart" and "is not before the end of the chart" in problem
    )


def test_alerts_until(database: Path) -> None:
    code, out, _ = invoke("--db", str(database), "alerts", "--format", "json")
    everything = json.loads(out)
    assert code == 0 and len(everything) == 2
    oldest = min(row["created_at"] for row in everything)
    code, out, _ = invoke("--db", str(database), "alerts", "--until", oldest, "--format", "json")
    assert code == 0 and [row["created_at"] for row in json.loads(out)] == [oldest]


@pytest.mark.parametrize(
    ("command", "default"),
    [
        ("history", "[default: 30d]"),
        ("chart", "[default: 90d]"),
        ("alerts", "default: no limit"),
        ("articles", "default: no limit"),
    ],
)
def test_each_default_window_is_stated_in_help(command: str, default: str) -> None:
    code, out, _ = invoke(command, "--help")
    since = re.search(r"--since TEXT(.*?)(?=\n  -)", out, re.S)
    assert code == 0 and since is not None
    assert default in " ".join(since.group(1).split())
    assert "--until" in out


def test_history_periods_say_what_each_column_holds(database: Path) -> None:
    code, out, _ = invoke(
        "--db", str(database), "history", "-t", "kg-tj", "--since", "2022-09-01",
        "--until", "2022-10-01", "--every", "1w",
    )  # fmt: skip
    header = out.splitlines()[0].split()
    assert code == 0
    assert header[:4] == ["theatre_id", "period", "peak", "level_at_end"]
    assert "peak: its highest score" in out and "level_at_end: the level at its last" in out
    # machine formats keep their keys
    code, out, _ = invoke(
        "--db", str(database), "history", "-t", "kg-tj", "--since", "2022-09-01",
        "--until", "2022-10-01", "--every", "1w", "--format", "json",
    )  # fmt: skip
    assert set(json.loads(out)[0]) >= {"at", "score", "level", "points"}


def small_corpus(tmp_path: Path, lines: int = 12) -> Path:
    corpus = tmp_path / "small.jsonl"
    text = DEV_CORPUS.read_text(encoding="utf-8").splitlines()[:lines]
    corpus.write_text("\n".join(text) + "\n", encoding="utf-8")
    return corpus


def test_eval_show_errors_and_the_deprecated_verbose(tmp_path: Path) -> None:
    corpus = str(small_corpus(tmp_path))
    code, shown, err = invoke("eval", corpus, "--show-errors")
    assert code == 0 and err == ""
    code, old, err = invoke("eval", corpus, "--verbose")
    assert code == 0 and old == shown
    assert err == "monitor: note: `eval --verbose` is deprecated; use `eval --show-errors`\n"
    code, plain, _ = invoke("-v", "eval", corpus)  # the global -v is log output only
    assert code == 0 and len(plain) <= len(shown)


def test_replay_takes_the_global_db(tmp_path: Path) -> None:
    corpus = str(small_corpus(tmp_path, lines=3))
    target = tmp_path / "r.db"
    code, out, err = invoke("--db", str(target), "replay", corpus, "--format", "json")
    assert code == 0 and err == "" and json.loads(out)["replay"]["database"] == str(target)
    other = tmp_path / "old-form.db"
    code, out, err = invoke("replay", corpus, "--db", str(other), "--format", "json")
    assert code == 0 and json.loads(out)["replay"]["database"] == str(other)
    assert (
        err == "monitor: note: `replay --db FILE` is deprecated; use `monitor --db FILE replay`\n"
    )
    code, out, _ = invoke("replay", "--help")
    assert "--db" not in out.split("Options:")[1]


# -- progress: a bar on a terminal, nothing when piped ----------------------------------


def run_with_stderr_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run `python -m monitor ARGS` with stderr on a pseudo-terminal, stdout on a pipe."""
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["COLUMNS"] = "100"
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=cwd,
        env=env,
    )
    os.close(terminal)
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError("no output on the terminal for 120 s")
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        drawn += chunk
    assert process.stdout is not None
    out = process.stdout.read().decode()
    os.close(controller)
    return process.wait(timeout=120), out, drawn.decode(errors="replace")


@pytest.mark.parametrize(
    ("args", "label"),
    [(["eval", "{corpus}"], "matching"), (["replay", "{corpus}"], "replaying")],
    ids=["eval", "replay"],
)
def test_progress_bar_on_a_terminal_only(tmp_path: Path, args: list[str], label: str) -> None:
    corpus = str(small_corpus(tmp_path))
    argv = [a.format(corpus=corpus) for a in args]
    code, out, drawn = run_with_stderr_on_a_terminal(argv, tmp_path)
    assert code == 0 and out
    assert label in drawn and re.search(r"(\d+)/\1", drawn) and "[####" in drawn
    assert label not in out  # the bar never reaches stdout
    piped = subprocess.run(
        [sys.executable, "-m", "monitor", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
        timeout=300,
    )
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout == out


def test_prune_shows_progress_by_rule_on_a_terminal_only(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    database = str(tmp_path / "replayed.db")
    made = subprocess.run(
        [sys.executable, "-m", "monitor", "--db", database, "replay", str(small_corpus(tmp_path))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    argv = ["--db", database, "prune", "--dry-run"]
    code, out, drawn = run_with_stderr_on_a_terminal(argv, tmp_path)
    assert code == 0 and "would remove" in out
    assert "pruning" in drawn and re.search(r"(\d+)/\1", drawn) and "[####" in drawn
    piped = subprocess.run(
        [sys.executable, "-m", "monitor", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    # nothing on a pipe (the rules' cut-off times move with the clock, so not compared)
    assert piped.returncode == 0 and piped.stderr == "" and "would remove" in piped.stdout
