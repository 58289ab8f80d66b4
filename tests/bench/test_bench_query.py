"""bench/query.py: its year of data ends today, the commands it times answer on it, and it
fails when a command misses its target or fails (no timings are asserted here)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from monitor.cli.app import cli
from monitor.models import from_iso

BENCH = Path(__file__).resolve().parents[2] / "bench" / "query.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_query", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_query"] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


@pytest.fixture(scope="module")
def year(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "year.db"
    end = bench.data_end(datetime.now(UTC))
    bench.build(path, end=end, articles=3000, matches=600, alerts=40, contribution_days=0.2)
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def test_the_data_ends_now_and_spans_a_full_year(bench: ModuleType, year: Path) -> None:
    conn = sqlite3.connect(year)
    first, last, points = conn.execute(
        "SELECT min(at), max(at), count(*) FROM scores WHERE theatre_id = 'kg-tj'"
    ).fetchone()
    newest_article = conn.execute("SELECT max(published_at) FROM articles").fetchone()[0]
    conn.close()
    now = datetime.now(UTC)
    assert now - timedelta(minutes=30) < from_iso(last) <= now
    assert from_iso(first) <= now - timedelta(days=365)
    assert points == (from_iso(last) - from_iso(first)) / timedelta(minutes=15) + 1
    assert now - from_iso(newest_article) < timedelta(days=1)


def test_the_last_365_days_are_full(year: Path) -> None:
    before = datetime.now(UTC)
    code, out = run("--db", str(year), "history", "-t", "kg-tj", "--since", "365d",
                    "--every", "1d", "--format", "csv")  # fmt: skip
    after = datetime.now(UTC)
    assert code == 0
    days = out.splitlines()[1:]
    dates = [datetime.fromisoformat(line.split(",")[1]).date() for line in days]
    # every day from a year ago to today, none missing; the first day is there unless the
    # window opened after that day's last point (in the last 15 minutes of a UTC day)
    assert dates == [dates[0] + timedelta(days=n) for n in range(len(dates))]
    assert before.date() <= dates[-1] <= after.date()
    a_year_ago = (before - timedelta(days=365)).date()
    assert a_year_ago <= dates[0] <= (after - timedelta(days=365)).date() + timedelta(days=1)
    assert len(days) in (365, 366)
    # the whole days between the two partial ones hold every point (96 a day)
    assert all(line.endswith(",96") for line in days[1:-1])


def test_every_timed_command_answers_on_the_data(bench: ModuleType, year: Path) -> None:
    for case in bench.commands(year):
        if case.argv[:2] != ("-m", "monitor") or "--help" in case.argv:
            continue
        result = CliRunner().invoke(cli, list(case.argv[2:]))
        assert result.exit_code in case.ok_exits, (case.name, result.output)
        assert result.stdout.strip(), case.name
        empty = ("(no score points", "(no articles match)", "(no alerts)", "(no feeds polled")
        assert not any(e in result.stdout for e in empty), case.name  # something to show


def test_a_missed_target_and_a_failed_command_are_reported(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        bench.Command("python -c pass", ("-c", "pass"), None),
        bench.Command("floor", ("-c", "pass"), None),
        bench.Command("fast", ("-c", "print(1)"), 300.0),
        bench.Command("slow", ("-c", "print(1)"), 300.0),
    ]
    medians = {
        "python -c pass": bench.Timing(20.0, 15.0),
        "floor": bench.Timing(40.0, 30.0),
        "fast": bench.Timing(120.0, 100.0),
        "slow": bench.Timing(301.0, 250.0),
    }
    assert bench.report(cases, medians) == ["slow"]
    assert "MISSED" in capsys.readouterr().out
    timing = bench.run_once(cases[2], cwd=tmp_path, env=bench.clean_environment(tmp_path))
    assert timing.wall_ms > 0 and timing.cpu_ms >= 0
    with pytest.raises(bench.CommandFailed, match="exit 3"):
        bench.run_once(
            bench.Command("broken", ("-c", "raise SystemExit(3)"), 300.0),
            cwd=tmp_path,
            env=bench.clean_environment(tmp_path),
        )


@pytest.mark.slow
def test_query_bench_runs_whole_commands_on_a_small_build(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench.main(["--articles", "3000", "--alerts", "40", "--contribution-days", "0.2",
                       "--runs", "1", "--keep", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code in (0, 1) and "FAILED" not in out  # 1: a target missed on a busy machine
    for name in ("history --since 365d --every 1d", "articles --search border", "status"):
        assert name in out
    assert "nan" not in out.lower()
