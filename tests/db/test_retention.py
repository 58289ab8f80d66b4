"""Retention: `[retention]` settings, `monitor prune [--dry-run]`, the daemon's
maintenance job, and the promise that evidence is never removed.

The evidence test runs on a real database built through the real pipeline: the bundled
demo story replayed (`replay_corpus`: the poll path's storage, the matcher, the scorer,
the alert rules) with a score point every 6 hours, its alert emails then delivered through
the real outbox drain to a local SMTP server. Everything in it is years old, so the default
rules all apply when `monitor prune` runs today.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import monitor
from monitor import db, pipeline
from monitor.cli.app import cli
from monitor.config import Config, load_config, load_settings
from monitor.db.retention import (
    RULES,
    PruneStep,
    prune,
    retention_plan,
    scorer_lookback_days,
)
from monitor.errors import ConfigError
from monitor.lab.corpus import load_corpus
from monitor.lab.mailsink import MailSink
from monitor.lab.replay import replay_corpus
from monitor.models import (
    EVENT_CONFIDENCE,
    Contribution,
    Entry,
    Feed,
    Match,
    RetentionSettings,
    ScorePoint,
)

REPO = Path(__file__).resolve().parents[2]
DEMO_ITEMS = Path(monitor.__file__).resolve().parent / "lab" / "demo_data" / "items.jsonl"


def cli_run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------------------
# Settings


def settings_from(tmp_path: Path, text: str) -> RetentionSettings:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, {}).retention


def test_defaults_when_the_section_is_absent(tmp_path: Path) -> None:
    assert settings_from(tmp_path, "") == RetentionSettings()
    assert RetentionSettings() == RetentionSettings(
        article_text_days=365,
        uncounted_match_days=90,
        score_full_days=90,
        score_hourly_days=365,
        sent_email_days=90,
        run_days=30,
        batch_rows=500,
    )


def test_values_are_read(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path, "[retention]\narticle_text_days = 0\nscore_full_days = 60\nbatch_rows = 50\n"
    )
    assert settings.article_text_days == 0
    assert settings.score_full_days == 60
    assert settings.batch_rows == 50


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            "article_days = 3",
            "retention.article_days: unknown key (expected one of: article_text_days,",
            id="unknown-key",
        ),
        pytest.param(
            "run_days = -1",
            "retention.run_days: expected a whole number of at least 0, got -1",
            id="negative",
        ),
        pytest.param(
            "run_days = 1.5",
            "retention.run_days: expected a whole number, got 1.5",
            id="fraction",
        ),
        pytest.param(
            'run_days = "30"', "retention.run_days: expected a whole number, got '30'", id="text"
        ),
        pytest.param(
            "run_days = true", "retention.run_days: expected a whole number, got True", id="bool"
        ),
        pytest.param(
            "run_days = 99999999999",
            "retention.run_days: expected at most 36500 days (0 keeps for ever)",
            id="huge",
        ),
        pytest.param(
            "batch_rows = 0",
            "retention.batch_rows: expected a whole number of at least 1, got 0",
            id="batch-zero",
        ),
        pytest.param(
            "batch_rows = 1000000",
            "retention.batch_rows: expected at most 100000 rows",
            id="batch-huge",
        ),
        pytest.param(
            "score_full_days = 90\nscore_hourly_days = 30",
            "retention.score_hourly_days: must be 0 (no daily stage) or at least "
            "score_full_days (30 < 90)",
            id="hourly-before-full",
        ),
        pytest.param(
            "score_full_days = 0",
            "retention.score_hourly_days: score_full_days = 0 keeps every point for ever",
            id="full-off-hourly-on",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, f"[retention]\n{body}\n")
    text = str(caught.value)
    assert "\n" not in text
    assert message in text, text


def test_a_bad_retention_setting_is_exit_2_through_the_cli(tmp_path: Path) -> None:
    settings = tmp_path / "monitor.toml"
    settings.write_text("[retention]\nrun_days = -3\n", encoding="utf-8")
    code, _, err = cli_run(["--config", str(settings), "--db", str(tmp_path / "m.db"), "prune"])
    assert code == 2
    assert err.strip().count("\n") == 0 and "retention.run_days" in err


def test_full_resolution_never_shorter_than_what_the_scorer_reads() -> None:
    now = datetime(2026, 1, 10, 15, 30, tzinfo=UTC)
    plan = retention_plan(
        RetentionSettings(score_full_days=3, score_hourly_days=3), now=now, baseline_days=28
    )
    assert plan.score_full_days == scorer_lookback_days(28) == 30
    assert plan.score_full_days_raised_from == 3
    assert plan.score_full_before == datetime(2025, 12, 11, tzinfo=UTC)  # a UTC midnight
    assert plan.score_hourly_before == plan.score_full_before
    off = retention_plan(
        RetentionSettings(score_full_days=0, score_hourly_days=0, run_days=0),
        now=now,
        baseline_days=28,
    )
    assert off.score_full_before is None and off.run_before is None


# ---------------------------------------------------------------------------
# A real database through the real pipeline


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(indicators_path=REPO / "indicators.yaml", settings_path=None, env={})


@pytest.fixture(scope="module")
def pipeline_db(config: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo story replayed with a point every 6 h; its emails delivered for real."""
    folder = tmp_path_factory.mktemp("retention")
    path = folder / "story.db"
    result = replay_corpus(
        config, load_corpus(DEMO_ITEMS), db_path=path, corpus_name="demo", tick=timedelta(hours=6)
    )
    assert result.end is not None
    with MailSink(folder / "mail") as sink, db.Store.open(path) as store:
        smtp = replace(
            config.settings.smtp,
            host="127.0.0.1",
            port=sink.port,
            security="none",
            sender="monitor@test.localhost",
            recipients=("analyst@example.org",),
        )
        send_config = replace(config, settings=replace(config.settings, db_path=path, smtp=smtp))
        moment = result.end + timedelta(hours=1)
        while store.due_outbox(now=moment):
            pipeline.deliver_outbox(store, send_config, now=moment, limit=500)
        assert store.outbox_counts().get("sent", 0) >= 10
    return path


def snapshot(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in conn.execute(sql)]

        return {
            "scores": {
                row[0]: row[1:]
                for row in rows("SELECT id, theatre_id, at, score, level FROM scores")
            },
            "contributions": rows(
                "SELECT score_id, match_id, story_id, indicator_id, points FROM score_contributions"
            ),
            "matches": {
                row[0]: row[1:]
                for row in rows("SELECT id, article_id, confidence, evidence FROM matches")
            },
            "articles": {
                row[0]: row[1:] for row in rows("SELECT id, title, summary, url FROM articles")
            },
            "alerts": rows("SELECT id, score_id, match_ids FROM alerts"),
            "daily": rows(
                "SELECT theatre_id, day, max_score, last_level FROM daily_scores ORDER BY 1, 2"
            ),
            "sent_bodies": rows(
                "SELECT count(*) FROM outbox WHERE status = 'sent' AND message IS NOT NULL"
            )[0][0],
            "fk": rows("PRAGMA foreign_key_check"),
            "integrity": rows("PRAGMA integrity_check"),
        }
    finally:
        conn.close()


def test_prune_removes_old_data_and_never_evidence(pipeline_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    shutil.copy(pipeline_db, path)
    before = snapshot(path)
    peak_id = max(before["scores"], key=lambda i: before["scores"][i][2])
    peak_theatre, peak_at = before["scores"][peak_id][0], before["scores"][peak_id][1]
    explain_args = ["--db", str(path), "explain", peak_theatre, "--at", peak_at, "--format", "json"]
    explained_before = cli_run(explain_args)

    code, dry, err = cli_run(["--db", str(path), "prune", "--dry-run", "--format", "json"])
    assert code == 0, err
    counted = json.loads(dry)["rows"]
    assert snapshot(path) == before  # a dry run changes nothing

    code, out, err = cli_run(["--db", str(path), "prune", "--format", "json"])
    assert code == 0, err
    removed = json.loads(out)["rows"]
    assert removed == counted
    # every rule had something to do on this database (so the checks below can fail)
    for rule in ("score_points", "uncounted_matches", "article_text", "sent_emails"):
        assert removed[rule] > 0, rule

    after = snapshot(path)
    assert after["integrity"] == [("ok",)] and after["fk"] == []
    assert len(after["scores"]) == len(before["scores"]) - removed["score_points"]
    assert after["sent_bodies"] == before["sent_bodies"] - removed["sent_emails"]

    # 1. every alert keeps its score point and the matches (and article texts) it names
    assert after["alerts"] == before["alerts"]
    for _, score_id, match_ids in after["alerts"]:
        assert score_id is None or score_id in after["scores"]
        for match_id in json.loads(match_ids or "[]"):
            assert after["matches"][match_id] == before["matches"][match_id]
            article = after["matches"][match_id][0]
            assert after["articles"][article] == before["articles"][article]

    # 2. every kept point keeps exactly its contributions, their matches and articles
    kept = set(after["scores"])
    assert all(after["scores"][i] == before["scores"][i] for i in kept)
    assert after["contributions"] == [c for c in before["contributions"] if c[0] in kept]
    for _, match_id, *_ in after["contributions"]:
        assert after["matches"][match_id] == before["matches"][match_id]
        article = after["matches"][match_id][0]
        assert after["articles"][article] == before["articles"][article]
    assert cli_run(explain_args) == explained_before

    # 3. downsampled, not rewritten: each day keeps its peak and the level it ended on
    assert after["daily"] == before["daily"]

    # 4. what went: uncounted matches and texts that nothing needs
    gone = set(before["matches"]) - set(after["matches"])
    assert len(gone) == removed["uncounted_matches"]
    assert all(before["matches"][m][1] < EVENT_CONFIDENCE for m in gone)
    cleared = [a for a in after["articles"] if after["articles"][a][1] != before["articles"][a][1]]
    assert len(cleared) == removed["article_text"]
    assert all(after["articles"][a][1] == "" for a in cleared)
    assert all(after["articles"][a][0] == before["articles"][a][0] for a in cleared)  # title

    # and a second run has nothing left to do
    code, out, _ = cli_run(["--db", str(path), "prune", "--format", "json"])
    assert code == 0 and json.loads(out)["total"] == 0


def test_pruned_history_scores_the_next_point_as_the_full_history_does(
    pipeline_db: Path, tmp_path: Path, config: Config
) -> None:
    """The full-resolution stage covers what the scorer reads back (baseline, changes):
    pruned as hard as the settings allow, the next point is the one a full history gives."""
    with db.Store.open(pipeline_db, readonly=True) as store:
        last = datetime.fromisoformat(store.query("SELECT max(at) AS at FROM scores")[0]["at"])
    now = last + timedelta(hours=6)
    scored = []
    for prune_it in (False, True):
        path = tmp_path / f"copy-{prune_it}.db"
        shutil.copy(pipeline_db, path)
        with db.Store.open(path) as store:
            if prune_it:
                tight = RetentionSettings(score_full_days=1, score_hourly_days=1)
                plan = retention_plan(tight, now=now, baseline_days=config.scoring.baseline_days)
                result = prune(store, plan, pause_seconds=0)
                assert result.rows["score_points"] > 0
            run_config = replace(config, settings=replace(config.settings, db_path=path))
            summary = pipeline.score_theatres(store, run_config, now=now)
            scored.append(
                [(p.theatre_id, p.index, p.level, p.baseline, p.change_24h) for p in summary.points]
            )
    assert scored[0] == scored[1]


# ---------------------------------------------------------------------------
# Rules on a database built through the Store API


FEED = Feed(id="wire", url="https://wire.example/rss", name="Wire")
START = datetime(2024, 1, 1, tzinfo=UTC)


def dense_database(path: Path, *, days: int, per_hour: int = 4) -> Path:
    """`days` of points every 15 minutes for two theatres, each with one contribution."""
    with db.Store.open(path) as store:
        store.sync_feeds([FEED], now=START)
        with store.transaction():
            [article] = store.store_entries(
                FEED,
                [
                    Entry(
                        entry_id="e1",
                        feed_id="wire",
                        url="https://wire.example/1",
                        title="Guards trade fire near Batken",
                        summary="Guards exchanged fire on the border.",
                        published_at=START,
                        language="en",
                        content_hash="h1",
                    )
                ],
                now=START,
            )
            [match_id] = store.store_matches(
                article,
                [Match("border_clash", "kg-tj", 0.9, "Guards exchanged fire.", ("fire",))],
                now=START,
            )
        step = timedelta(minutes=60 // per_hour)
        for theatre in ("kg-tj", "am-az"):
            with store.transaction():
                at = START
                while at < START + timedelta(days=days):
                    value = 10 + (at.hour * 7 + at.minute) % 50
                    store.insert_score(
                        ScorePoint(
                            theatre,
                            at,
                            value / 2,
                            float(value),
                            "low",
                            "1",
                            contributions=(
                                Contribution(article.story_id, match_id, "border_clash", 1.0),
                            ),
                        )
                    )
                    at += step
    return path


def test_hourly_then_daily_downsampling_keeps_each_periods_peak_and_last(tmp_path: Path) -> None:
    path = dense_database(tmp_path / "m.db", days=60)
    now = START + timedelta(days=70)
    plan = retention_plan(
        RetentionSettings(score_full_days=40, score_hourly_days=50), now=now, baseline_days=28
    )
    with db.Store.open(path) as store:
        before = store.query("SELECT theatre_id, at, score FROM scores ORDER BY theatre_id, at")
        result = prune(store, plan, pause_seconds=0)
        after = store.query("SELECT theatre_id, at, score FROM scores ORDER BY theatre_id, at")
    assert result.rows["score_points"] == len(before) - len(after) > 0

    def periods(
        rows: list[dict[str, Any]], width: int
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault((row["theatre_id"], row["at"][:width]), []).append(row)
        return grouped

    full = plan.score_full_before.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    hourly = plan.score_hourly_before.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    for stage, width, lo, hi in (("daily", 10, "", hourly), ("hourly", 13, hourly, full)):
        was = periods([r for r in before if lo <= r["at"] < hi], width)
        now_ = periods([r for r in after if lo <= r["at"] < hi], width)
        assert was.keys() == now_.keys(), stage
        for key, points in was.items():
            peak = max(points, key=lambda r: (r["score"], r["at"]))
            kept = {r["at"] for r in now_[key]}
            assert kept == {peak["at"], points[-1]["at"]}, (stage, key)
    recent = [r for r in before if r["at"] >= full]
    assert [r for r in after if r["at"] >= full] == recent


def test_an_uncounted_match_named_by_an_alert_stays_and_the_newest_revision_stays(
    tmp_path: Path,
) -> None:
    from monitor.models import AlertDecision

    with db.Store.open(tmp_path / "m.db") as store:
        store.sync_feeds([FEED], now=START)
        ids = []
        with store.transaction():
            for index in range(4):
                [article] = store.store_entries(
                    FEED,
                    [
                        Entry(
                            entry_id=f"e{index}",
                            feed_id="wire",
                            url=f"https://wire.example/{index}",
                            title=f"Denial number {index}",
                            summary="Officials denied any clash.",
                            published_at=START,
                            language="en",
                            content_hash=f"h{index}",
                        )
                    ],
                    now=START,
                )
                ids += store.store_matches(
                    article,
                    [Match("border_clash", "kg-tj", 0.2, "denied any clash", ("clash",))],
                    now=START,
                )
            store.insert_alert(
                AlertDecision(
                    dedup_key="k",
                    kind="critical",
                    theatre_id="kg-tj",
                    created_at=START,
                    urgent=True,
                    reason="r",
                    match_ids=(ids[0],),
                )
            )
        plan = retention_plan(
            RetentionSettings(), now=START + timedelta(days=400), baseline_days=28
        )
        result = prune(store, plan, pause_seconds=0)
        left = {row["id"] for row in store.query("SELECT id FROM matches")}
    assert left == {ids[0], ids[3]}  # named by the alert; the highest revision
    assert result.rows["uncounted_matches"] == 2
    # the texts of the other three articles go; the one the alert names keeps its text
    assert result.rows["article_text"] == 3


def test_runs_keep_each_jobs_newest_and_sent_bodies_only_are_cleared(tmp_path: Path) -> None:
    with db.Store.open(tmp_path / "m.db") as store:
        for day in range(5):
            at = START + timedelta(days=day)
            store.record_run("poll", started_at=at, finished_at=at, ok=True)
        store.record_run("once", started_at=START, finished_at=START, ok=True)
        plan = retention_plan(
            RetentionSettings(run_days=1), now=START + timedelta(days=100), baseline_days=28
        )
        result = prune(store, plan, pause_seconds=0)
        left = store.query("SELECT job, finished_at FROM runs ORDER BY job")
    assert result.rows["runs"] == 4
    assert [(r["job"], r["finished_at"][:10]) for r in left] == [
        ("once", "2024-01-01"),
        ("poll", "2024-01-05"),
    ]


# ---------------------------------------------------------------------------
# Never blocking a writer


def test_prune_lets_a_concurrent_writer_in_between_its_batches(tmp_path: Path) -> None:
    """A writer on its own connection (as the daemon's outbox thread or another process)
    commits all through a long prune; its longest wait stays within a few batches."""
    path = dense_database(tmp_path / "m.db", days=3)
    now = START + timedelta(days=400)
    plan = retention_plan(RetentionSettings(batch_rows=100), now=now, baseline_days=28)
    stop = threading.Event()
    waits: list[tuple[float, float]] = []  # (started, seconds waited for the commit)
    failures: list[str] = []

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            n = 0
            while not stop.is_set():
                began = time.monotonic()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"w{n}",))
                conn.execute("COMMIT")
                waits.append((began, time.monotonic() - began))
                n += 1
                time.sleep(0.005)
        except sqlite3.Error as exc:  # pragma: no cover (the failure is reported below)
            failures.append(str(exc))
        finally:
            conn.close()

    batch_seconds: list[float] = []
    last = [time.monotonic()]

    def on_step(step: PruneStep) -> None:
        batch_seconds.append(time.monotonic() - last[0])
        last[0] = time.monotonic()

    thread = threading.Thread(target=writer)
    with db.Store.open(path) as store:
        thread.start()
        deadline = time.monotonic() + 30
        while not waits and time.monotonic() < deadline:  # the writer is under way
            time.sleep(0.01)
        began = time.monotonic()
        result = prune(store, plan, on_step=on_step)
        ended = time.monotonic()
        stop.set()
        thread.join(timeout=60)
    assert failures == []
    assert result.rows["score_points"] > 0 and result.batches >= 20
    during = [seconds for started, seconds in waits if began <= started <= ended]
    assert len(during) >= result.batches // 2, "the writer committed between the batches"
    # bounded by a few batches, never by the whole prune (generous: the machine is busy)
    assert max(during) <= 3 * max(batch_seconds) + 2.0
    assert max(during) < (ended - began) / 2


# ---------------------------------------------------------------------------
# The daemon's maintenance job


def test_the_daemons_maintenance_job_applies_retention_and_logs_a_run(
    tmp_path: Path, config: Config
) -> None:
    from monitor.service.daemon import Daemon

    path = dense_database(tmp_path / "m.db", days=4)
    settings = replace(config.settings, db_path=path)
    daemon = Daemon(replace(config, settings=settings), clock=lambda: START + timedelta(days=400))
    with db.Store.open(path) as store:
        daemon.store = store
        points = store.query("SELECT count(*) AS n FROM scores")[0]["n"]
        asyncio.run(daemon.maintenance_job())
        left = store.query("SELECT count(*) AS n FROM scores")[0]["n"]
        [run] = store.query("SELECT job, summary FROM runs WHERE job = 'maintenance'")
    summary = json.loads(run["summary"])
    assert summary["score_points"] == points - left > 0
    assert set(RULES) <= set(summary)


def test_the_running_daemon_prunes_and_records_it(
    tmp_path: Path, feed_server: Any, sink: Any
) -> None:
    """The real daemon (a subprocess) on a database with a year-old dense history: its
    maintenance job runs, thins the old points and says so in its log and job log."""
    from tests.support.daemon import DaemonProcess, write_deployment

    deployment = write_deployment(
        tmp_path / "deploy", feeds={"wire": feed_server.url("/wire.xml")}, smtp_port=sink.port
    )
    with deployment.settings.open("a", encoding="utf-8") as settings:
        settings.write("maintenance_tick_seconds = 2\n")  # the [schedule] table is last
    dense_database(deployment.db, days=2)
    with db.Store.open(deployment.db, readonly=True) as store:
        points = store.query("SELECT count(*) AS n FROM scores")[0]["n"]
    daemon = DaemonProcess(deployment)
    try:
        log = daemon.wait_for_log("maintenance score_points=", timeout=120)
    finally:
        assert daemon.stop() == 0
    assert "maintenance score_points=0 " not in log
    with db.Store.open(deployment.db, readonly=True) as store:
        left = store.query("SELECT count(*) AS n FROM scores WHERE at < '2025-01-01'")[0]["n"]
        runs = store.query("SELECT summary FROM runs WHERE job = 'maintenance'")
    assert 0 < left < points
    assert runs and json.loads(runs[0]["summary"])["score_points"] == points - left
