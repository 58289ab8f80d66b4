"""`monitor report`: the static site from the demo database and from hostile feed text,
its numbers against `monitor history`/`explain`, the atomic swap, the settings, and the
daemon's background rebuilds."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import db
from monitor.cli.app import cli
from monitor.config import load_config, load_settings
from monitor.errors import ConfigError
from monitor.report import paths
from monitor.report.build import build_report
from monitor.report.rebuild import ReportRebuilder
from monitor.report.writer import atomic_site
from tests.support.report import HOSTILE, build_hostile_database, demo_database

AT = "2022-09-17T00:00:00Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return demo_database(tmp_path_factory)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_writes_the_report_and_prints_its_index(demo: tuple[Path, list[str]]) -> None:
    out, lines = demo
    index = out / "report" / "index.html"
    assert index.is_file()
    assert any(line.startswith("Report:") and str(index.resolve()) in line for line in lines)
    text = index.read_text(encoding="utf-8")
    for name in ("Kyrgyzstan–Tajikistan", "Armenia–Azerbaijan", "Collective Security Treaty"):
        assert name in text
    # The whole record shows the demo's story at a glance: kg-tj's peak of September 2022.
    assert re.search(r"Kyrgyzstan–Tajikistan peaked at \d+\.\d in the week of 2022-09-1", text)


def test_report_numbers_match_history_and_explain(
    demo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    database = demo[0] / "monitor.db"
    site = tmp_path / "site"
    output = run("--db", str(database), "report", "--out", str(site), "--at", AT)
    assert str((site / "index.html").resolve()) in output
    history = json.loads(
        run(
            "--db",
            str(database),
            "history",
            "-t",
            "kg-tj",
            "--since",
            "2022-09-10",
            "--until",
            AT,
            "--format",
            "json",
        )
    )
    explained = json.loads(
        run("--db", str(database), "explain", "-t", "kg-tj", "--at", AT, "--format", "json")
    )
    last = history[-1]
    assert explained["score"]["at"] == last["at"]
    page = (site / paths.theatre_page("kg-tj")).read_text(encoding="utf-8")
    shown = re.search(r'<strong class="score">([\d.]+)</strong>', page)
    assert shown is not None and float(shown.group(1)) == round(last["score"], 1)
    index = (site / "index.html").read_text(encoding="utf-8")
    row = re.search(r'<tr id="theatre-kg-tj">(.*?)</tr>', index, re.S)
    assert row is not None and f">{last['score']:.1f}<" in row.group(1)
    # Every story `explain` lists is on the page, and each story's points add up.
    per_story: dict[str, float] = {}
    for item in explained["contributions"]:
        per_story[item["title"]] = per_story.get(item["title"], 0.0) + item["points"]
    assert per_story
    for title, points in per_story.items():
        escaped = title.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&#x27;")
        assert escaped in page, title
        assert f"{points:+.2f} points" in page
    # Indicators by name, not by id, in every human-facing text.
    assert "border clash" in page and "border_clash" not in page


def test_report_without_matplotlib_has_tables_and_a_note(
    demo: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.report import charts

    monkeypatch.setattr(charts, "is_available", lambda: False)
    config = load_config(indicators_path=None, settings_path=None, env={})
    with db.Store.open(demo[0] / "monitor.db", readonly=True) as store:
        result = build_report(
            store, config, tmp_path / "site", now=datetime(2022, 9, 17, tzinfo=UTC)
        )
    assert result.charts == 0 and not (tmp_path / "site" / "charts").exists()
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "pip install &#x27;monitor[chart]&#x27;" in index and "<img" not in index
    assert "<table" in index


def test_hostile_feed_text_is_inert(tmp_path: Path) -> None:
    database = build_hostile_database(tmp_path / "hostile.db")
    site = tmp_path / "site"
    run("--db", str(database), "report", "--out", str(site))
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 4
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower(), page
        assert "onerror=" not in text.lower().replace("onerror=&quot;", ""), page
        assert not re.search(r"""(href|src)\s*=\s*["']?\s*javascript:""", text, re.I), page
        assert "Content-Security-Policy" in text and "default-src &#x27;none&#x27;" in text
    theatre = (site / paths.theatre_page("kg-tj")).read_text(encoding="utf-8")
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in theatre
    alert = (site / paths.alert_page(1)).read_text(encoding="utf-8")
    assert "What the email said" in alert and "&lt;script&gt;" in alert
    assert HOSTILE not in alert


def test_a_failed_build_leaves_the_old_site(tmp_path: Path) -> None:
    target = tmp_path / "site"
    with atomic_site(target) as site:
        site.write("index.html", "old")
    with pytest.raises(RuntimeError), atomic_site(target) as site:
        site.write("index.html", "half")
        raise RuntimeError("killed mid-build")
    assert (target / "index.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["site"], "no temporary folder left"
    with atomic_site(target) as site:
        site.write("index.html", "new")
        site.write("alerts/1.html", "a")
        assert (target / "index.html").read_text() == "old", "not visible before the swap"
    assert (target / "index.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_report_settings_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "monitor.toml"
    good.write_text(
        f'database_path = "{tmp_path}/state/monitor.db"\n'
        f'report_dir = "{tmp_path}/www/report"\nreport_url = "https://desk.example/risk"\n'
    )
    (tmp_path / "www").mkdir()
    settings = load_settings(good, {})
    assert settings.report_dir == tmp_path / "www" / "report"
    assert settings.report_url == "https://desk.example/risk/"
    cases = {
        f'report_dir = "{tmp_path}/missing/report"': "report_dir: the folder",
        'report_url = "ftp://desk.example/"': "report_url: expected an http:// or https:// address",
        "report_url = 3": "report_url: expected text",
        f'database_path = "{tmp_path}/m.db"\nreport_dir = "{tmp_path}"': "holds the database",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text + "\n")
        with pytest.raises(ConfigError) as caught:
            load_settings(bad, {})
        assert message in str(caught.value) and "\n" not in str(caught.value)
    assert (
        load_settings(None, {"MONITOR_REPORT_URL": "http://x.example"}).report_url
        == "http://x.example/"
    )


def test_background_rebuilds_never_overlap_and_end_with_the_newest(
    demo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from dataclasses import replace

    base = load_config(indicators_path=None, settings_path=None, env={})
    config = replace(base, settings=replace(base.settings, db_path=demo[0] / "monitor.db"))
    rebuilder = ReportRebuilder(config, tmp_path / "site")
    moments = [datetime(2022, 9, day, tzinfo=UTC) for day in (14, 15, 16, 17)]
    for moment in moments:
        rebuilder.request(moment)  # returns at once: the builds run in a worker thread
    assert rebuilder.wait(timeout=300)
    assert rebuilder.failures == 0
    assert 1 <= rebuilder.builds <= 2, "requests while one runs collapse into one more"
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "As of 2022-09-17 00:00 UTC" in index, "the last build is of the newest request"
