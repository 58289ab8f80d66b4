"""The CLI through click's runner, against real database files (prepared, empty, gappy)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import db
from monitor.cli.app import cli
from tests.support.cli import add_articles, build_database

REPO = Path(__file__).resolve().parents[2]


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
    code, out, _ = invoke(
        "--db", str(prepared), "explain", "-t", "kg-tj", "--at", "2022-09-16T12:00Z"
    )
    assert code == 0
    assert "score 60 (high)" in out and "border clash" in out and "Guards exchanged fire" in out
    code, out, _ = invoke(
        "--db",
        str(prepared),
        "explain",
        "-t",
        "kg-tj",
        "--at",
        "2022-09-16T12:00Z",
        "--format",
        "json",
    )
    data = json.loads(out)
    assert (
        data["score"]["score"] == 60.0
        and data["contributions"][0]["indicator_id"] == "border_clash"
    )


def test_explain_unknown_theatre_is_one_line(prepared: Path) -> None:
    code, _, err = invoke("--db", str(prepared), "explain", "-t", "xx-yy")
    assert code == 2 and err.strip().endswith(
        "Error: Invalid value for '--theatre' / '-t': unknown theatre 'xx-yy' "
        "(known: am-az, csto, kg-tj)"
    )
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
    for args in (["history"], ["alerts"], ["feeds"], ["explain", "-t", "kg-tj"]):
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


# -- every query command, in every format, on a full, a gappy and an empty database ---------


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from datetime import UTC, datetime, timedelta

    folder = tmp_path_factory.mktemp("kinds")
    full = add_articles(build_database(folder / "full.db", gap=None))
    gappy = add_articles(build_database(folder / "gappy.db"))
    empty = folder / "empty.db"
    db.Store.open(empty).close()
    now = datetime.now(UTC)  # status judges against the real clock; the runs are placed near it
    with db.Store.open(full) as store:  # a timer deployment between two rounds (degraded:
        # build_database's pending message has waited since 2022)
        store.record_run(
            "once",
            started_at=now - timedelta(minutes=3),
            finished_at=now - timedelta(minutes=2),
            ok=True,
            summary={"feeds": 2},
        )
    with db.Store.open(gappy) as store:  # the daemon's last round two hours ago: down
        store.record_run(
            "poll",
            started_at=now - timedelta(hours=2),
            finished_at=now - timedelta(hours=2),
            ok=True,
            summary={"feeds": 2},
        )
    return {"full": full, "gappy": gappy, "empty": empty}


ROWS = {
    "history": {"full": 120, "gappy": 108, "empty": 0},
    "alerts": {"full": 2, "gappy": 2, "empty": 0},
    "articles": {"full": 6, "gappy": 6, "empty": 0},
    "feeds": {"full": 2, "gappy": 2, "empty": 0},
}
ARGS = {
    "history": ["history", "--since", "2022-09-01", "--until", "2022-10-01"],
    "alerts": ["alerts"],
    "articles": ["articles"],
    "feeds": ["feeds"],
}
TABLE_MARK = {
    "history": "peak 60",
    "alerts": "level_up",
    "articles": "kg-tj:border_clash",
    "feeds": "ru-wire",
}
EMPTY_TABLE = {
    "history": "(no score points between",
    "alerts": "(no alerts)",
    "articles": "(no articles match)",
    "feeds": "(no feeds polled yet)",
}


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
@pytest.mark.parametrize("kind", ["full", "gappy", "empty"])
@pytest.mark.parametrize("command", list(ROWS))
def test_listing_commands(databases: dict[str, Path], command: str, kind: str, fmt: str) -> None:
    code, out, err = invoke("--db", str(databases[kind]), *ARGS[command], "--format", fmt)
    assert code == 0 and err == ""
    expected = ROWS[command][kind]
    if fmt == "json":
        assert len(json.loads(out)) == expected
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert len(rows) == 1 + expected and rows[0]
    elif expected:
        assert TABLE_MARK[command] in out
    else:
        assert out.startswith(EMPTY_TABLE[command])


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
@pytest.mark.parametrize("kind", ["full", "gappy", "empty"])
def test_explain_every_format(databases: dict[str, Path], kind: str, fmt: str) -> None:
    code, out, err = invoke("--db", str(databases[kind]), "explain", "-t", "kg-tj", "--format", fmt)
    if kind == "empty":
        assert code == 1 and out == "" and err.startswith("monitor: no score for theatre 'kg-tj'")
        return
    assert code == 0
    if fmt == "json":
        data = json.loads(out)
        assert data["score"]["at"] == "2022-09-30T18:00:00Z" and data["score"]["score"] == 4.0
        assert [c["indicator_id"] for c in data["contributions"]] == ["border_clash"]
    elif fmt == "csv":
        [row] = list(csv.DictReader(io.StringIO(out)))
        assert row["indicator_id"] == "border_clash" and row["points"] == "2.0"
    else:
        assert out.startswith(
            "kg-tj at 2022-09-30T18:00:00Z: score 4 (low), 1 contributing stories"
        )


@pytest.mark.parametrize("fmt", ["table", "json"])
@pytest.mark.parametrize(
    ("kind", "code", "state"), [("full", 1, "degraded"), ("gappy", 2, "down"), ("empty", 2, "down")]
)
def test_status_every_format(
    databases: dict[str, Path], kind: str, code: int, state: str, fmt: str
) -> None:
    exit_code, out, err = invoke("--db", str(databases[kind]), "status", "--format", fmt)
    assert exit_code == code and err == ""
    if fmt == "json":
        data = json.loads(out)
        assert data["state"] == state and data["exit_status"] == code
        assert data["daemon"]["running"] is False
    else:
        assert out.startswith(f"monitor status: {state.upper()} (exit {code})")
    if kind == "full":
        assert "1 pending message(s) overdue" in out


def test_status_of_a_missing_database_is_down(tmp_path: Path) -> None:
    code, out, _ = invoke("--db", str(tmp_path / "none.db"), "status", "--format", "json")
    data = json.loads(out)
    assert code == 2 and data["state"] == "down" and "no database here yet" in data["reasons"][0]


def test_status_max_age(databases: dict[str, Path]) -> None:
    code, out, _ = invoke("--db", str(databases["gappy"]), "status", "--max-age", "3h")
    assert code == 2 and "the daemon is not running" in out and "no cycle for" not in out
    code, _, err = invoke("--db", str(databases["gappy"]), "status", "--max-age", "soon")
    assert code == 2 and "not a duration" in err


def test_articles_search_and_bad_time(databases: dict[str, Path]) -> None:
    code, out, _ = invoke(
        "--db", str(databases["full"]), "articles", "-s", "границ*", "--format", "json"
    )
    assert code == 0 and [r["title"] for r in json.loads(out)] == [
        "Перестрелка на кыргызско-таджикской границе"
    ]
    code, _, err = invoke("--db", str(databases["full"]), "articles", "--since", "next week")
    assert code == 2 and "not a time" in err


@pytest.mark.parametrize("kind", ["full", "gappy", "empty"])
def test_chart_on_each_database(databases: dict[str, Path], tmp_path: Path, kind: str) -> None:
    pytest.importorskip(
        "matplotlib", reason="matplotlib is not installed (pip install 'monitor[chart]')"
    )
    out = tmp_path / "c.png"
    code, _, err = invoke(
        "--db",
        str(databases[kind]),
        "chart",
        "kg-tj",
        "--since",
        "2022-09-01",
        "--until",
        "2022-10-01",
        "--out",
        str(out),
    )
    if kind == "empty":
        assert code == 1 and "no score points" in err and not out.exists()
    else:
        assert code == 0 and out.read_bytes().startswith(b"\x89PNG")
