"""The CLI through click's runner, against real database files (prepared, empty, gappy)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_support import build_database
from click.testing import CliRunner

from monitor import db
from monitor.cli import cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    return build_database(tmp_path / "m.db")


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.db"
    db.Store.open(path).close()
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_history_every_format(prepared: Path, fmt: str) -> None:
    code, out, _ = invoke(
        "--db",
        str(prepared),
        "history",
        "--theatre",
        "kg-tj",
        "--since",
        "2022-09-01",
        "--until",
        "2022-10-01",
        "--format",
        fmt,
    )
    assert code == 0
    if fmt == "json":
        rows = json.loads(out)
        assert len(rows) == (30 - 3) * 4 and max(r["score"] for r in rows) == 60.0
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows[0].keys() >= {"theatre_id", "at", "score", "level", "change", "stories"}
        assert len(rows) == (30 - 3) * 4
    else:
        assert "kg-tj" in out and "peak 60" in out and any(ch in out for ch in "▁▂▃▄▅▆▇█")


def test_history_daily_buckets_show_gaps_as_missing_days(prepared: Path) -> None:
    code, out, _ = invoke(
        "--db",
        str(prepared),
        "history",
        "-t",
        "kg-tj",
        "--since",
        "2022-09-01",
        "--until",
        "2022-10-01",
        "--every",
        "1d",
        "--format",
        "json",
    )
    rows = json.loads(out)
    days = [r["at"][:10] for r in rows]
    assert code == 0 and len(days) == 27 and "2022-09-11" not in days
    peak_day = next(r for r in rows if r["at"].startswith("2022-09-16"))
    assert peak_day["score"] == 60.0 and peak_day["points"] == 4


def test_history_on_an_empty_database(empty: Path) -> None:
    code, out, _ = invoke("--db", str(empty), "history")
    assert code == 0 and "no score points" in out
    code, out, _ = invoke("--db", str(empty), "history", "--format", "json")
    assert json.loads(out) == []


def test_alerts_filters(prepared: Path) -> None:
    code, out, _ = invoke("--db", str(prepared), "alerts", "--format", "json")
    assert code == 0 and [r["kind"] for r in json.loads(out)] == ["level_down", "level_up"]
    code, out, _ = invoke(
        "--db", str(prepared), "alerts", "--status", "pending", "--format", "json"
    )
    assert [r["kind"] for r in json.loads(out)] == ["level_up"]
    code, out, _ = invoke("--db", str(prepared), "alerts", "--status", "digest", "--format", "csv")
    assert "level_down" in out and "level_up" not in out


def test_explain_lists_the_evidence(prepared: Path) -> None:
    code, out, _ = invoke("--db", str(prepared), "explain", "kg-tj", "--at", "2022-09-16T12:00Z")
    assert code == 0
    assert "score 60 (high)" in out and "border_clash" in out and "Guards exchanged fire" in out
    code, out, _ = invoke(
        "--db", str(prepared), "explain", "kg-tj", "--at", "2022-09-16T12:00Z", "--format", "json"
    )
    data = json.loads(out)
    assert (
        data["score"]["score"] == 60.0
        and data["contributions"][0]["indicator_id"] == "border_clash"
    )


def test_explain_unknown_theatre_is_one_line(prepared: Path) -> None:
    code, _, err = invoke("--db", str(prepared), "explain", "xx-yy")
    assert code == 1 and err.strip().startswith("monitor: no score for theatre 'xx-yy'")
    assert "Traceback" not in err


def test_feeds_view(prepared: Path) -> None:
    code, out, _ = invoke("--db", str(prepared), "feeds", "--format", "json")
    [feed] = json.loads(out)
    assert code == 0 and feed["id"] == "wire" and feed["status"] == "never polled"


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = invoke("--db", str(tmp_path / "none.db"), "alerts")
    assert code == 1 and "no database here yet" in err


def test_bad_time_argument(prepared: Path) -> None:
    code, _, err = invoke("--db", str(prepared), "history", "--since", "last tuesday-ish")
    assert code == 2 and "not a time" in err


def test_check_config_on_the_shipped_file() -> None:
    code, out, _ = invoke("--indicators", str(REPO / "indicators.yaml"), "check-config")
    assert code == 0 and "configuration OK" in out and "kg-tj" in out and "border_clash" in out


def test_check_config_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "indicators.yaml"
    bad.write_text("feeds: [{id: x, url: 'ftp://example.org/feed'}]\n", encoding="utf-8")
    code, _, err = invoke("--indicators", str(bad), "check-config")
    assert code == 2 and err.count("\n") == 1 and f"{bad}: feeds[0].url:" in err


def test_cli_never_writes(prepared: Path) -> None:
    before = prepared.read_bytes()
    for args in (["history"], ["alerts"], ["feeds"], ["explain", "kg-tj"]):
        invoke("--db", str(prepared), *args)
    assert prepared.read_bytes() == before


def test_version_and_help() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for command in (
        "run",
        "demo",
        "check-config",
        "history",
        "alerts",
        "feeds",
        "explain",
        "eval",
        "test-email",
    ):
        assert command in out
