"""`monitor replay`: a dated corpus through the real db, matcher, scorer and alert rules on a
simulated clock, with no network and no email.

The bundled demo story (`monitor/lab/demo_data/items.jsonl` + `events.tsv`) and, when present,
the team's labelled corpus (`tests/fixtures/corpus/dev.jsonl`) are replayed for real into
SQLite files; expectations are computed from those files, not typed in.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import monitor
from monitor import db
from monitor.cli.app import cli
from monitor.cli.replay_command import render_json, render_table
from monitor.config import Config, load_config
from monitor.lab.corpus import CorpusItem, load_corpus
from monitor.lab.replay import (
    ReplayError,
    ReplayEvent,
    ReplayResult,
    compact_history,
    corpus_entry,
    event_outcomes,
    load_events,
    replay_corpus,
    replay_feeds,
)
from tests.support.http import AuditLog

REPO = Path(__file__).resolve().parents[2]
INDICATORS = REPO / "indicators.yaml"
DEMO_DATA = Path(monitor.__file__).resolve().parent / "lab" / "demo_data"
DEMO_ITEMS = DEMO_DATA / "items.jsonl"
DEMO_EVENTS = DEMO_DATA / "events.tsv"
DEV_CORPUS = REPO / "tests" / "fixtures" / "corpus" / "dev.jsonl"
THEATRES = ("kg-tj", "am-az", "csto")
T0 = datetime(2022, 9, 14, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(indicators_path=INDICATORS, settings_path=None, env={})


@pytest.fixture(scope="module")
def demo_replay(
    config: Config, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReplayResult, Path, AuditLog]:
    """The demo story replayed once (a few seconds), with every socket connect recorded."""
    path = tmp_path_factory.mktemp("replay") / "demo.db"
    audit = AuditLog()
    with audit.watching():
        result = replay_corpus(
            config, load_corpus(DEMO_ITEMS), db_path=path, corpus_name="items.jsonl"
        )
    return result, path, audit


def _cli(args: list[str]) -> Any:
    runner = CliRunner()
    return runner.invoke(cli, ["--indicators", str(INDICATORS), *args], env={"MONITOR_CONFIG": ""})


# ---------------------------------------------------------------------------
# The demo story, end to end


def test_demo_story_is_stored_scored_and_alerted_without_network_or_email(
    demo_replay: tuple[ReplayResult, Path, AuditLog],
) -> None:
    result, path, audit = demo_replay
    items = load_corpus(DEMO_ITEMS)
    assert audit.connects == [], "replay must not open any socket (no HTTP, no SMTP)"
    assert result.items_replayed == len(items) and result.undated_skipped == 0
    assert result.new_articles == len(items)
    with db.Store.open(path, readonly=True) as store:
        assert store.integrity_check() == "ok"
        [count] = store.query("SELECT count(*) AS n FROM articles")
        assert count["n"] == len(items)
        counts = store.outbox_counts()
        # urgent alerts were rendered into the outbox, and none of them was sent
        urgent = [
            a for a in result.alerts if a["kind"] in ("level_up", "surge", "critical", "resolved")
        ]
        assert counts.get("sent", 0) == 0
        assert sum(counts.values()) == len(urgent) > 0
        # the score history is the database's, with its evidence (as `explain` reads it)
        [peak] = store.query(
            "SELECT id, at, score FROM scores WHERE theatre_id = 'kg-tj' ORDER BY score DESC LIMIT 1"
        )
        assert store.contributions(peak["id"])
    assert peak["at"].startswith("2022-09"), "the September 2022 fighting is the kg-tj peak"
    peaks = [m for m in result.history if m.theatre_id == "kg-tj" and "peak" in m.note]
    assert max(m.score for m in peaks) == pytest.approx(peak["score"], abs=0.05)


def test_demo_alerts_are_the_rules_decisions_in_time_order(
    demo_replay: tuple[ReplayResult, Path, AuditLog],
) -> None:
    result, path, _ = demo_replay
    times = [a["at"] for a in result.alerts]
    assert times == sorted(times)
    with db.Store.open(path, readonly=True) as store:
        stored = store.query(
            "SELECT created_at, kind, theatre_id FROM alerts ORDER BY created_at, id"
        )
    assert [(a["at"], a["kind"], a["theatre"]) for a in result.alerts] == [
        (row["created_at"], row["kind"], row["theatre_id"]) for row in stored
    ]
    # every level_up in the report sits where the history shows that theatre's level rising
    rises = {(m.at, m.theatre_id, m.level) for m in result.history if "->" in m.note}
    for alert in result.alerts:
        if alert["kind"] == "level_up":
            at = datetime.fromisoformat(alert["at"].replace("Z", "+00:00"))
            assert (at, alert["theatre"], alert["level"]) in rises, alert


def test_demo_events_each_get_a_verdict_computed_from_the_alerts(
    demo_replay: tuple[ReplayResult, Path, AuditLog],
) -> None:
    result, _, _ = demo_replay
    events = load_events(DEMO_EVENTS, THEATRES)
    assert len(events) == sum(1 for line in DEMO_EVENTS.read_text().splitlines()[1:] if line)
    outcomes = event_outcomes(
        events, result.alerts, lookback=timedelta(days=30), lag=timedelta(days=7)
    )
    assert [o.event for o in outcomes] == events
    for outcome in outcomes:
        if outcome.status == "none":
            continue
        assert outcome.alert_at is not None
        assert any(
            a["at"] == outcome.alert_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            and a["theatre"] == outcome.event.theatre_id
            for a in result.alerts
        )
    # the story's items report the events themselves: each event is flagged by its own day
    assert sum(o.status != "none" for o in outcomes) >= len(events) - 1
    text = render_table(
        replace(result, events=outcomes), lookback=timedelta(days=30), lag=timedelta(days=7)
    )
    for event in events:
        assert event.day.isoformat() in text
    assert "no email was sent" in text


def test_replay_twice_gives_identical_output(
    config: Config, demo_replay: tuple[ReplayResult, Path, AuditLog], tmp_path: Path
) -> None:
    first, _, _ = demo_replay
    second = replay_corpus(
        config, load_corpus(DEMO_ITEMS), db_path=tmp_path / "again.db", corpus_name="items.jsonl"
    )
    assert render_json(second) == render_json(first)
    lookback, lag = timedelta(days=30), timedelta(days=7)
    assert render_table(second, lookback=lookback, lag=lag) == render_table(
        first, lookback=lookback, lag=lag
    )


# ---------------------------------------------------------------------------
# The command, on the team's corpus (undated and month/year dates)


@pytest.mark.skipif(not DEV_CORPUS.exists(), reason="tests/fixtures/corpus/dev.jsonl not present")
def test_cli_replays_the_dev_corpus_skipping_undated_items(tmp_path: Path) -> None:
    target = tmp_path / "dev.db"
    run = _cli(["--db", str(target), "replay", str(DEV_CORPUS), "--format", "json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.output)
    raw = [json.loads(line) for line in DEV_CORPUS.read_text(encoding="utf-8").splitlines() if line]
    undated = [r for r in raw if r["date"] is None]
    partial = [r for r in raw if r["date"] is not None and len(r["date"]) < 10]
    summary = report["replay"]
    assert summary["undated_skipped"] == len(undated)
    assert summary["replayed"] == len(raw) - len(undated)
    assert summary["approximate_dates"] == len(partial)
    assert summary["feeds"] == len({r["source"] for r in raw if r["date"] is not None})
    assert summary["emails_sent"] == 0 and "sent" not in summary["outbox"]
    assert summary["database"] == str(target)
    with db.Store.open(target, readonly=True) as store:
        published = {
            row["entry_id"]: row["published_at"]
            for row in store.query("SELECT entry_id, published_at FROM articles")
        }
    assert set(published) == {r["id"] for r in raw if r["date"] is not None}
    for record in partial:  # a month or year is placed at the start of that period
        start = record["date"] + ("-01" if len(record["date"]) == 7 else "-01-01")
        assert published[record["id"]] == f"{start}T00:00:00Z"
    # the replay database is a normal monitor database: the read-only CLI works on it
    shown = _cli(["--db", str(target), "alerts", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.output)) == len(report["alerts"])


def test_cli_table_says_nothing_was_sent_and_reports_events(tmp_path: Path) -> None:
    items = load_corpus(DEMO_ITEMS)
    subset = [i for i in items if i.published_at and i.published_at.year == 2021][:4]
    corpus = _write_corpus(tmp_path / "few.jsonl", subset)
    events = tmp_path / "events.tsv"
    day = subset[0].published_at.date()  # type: ignore[union-attr]
    events.write_text(
        f"date\ttheatre\tdescription\n{day}\tkg-tj\tthe first item's event\n"
        f"{day - timedelta(days=400)}\tcsto\tlong before anything\n",
        encoding="utf-8",
    )
    run = _cli(["replay", str(corpus), "--events", str(events)])
    assert run.exit_code == 0, run.output
    assert "no email was sent" in run.output
    assert "database: temporary" in run.output
    assert "the first item's event" in run.output
    assert "no warning" in run.output  # the csto event 400 days before any item


def test_a_corpus_without_dates_replays_nothing_and_says_so(tmp_path: Path) -> None:
    undated = [replace(_item(name, "Wire"), published_at=None, date=None) for name in "ab"]
    run = _cli(["replay", str(_write_corpus(tmp_path / "undated.jsonl", undated))])
    assert run.exit_code == 0, run.output
    assert "2 undated item(s) skipped" in run.output and "nothing to replay" in run.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("2022-09-14\tkg-tj\n", ":1: expected date<TAB>theatre", id="two-fields"),
        pytest.param("2022-13-01\tkg-tj\tx\n", ":1: bad date '2022-13-01'", id="bad-month"),
        pytest.param(
            "14.09.2022\tkg-tj\tx\n",
            ":1: bad date '14.09.2022': expected YYYY-MM-DD",
            id="bad-format",
        ),
        pytest.param(
            "date\ttheatre\tdescription\n2022-09-14\tkg-uz\tx\n",
            ":2: unknown theatre 'kg-uz'",
            id="unknown-theatre",
        ),
        pytest.param(
            "2022-09-14\tkg-tj\tok\ndate\ttheatre\tdescription\n",
            ":2: bad date 'date'",
            id="header-not-first",
        ),
    ],
)
def test_bad_events_file_is_one_clear_line_and_exit_2(
    tmp_path: Path, content: str, message: str
) -> None:
    events = tmp_path / "events.tsv"
    events.write_text(content, encoding="utf-8")
    run = _cli(["replay", str(DEMO_ITEMS), "--events", str(events)])
    assert run.exit_code == 2
    assert message in run.output and str(events) in run.output
    assert "Traceback" not in run.output


def test_existing_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    existing = tmp_path / "monitor.db"
    with db.Store.open(existing) as store:
        store.sync_feeds([], now=T0)
    before = existing.read_bytes()
    for args in (
        ["replay", str(DEMO_ITEMS), "--db", str(existing)],  # deprecated, still refused
        ["--db", str(existing), "replay", str(DEMO_ITEMS)],
    ):
        run = _cli(args)
        assert run.exit_code == 2, run.output
        assert "already exists" in run.output
    assert existing.read_bytes() == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        pytest.param("--tick", "10m", "at least 1h", id="tick-too-small"),
        pytest.param("--tick", "daily", "not a duration", id="tick-not-a-duration"),
        pytest.param("--lookback", "0d", "more than 0", id="zero-lookback"),
    ],
)
def test_bad_duration_options(option: str, value: str, message: str) -> None:
    run = _cli(["replay", str(DEMO_ITEMS), option, value])
    assert run.exit_code == 2 and message in run.output


def test_bad_corpus_line_names_file_and_line(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text(
        DEMO_ITEMS.read_text(encoding="utf-8").splitlines()[0] + "\n{not json\n", encoding="utf-8"
    )
    run = _cli(["replay", str(corpus)])
    assert run.exit_code != 0 and f"{corpus}:2: invalid JSON" in run.output


# ---------------------------------------------------------------------------
# The clock: skipping quiet stretches changes nothing from each item on


def test_skipping_quiet_stretches_gives_the_points_and_alerts_of_a_continuous_run(
    config: Config, tmp_path: Path
) -> None:
    items = load_corpus(DEMO_ITEMS)
    first = [i for i in items if i.published_at and i.published_at.year == 2021][:3]
    later = [i for i in items if i.published_at and i.published_at.year == 2022][:2]
    subset = first + later  # months apart: a quiet stretch between
    skipped = replay_corpus(config, subset, db_path=tmp_path / "skip.db", corpus_name="c")
    full = replay_corpus(
        config, subset, db_path=tmp_path / "full.db", corpus_name="c", skip_quiet=False
    )
    assert skipped.moments < full.moments, "the quiet stretch was not skipped"
    assert [(a["at"], a["kind"], a["theatre"], a["reason"]) for a in skipped.alerts] == [
        (a["at"], a["kind"], a["theatre"], a["reason"]) for a in full.alerts
    ]
    assert skipped.alerts, "the subset should raise alerts, or this test proves nothing"
    item_times = sorted({i.published_at for i in subset if i.published_at})
    with (
        db.Store.open(tmp_path / "skip.db", readonly=True) as a,
        db.Store.open(tmp_path / "full.db", readonly=True) as b,
    ):
        columns = "theatre_id, at, score, level, change_24h, change_7d, baseline, surge, stories"
        sql = f"SELECT {columns} FROM scores WHERE at >= ? ORDER BY theatre_id, at"
        quick = a.query(sql, [item_times[0].strftime("%Y-%m-%dT%H:%M:%SZ")])
        slow = {(r["theatre_id"], r["at"]): r for r in b.query(sql, ["0"])}
    assert quick
    for row in quick:
        # a point the skipping run made during a stretch it then jumped is 0 in both runs;
        # from each item on (within the scorer's lookback) it is the continuous run's point
        assert slow[(row["theatre_id"], row["at"])]["score"] == row["score"]
        assert slow[(row["theatre_id"], row["at"])]["level"] == row["level"]
    for at in item_times:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        for row in quick:
            if row["at"] == stamp:
                assert slow[(row["theatre_id"], stamp)] == row


def test_replay_starts_a_lookback_before_the_first_item_and_ends_quiet(
    demo_replay: tuple[ReplayResult, Path, AuditLog], config: Config
) -> None:
    result, path, _ = demo_replay
    items = load_corpus(DEMO_ITEMS)
    first = min(i.published_at for i in items if i.published_at)
    last = max(i.published_at for i in items if i.published_at)
    assert result.start is not None and result.end is not None
    assert result.start <= first - timedelta(days=config.scoring.baseline_days)
    assert result.end >= last + timedelta(days=config.scoring.window_days)
    with db.Store.open(path, readonly=True) as store:
        final = store.query("SELECT level FROM latest_scores")
    assert {row["level"] for row in final} == {"low"}


# ---------------------------------------------------------------------------
# Pieces


def test_one_feed_per_source_with_distinct_stable_ids() -> None:
    items = [
        _item("a", "Reuters (via X)"),
        _item("b", "Reuters (via Y)"),
        _item("c", "ТАСС"),
        _item("d", "ТАСС"),
    ]
    feeds = replay_feeds(items)
    assert set(feeds) == {"Reuters (via X)", "Reuters (via Y)", "ТАСС"}
    assert len({f.id for f in feeds.values()}) == 3
    assert replay_feeds(list(reversed(items))) == feeds
    entry = corpus_entry(items[2], feeds["ТАСС"])
    assert entry.feed_id == feeds["ТАСС"].id and entry.entry_id == "c"
    assert entry.title == "Title c" and entry.summary == "Body of c." and entry.language == "en"


def _event(day: date, theatre: str = "kg-tj") -> ReplayEvent:
    return ReplayEvent(day=day, theatre_id=theatre, description="event", line=1)


def _alert(at: str, kind: str = "level_up", theatre: str = "kg-tj") -> dict[str, Any]:
    return {"created_at": at, "kind": kind, "theatre_id": theatre}


@pytest.mark.parametrize(
    ("alerts", "status", "days", "kind"),
    [
        pytest.param(
            [_alert("2022-09-10T00:00:00Z")], "ahead", 4, "level_up", id="four-days-ahead"
        ),
        pytest.param(
            [_alert("2022-09-01T00:00:00Z", "surge"), _alert("2022-09-10T00:00:00Z")],
            "ahead",
            13,
            "surge",
            id="first-of-several",
        ),
        pytest.param(
            [_alert("2022-09-14T18:00:00Z", "critical")], "same day", 0, "critical", id="same-day"
        ),
        pytest.param([_alert("2022-09-17T00:00:00Z")], "after", 3, "level_up", id="late"),
        pytest.param([_alert("2022-08-01T00:00:00Z")], "none", None, None, id="before-lookback"),
        pytest.param([_alert("2022-09-30T00:00:00Z")], "none", None, None, id="after-lag"),
        pytest.param(
            [_alert("2022-09-10T00:00:00Z", theatre="am-az")],
            "none",
            None,
            None,
            id="other-theatre",
        ),
        pytest.param(
            [
                _alert("2022-09-10T00:00:00Z", "resolved"),
                _alert("2022-09-11T00:00:00Z", "level_down"),
            ],
            "none",
            None,
            None,
            id="calming-kinds-do-not-warn",
        ),
    ],
)
def test_event_outcome(
    alerts: list[dict[str, Any]], status: str, days: int | None, kind: str | None
) -> None:
    [outcome] = event_outcomes(
        [_event(date(2022, 9, 14))], alerts, lookback=timedelta(days=30), lag=timedelta(days=7)
    )
    assert (outcome.status, outcome.days, outcome.alert_kind) == (status, days, kind)


def _row(at: str, score: float, level: str, theatre: str = "kg-tj") -> dict[str, Any]:
    return {"theatre_id": theatre, "at": at, "score": score, "level": level}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([_row("2022-01-01T00:00:00Z", 0, "low")], [], id="flat-zero"),
        pytest.param(
            [
                _row("2022-01-01T00:00:00Z", 0, "low"),
                _row("2022-01-02T00:00:00Z", 40, "elevated"),
                _row("2022-01-03T00:00:00Z", 60, "high"),
                _row("2022-01-04T00:00:00Z", 50, "high"),
                _row("2022-01-05T00:00:00Z", 20, "elevated"),
                _row("2022-01-06T00:00:00Z", 0.5, "low"),
            ],
            [
                ("2022-01-02", "low -> elevated"),
                ("2022-01-03", "elevated -> high, peak"),
                ("2022-01-05", "high -> elevated"),
                ("2022-01-06", "elevated -> low"),
            ],
            id="one-episode",
        ),
        pytest.param(
            [
                _row("2022-01-01T00:00:00Z", 10, "low"),
                _row("2022-01-02T00:00:00Z", 0, "low"),
                _row("2022-01-03T00:00:00Z", 12, "low"),
                _row("2022-01-04T00:00:00Z", 12, "low"),
            ],
            [("2022-01-01", "peak"), ("2022-01-03", "peak")],
            id="two-episodes-first-of-equal-peaks",
        ),
    ],
)
def test_compact_history(rows: list[dict[str, Any]], expected: list[tuple[str, str]]) -> None:
    marks = compact_history(rows, theatres=THEATRES)
    assert [(m.at.date().isoformat(), m.note) for m in marks] == expected


def test_compact_history_orders_theatres_as_configured_at_equal_times() -> None:
    rows = [_row("2022-01-01T00:00:00Z", 5, "low", t) for t in ("csto", "am-az", "kg-tj")]
    assert [m.theatre_id for m in compact_history(rows, theatres=THEATRES)] == list(THEATRES)


def test_load_events_skips_header_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.tsv"
    path.write_text(
        "date\ttheatre\tdescription\n# a comment\n\n2022-09\tcsto\tsomething\twith a tab\n",
        encoding="utf-8",
    )
    [event] = load_events(path, THEATRES)
    assert event == ReplayEvent(date(2022, 9, 1), "csto", "something\twith a tab", 4)


def test_missing_events_file_is_a_replay_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read events"):
        load_events(tmp_path / "nope.tsv", THEATRES)


# ---------------------------------------------------------------------------
# Helpers


def _item(item_id: str, source: str) -> CorpusItem:
    return CorpusItem(
        id=item_id,
        published_at=T0,
        date_precision="day",
        source=source,
        url=f"https://example.org/{item_id}",
        lang="en",
        title=f"Title {item_id}",
        text=f"Title {item_id}\n\nBody of {item_id}.",
        labels=(),
        theatre="kg-tj",
        date="2022-09-14",
    )


def _write_corpus(path: Path, items: list[CorpusItem]) -> Path:
    lines = []
    for item in items:
        lines.append(
            json.dumps(
                {
                    "id": item.id,
                    "date": item.date,
                    "source": item.source,
                    "url": item.url,
                    "lang": item.lang,
                    "title": item.title,
                    "text": item.text,
                    "labels": list(item.labels),
                    "theatre": item.theatre,
                },
                ensure_ascii=False,
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
