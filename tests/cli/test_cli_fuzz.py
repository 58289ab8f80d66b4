"""Every command's options, fuzzed through the real CLI: bad input is one line, never a
traceback (issue 15).

Hypothesis draws a command and values for its options (and the global ones): random
text, huge and negative numbers, odd dates and durations, and paths that are a file, a
folder, missing, under a file, or read-only. Each case runs in process (click's runner,
for speed) on a real database file; the invariants:

- no exception escapes the command (a traceback);
- the exit status is 0, 1 (a failure at run time) or 2 (usage or configuration); `status`
  has its own 0/1/2, which is fine too;
- a failure says so in exactly one line on stderr that names the problem (click's
  `Error: …` line or our `monitor: …` line; click's usage lines around its error and
  `monitor: note:` deprecation notes are not counted).

`run`, `test-email` and `datasette` would reach the network or start a server, so they
are fuzzed only with configuration and database paths that stop them before that, and
`demo` only with output folders it cannot use (a usable one runs the whole demo).

The normal suite tries FUZZ_EXAMPLES cases; `pytest -m slow` tries SLOW_FUZZ_EXAMPLES.
A few cases also run as real processes (`python -m monitor`).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli.app import cli
from tests.support.cli import add_articles, build_database

REPO = Path(__file__).resolve().parents[2]
DEV_CORPUS = REPO / "tests" / "fixtures" / "corpus" / "dev.jsonl"
FUZZ_EXAMPLES = 120
SLOW_FUZZ_EXAMPLES = 2000


@dataclass(frozen=True)
class Place:
    """Paths of every kind, made once per test module."""

    root: Path
    database: Path
    corpus: Path
    file: Path  # a plain text file (not a database, not a corpus)
    folder: Path
    missing: Path
    under_file: Path  # a path whose parent is a file
    readonly: Path  # a folder nobody may write (root may: then it is just a folder)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    root = tmp_path_factory.mktemp("fuzz")
    database = add_articles(build_database(root / "m.db"))
    corpus = root / "small.jsonl"
    lines = DEV_CORPUS.read_text(encoding="utf-8").splitlines()[:3]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = root / "notes.txt"
    text.write_text("not a database, not YAML: [\n", encoding="utf-8")
    folder = root / "folder"
    folder.mkdir()
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield Place(
        root=root,
        database=database,
        corpus=corpus,
        file=text,
        folder=folder,
        missing=root / "missing" / "nothing.db",
        under_file=text / "below",
        readonly=readonly / "inside",
    )
    readonly.chmod(stat.S_IRWXU)


# -- values --------------------------------------------------------------------------

ODD_TIMES = [
    "7d", "0d", "-1d", "9999999d", "99999999999999999999d", "1e400d", "0.5h", "30m", "2w",
    "1y", "now", "NOW", "", " ", "2024-02-30", "0000-01-01", "0001-01-01", "9999-12-31",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00+14:00", "2022-09-16T12:00Z",
    "2022-09-16", "16/09/2022", "yesterday", "nan", "inf", "7 d", "d7", "1970-01-01T00:00:00Z",
    "2022-13-01", "2022-09-16T25:00", "\x00", "７d",
]  # fmt: skip
HUGE_NUMBERS = ["0", "-1", "1", "10000", "10001", "9" * 30, "1e308", "-0", "0x10", "NaN", "½"]
PATH_KINDS = ["database", "corpus", "file", "folder", "missing", "under_file", "readonly"]


def texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=20),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_*\"' ", max_size=12),
        st.sampled_from(["kg-tj", "am-az", "csto", "xx-yy", "", "-t", "--", "граница", "clash*"]),
    )


def times() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ODD_TIMES), st.text(max_size=12))


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HUGE_NUMBERS), st.integers().map(str), st.floats().map(str))


def formats() -> st.SearchStrategy[str]:
    return st.sampled_from(["table", "csv", "json", "xml", "", "TABLE"])


def paths(place: Place, suffix: str = "") -> st.SearchStrategy[str]:
    """A path of any kind; `suffix` names a file to put in a folder-like one."""
    kinds = st.sampled_from(PATH_KINDS).map(lambda kind: str(getattr(place, kind)))
    return st.one_of(kinds, kinds.map(lambda p: p + suffix) if suffix else kinds)


def bad_out_folders(place: Place) -> st.SearchStrategy[str]:
    """Folders `demo` cannot use (a usable one would run the whole demo)."""
    return st.sampled_from([str(place.file), str(place.under_file), "/proc/version/demo"])


# -- commands ------------------------------------------------------------------------


def option_values(place: Place) -> dict[str, st.SearchStrategy[list[str]]]:
    """For each command, a strategy drawing its arguments."""

    def opts(**choices: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
        """Any subset of the options, each with a drawn value (a flag: value "")."""
        pairs = [
            st.one_of(st.just([]), value.map(lambda v, n=name: [n] if v == "\0flag" else [n, v]))
            for name, value in choices.items()
        ]
        return st.tuples(*pairs).map(lambda parts: [a for part in parts for a in part])

    flag = st.just("\0flag")
    theatre = texts()
    return {
        "history": opts(**{"-t": theatre, "--since": times(), "--until": times(),
                           "--every": st.sampled_from(["1h", "1d", "1w", "1m", ""]),
                           "--format": formats()}),
        "alerts": opts(**{"-t": theatre, "--since": times(), "--until": times(),
                          "--status": texts(), "--format": formats()}),
        "articles": opts(**{"-t": theatre, "-i": texts(), "--since": times(),
                            "--until": times(), "--search": texts(), "--limit": numbers(),
                            "--format": formats()}),
        "explain": opts(**{"-t": theatre, "--at": times(), "--format": formats()}),
        "chart": opts(**{"-t": theatre, "--since": times(), "--until": times(),
                         "--out": st.one_of(paths(place, "/c.png"), texts()),
                         "--top": numbers()}),
        "report": opts(**{"--out": paths(place, "/site"), "--at": times(), "-t": theatre}),
        "status": opts(**{"--max-age": times(), "--format": formats()}),
        "check-config": st.just([]),
        "eval": st.tuples(paths(place), opts(**{"--format": formats(), "--show-errors": flag,
                                                "--verbose": flag}))
        .map(lambda t: [t[0], *t[1]]),
        "replay": st.tuples(paths(place), opts(**{"--events": paths(place), "--tick": times(),
                                                  "--lookback": times(), "--lag": times(),
                                                  "--format": formats()}))
        .map(lambda t: [t[0], *t[1]]),
        "demo": bad_out_folders(place).map(lambda p: ["--out", p]),
        "init": st.one_of(st.just([]), paths(place).map(lambda p: [p])),
        "config": st.tuples(st.sampled_from(["dump", "show", ""]),
                            opts(**{"--format": formats()})).map(lambda t: [t[0], *t[1]]),
        "feeds": st.one_of(
            opts(**{"--format": formats()}),
            st.tuples(st.just("add"), texts(), opts(**{"--name": texts(), "--id": texts(),
                      "--language": texts(), "--interval": numbers()}))
            .map(lambda t: [t[0], t[1], *t[2]]),
            st.tuples(st.just("remove"), texts()).map(list),
            st.tuples(st.just("import"), paths(place), opts(**{"--dry-run": flag}))
            .map(lambda t: [t[0], t[1], *t[2]]),
            st.tuples(st.just("export"), opts(**{"--out": paths(place, "/f.opml")}))
            .map(lambda t: [t[0], *t[1]]),
        ),
        "poll-now": st.one_of(st.just(["--all"]), st.lists(texts(), max_size=3)),
        "prune": opts(**{"--dry-run": flag}),
        "backup": paths(place, "/copy.db").map(lambda p: [p]),
    }  # fmt: skip


# Commands that would reach the network or serve: only with a configuration that stops
# them first (a settings file that is not TOML, a folder, a missing file).
GUARDED = ["run", "test-email"]


@st.composite
def command_lines(draw: st.DrawFn, place: Place) -> list[str]:
    values = option_values(place)
    name = draw(st.sampled_from([*values, *GUARDED, "datasette"]))
    args: list[str] = []
    if name in GUARDED:
        bad_config = draw(st.sampled_from(["file", "folder", "missing", "under_file"]))
        return ["--config", str(getattr(place, bad_config)), name]
    if name == "datasette":
        return [name, str(getattr(place, draw(st.sampled_from(["folder", "missing"]))))]
    if draw(st.booleans()):
        args += ["--db", draw(paths(place))]
    else:
        args += ["--db", str(place.database)]
    if draw(st.integers(0, 9)) == 0:
        args += ["--config", draw(paths(place))]
    if draw(st.integers(0, 9)) == 0:
        args += ["--indicators", draw(paths(place))]
    return [*args, name, *draw(values[name])]


# -- the invariants ------------------------------------------------------------------


def problem_lines(stderr: str) -> list[str]:
    """The lines that state a problem: click's `Error:` and our `monitor:` lines."""
    return [
        line
        for line in stderr.splitlines()
        if (line.startswith("Error: ") or line.startswith("monitor: "))
        and not line.startswith("monitor: note: ")
    ]


def check_one_line_or_success(args: list[str], code: int, stderr: str) -> None:
    assert "Traceback" not in stderr, (args, stderr)
    command = next((a for a in args if not a.startswith("-") and a in KNOWN), "")
    allowed = (0, 1, 2)
    assert code in allowed, (args, code, stderr)
    if code != 0 and command != "status":
        lines = problem_lines(stderr)
        assert len(lines) == 1, (args, code, stderr)
        assert len(lines[0]) > len("monitor: ") + 5, (args, stderr)


KNOWN = {
    "history", "alerts", "articles", "explain", "chart", "report", "feeds", "status",
    "check-config", "eval", "replay", "demo", "run", "test-email", "datasette", "init",
    "config", "poll-now", "prune", "backup",
}  # fmt: skip

TRIED: list[int] = [0]


def run_in_process(args: list[str]) -> None:
    TRIED[0] += 1
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: unhandled {result.exception!r}") from result.exception
    check_one_line_or_success(args, result.exit_code, result.stderr)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./indicators.yaml: the built-in watch list
    monkeypatch.setenv("MONITOR_NO_PROGRESS", "1")


FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@settings(FUZZ_SETTINGS, max_examples=FUZZ_EXAMPLES)
@given(data=st.data())
def test_fuzzed_options_fail_in_one_line(place: Place, data: st.DataObject) -> None:
    run_in_process(data.draw(command_lines(place)))


@pytest.mark.slow
@settings(FUZZ_SETTINGS, max_examples=SLOW_FUZZ_EXAMPLES, derandomize=False)
@given(data=st.data())
def test_fuzzed_options_fail_in_one_line_at_length(place: Place, data: st.DataObject) -> None:
    run_in_process(data.draw(command_lines(place)))


# -- the cases the issue names, and a few as real processes ---------------------------

NAMED = {
    "log-level-attribute": ({"MONITOR_LOG_LEVEL": "basic_format"}, ["history"], 2,
                            "monitor: MONITOR_LOG_LEVEL: unknown level 'basic_format'"),
    "log-level-unknown": ({"MONITOR_LOG_LEVEL": "LOUD"}, ["history"], 2,
                          "monitor: MONITOR_LOG_LEVEL: unknown level 'LOUD'"),
    "since-overflow": ({}, ["history", "--since", "9999999d"], 2,
                       "monitor: time out of range: '9999999d'"),
    "duration-overflow": ({}, ["status", "--max-age", "99999999999999999999d"], 2,
                          "monitor: duration out of range"),
    "demo-out-under-a-file": ({}, ["demo", "--out", "{under_file}"], 1,
                              "monitor: {under_file}: Not a directory"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(NAMED))
def test_named_cases_are_one_line(place: Place, case: str) -> None:
    env, args, code, message = NAMED[case]
    fill = {"under_file": str(place.under_file)}
    argv = ["--db", str(place.database), *[a.format(**fill) for a in args]]
    result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=True)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith(message.format(**fill)), result.stderr
    assert result.stderr.count("\n") == 1


def test_demo_into_a_read_only_folder_is_one_line(place: Place) -> None:
    """PermissionError: a folder this user may not write (root may write anywhere, so the
    check needs an ordinary user, or a file system that refuses even root)."""
    target = place.readonly
    if os.access(target.parent, os.W_OK):
        target = Path("/sys/monitor-demo")  # sysfs: not even root may create a folder
        try:
            target.mkdir()
        except PermissionError:
            pass
        else:  # pragma: no cover - an unusual system
            target.rmdir()
            pytest.skip("no folder here refuses this user")
    result = CliRunner().invoke(cli, ["demo", "--out", str(target)], catch_exceptions=True)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(f"monitor: {target}: ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["history", "--since", "9999999d"], {}),
        (["history"], {"MONITOR_LOG_LEVEL": "basic_format"}),
        (["explain", "-t", "nowhere"], {}),
        (["articles", "--since", "2022-10-01", "--until", "2022-09-01"], {}),
    ],
    ids=["since-overflow", "log-level", "unknown-theatre", "since-after-until"],
)
def test_as_a_real_process(place: Place, args: list[str], env: dict[str, str]) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--db", str(place.database), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=place.root,
        timeout=120,
    )
    check_one_line_or_success(args, done.returncode, done.stderr)
    assert done.returncode == 2 and done.stdout == ""
