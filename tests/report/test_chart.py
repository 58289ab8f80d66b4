"""`monitor chart`: the data it shows, the picture it writes, and a clear message without
matplotlib."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import db
from monitor.cli.app import cli
from monitor.models import Level
from monitor.report import plot as chart
from tests.support.cli import START, build_database

LEVELS = (
    Level("low", 0.0, 0.0),
    Level("elevated", 30.0, 25.0),
    Level("high", 55.0, 48.0),
    Level("critical", 80.0, 72.0),
)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_database(tmp_path_factory.mktemp("chart") / "m.db")


def needs_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib is not installed (pip install 'monitor[chart]') — chart not drawn")


# -- what the chart shows (no matplotlib needed) -------------------------------------


def test_chart_data_has_points_alerts_and_top_stories(prepared: Path) -> None:
    with db.Store.open(prepared, readonly=True) as store:
        data = chart.chart_data(
            store, theatre_id="kg-tj", since=START, until=START + timedelta(days=30)
        )
    assert len(data.points) == (30 - 3) * 4  # three days missing
    assert [a["kind"] for a in data.alerts] == ["level_up", "level_down"]  # in time order
    [story] = data.stories
    assert story["title"] == "Kyrgyz and Tajik guards trade fire near Batken"
    assert story["points"] == 30.0 and story["at"] == "2022-09-16T00:00:00Z"


def test_chart_of_a_theatre_without_points_is_an_error(prepared: Path) -> None:
    with db.Store.open(prepared, readonly=True) as store, pytest.raises(chart.MonitorError) as info:
        chart.chart_data(store, theatre_id="xx-yy", since=START, until=START + timedelta(days=1))
    assert "no score points for theatre 'xx-yy'" in str(info.value)


def at(hours: float) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("hours", "breaks_after"),
    [
        ([0, 0.25, 0.5, 0.75, 1.0], []),
        ([0, 0.25, 0.5, 6.0, 6.25], [2]),
        ([0, 6, 12, 18, 24, 96, 102], [4]),
        ([0, 1.5, 3.0], []),  # steps under two hours never break the line
        ([5.0], []),
    ],
    ids=["regular", "gap-in-15-minute-points", "missing-days-of-6-hourly", "short-steps", "one"],
)
def test_series_breaks_over_missing_points(hours: list[float], breaks_after: list[int]) -> None:
    points = [(at(h), float(n)) for n, h in enumerate(hours)]
    xs, ys = chart.series_with_gaps(points)
    nans = [n for n, y in enumerate(ys) if math.isnan(y)]
    assert nans == [i + 1 + k for k, i in enumerate(breaks_after)]
    assert [y for y in ys if not math.isnan(y)] == [p[1] for p in points]
    assert xs == sorted(xs)


def test_level_bands_follow_the_configured_levels() -> None:
    assert chart.level_bands(LEVELS) == [
        ("low", 0.0, 30.0, "#2e7d32"),
        ("elevated", 30.0, 55.0, "#f9a825"),
        ("high", 55.0, 80.0, "#ef6c00"),
        ("critical", 80.0, 100.0, "#c62828"),
    ]
    custom = chart.level_bands((Level("calm", 0, 0), Level("tense", 40, 35)))
    assert [(name, lo, hi) for name, lo, hi, _ in custom] == [("calm", 0, 40), ("tense", 40, 100)]


def test_stories_that_peak_together_share_a_marker() -> None:
    stories = [
        {"at": "2022-09-16T00:00:00Z", "score": 90.0},
        {"at": "2022-09-14T00:00:00Z", "score": 40.0},
        {"at": "2022-09-16T00:00:00Z", "score": 90.0},
    ]
    assert list(chart.story_markers(stories).values()) == [[1, 3], [2]]


@pytest.mark.parametrize("name", ["c.jpg", "c", "c.pdf"])
def test_only_png_and_svg(prepared: Path, tmp_path: Path, name: str) -> None:
    code, _, err = invoke(
        "--db", str(prepared), "chart", "-t", "kg-tj", "--out", str(tmp_path / name)
    )
    assert code == 2 and "must end in .png or .svg" in err
    assert not (tmp_path / name).exists()


def test_without_matplotlib_one_line_names_the_extra(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    code, out, err = invoke(
        "--db", str(prepared), "chart", "-t", "kg-tj", "--out", str(tmp_path / "c.png")
    )
    assert code == 1 and out == ""
    assert err == (
        "monitor: monitor chart needs matplotlib, which is not installed: "
        "pip install 'monitor[chart]'\n"
    )
    assert not (tmp_path / "c.png").exists()


# -- the picture (matplotlib) ---------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_chart_is_written(prepared: Path, tmp_path: Path, suffix: str) -> None:
    needs_matplotlib()
    out = tmp_path / "charts" / f"kg-tj{suffix}"
    code, stdout, err = invoke(
        "--db", str(prepared), "chart", "-t", "kg-tj", "--since", "2022-09-01", "--until", "2022-10-01",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert stdout == f"wrote {out} (108 score points, 2 alerts, 1 top stories)\n"
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    else:
        text = data.decode()
        for needed in ("kg-tj: risk score, 2022-09-01 to 2022-10-01 (UTC)", "critical",
                       "elevated", "Kyrgyz and Tajik guards trade fire near Batken"):  # fmt: skip
            assert needed in text
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


def test_chart_of_an_unknown_theatre_is_one_line(prepared: Path, tmp_path: Path) -> None:
    needs_matplotlib()
    out = str(tmp_path / "c.png")
    code, _, err = invoke("--db", str(prepared), "chart", "-t", "xx-yy", "--out", out)
    assert (
        code == 2 and "Error: Invalid value for '--theatre' / '-t': unknown theatre 'xx-yy'" in err
    )
    assert not (tmp_path / "c.png").exists()
    # a known theatre without points in the window: one line, exit 1
    code, _, err = invoke(
        "--db", str(prepared), "chart", "-t", "kg-tj", "--since", "2030-01-01",
        "--until", "2030-02-01", "--out", out,
    )  # fmt: skip
    assert code == 1 and err.startswith("monitor: no score points for theatre 'kg-tj'")
    assert err.count("\n") == 1 and not (tmp_path / "c.png").exists()
