"""`monitor status`: the health rules, the lock look-up, the report, on real databases."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.config import load_config
from monitor.fetch import politeness
from monitor.models import (
    AlertDecision,
    Entry,
    Feed,
    FeedState,
    FetchResult,
    ScheduleSettings,
    Theatre,
)
from monitor.service import status
from monitor.service.instance_lock import acquire_instance_lock, lock_path_for

NOW = datetime(2024, 9, 16, 12, 0, tzinfo=UTC)
POLICY = status.StatusPolicy(
    max_cycle_age=timedelta(minutes=45),
    feed_failing_after=timedelta(hours=24),
    pending_overdue_after=timedelta(hours=1),
    dead_window=timedelta(days=7),
)
RUNNING = status.DaemonState(True, 4242, "running (pid 4242 holds monitor.db.lock)")
STOPPED = status.DaemonState(False, None, "not running (monitor.db.lock is not locked)")


@dataclass
class Scene:
    """What the database records: runs (job, minutes ago, error), feeds (id, kind),
    outbox messages (status, hours ago, held until hours from now) and articles (stored
    hours ago, oldest first as a poller stores them; none given: one 10 minutes ago)."""

    runs: list[tuple[str, float, str | None]] = field(default_factory=list)
    feeds: list[tuple[str, str]] = field(default_factory=list)
    outbox: list[tuple[str, float, float | None]] = field(default_factory=list)
    articles: list[float] | None = None


def build(path: Path, scene: Scene) -> Path:
    with db.Store.open(path) as store:
        for job, minutes, error in scene.runs:
            at = NOW - timedelta(minutes=minutes)
            store.record_run(job, started_at=at - timedelta(seconds=5), finished_at=at,
                             ok=error is None, summary={"feeds": 3, "errors": 0}, error=error)  # fmt: skip
        store.sync_feeds(
            [Feed(f, f"https://{f}.example/rss", f.upper()) for f, _ in scene.feeds], now=NOW
        )
        for feed_id, kind in scene.feeds:
            if kind == "never":
                continue
            url = f"https://{feed_id}.example/rss"
            fetched = NOW - timedelta(minutes=5)
            if kind == "ok":
                state = FeedState(feed_id, url)
                result = FetchResult(feed_id, "not_modified", fetched, http_status=304)
            elif kind == "gone":  # the state the real poll leaves: politeness decides
                result = FetchResult(feed_id, "gone", fetched, http_status=410,
                                     error_kind="http_410", error_message="Gone")  # fmt: skip
                state = politeness.next_state(
                    FeedState(feed_id, url), result, now=fetched, schedule=ScheduleSettings(),
                    feed_interval_seconds=None, feed_ttl_seconds=None, rng=random.Random(1),
                )  # fmt: skip
            else:  # "failing-<hours>"
                since = NOW - timedelta(hours=float(kind.split("-")[1]))
                state = FeedState(feed_id, url, consecutive_failures=4, failing_since=since)
                result = FetchResult(feed_id, "error", fetched, http_status=503,
                                     error_kind="http_503", error_message="Service Unavailable")  # fmt: skip
            with store.transaction():
                store.record_poll(state, result, None, entries_seen=0)
        feed = Feed("wire", "https://wire.example/rss", "Wire")
        store.sync_feeds([feed, *(Feed(f, f"https://{f}.example/rss", f.upper())
                                  for f, _ in scene.feeds)], now=NOW)  # fmt: skip
        for n, hours in enumerate([1 / 6] if scene.articles is None else scene.articles):
            at = NOW - timedelta(hours=hours)
            with store.transaction():
                store.store_entries(feed, [Entry(f"e{n}", "wire", None, f"Story {n}", "", at,
                                                 "en", f"h{n}")], now=at)  # fmt: skip
        store.sync_feeds(
            [Feed(f, f"https://{f}.example/rss", f.upper()) for f, _ in scene.feeds], now=NOW
        )
        for n, (state_name, hours, held) in enumerate(scene.outbox):
            created = NOW - timedelta(hours=hours)
            with store.transaction():
                alert_id = store.insert_alert(
                    AlertDecision(f"k{n}", "level_up", "kg-tj", created, urgent=True, level="high")
                )
                assert alert_id is not None
                outbox_id = store.enqueue(
                    alert_id, message_id=f"<{n}@x>", recipients=["a@example.org"], subject="s",
                    message=b"m", now=created,
                    not_before=None if held is None else NOW + timedelta(hours=held),
                    dead_reason="550 rejected" if state_name == "dead" else None,
                )  # fmt: skip
            if state_name == "sent":
                store.mark_sent(outbox_id, now=created)
    return path


HEALTHY_RUNS = [("poll", 1, None), ("score", 6, None)]
HEALTHY_FEEDS = [("a", "ok"), ("b", "ok")]

SCENES = [
    ("daemon-healthy", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, [("sent", 2, None)]), RUNNING, "ok", None),
    ("timer-between-rounds", Scene([("once", 4, None)], HEALTHY_FEEDS), STOPPED, "ok", None),
    ("no-cycle-yet", Scene([], HEALTHY_FEEDS), RUNNING, "down", "no cycle recorded"),
    ("cycles-stale", Scene([("poll", 50, None)]), RUNNING, "down", "no cycle for 50 min"),
    ("outbox-runs-are-no-cycle", Scene([("outbox", 1, None), ("poll", 60, None)]), RUNNING,
     "down", "no cycle for 60 min"),
    ("daemon-stopped", Scene(HEALTHY_RUNS, HEALTHY_FEEDS), STOPPED, "down", "the daemon is not running"),
    ("feed-failing-long", Scene(HEALTHY_RUNS, [("a", "ok"), ("b", "failing-30")]), RUNNING,
     "degraded", "feed b has failed for 30.0 h (http_503: Service Unavailable)"),
    ("feed-failing-briefly", Scene(HEALTHY_RUNS, [("a", "ok"), ("b", "failing-2")]), RUNNING, "ok", None),
    ("feed-gone", Scene(HEALTHY_RUNS, [("a", "gone")]), RUNNING, "degraded", "feed a is gone"),
    ("feed-never-polled", Scene(HEALTHY_RUNS, [("a", "never")]), RUNNING, "ok", None),
    ("dead-this-week", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, [("dead", 30, None)]), RUNNING,
     "degraded", "1 message(s) died in the outbox"),
    ("dead-long-ago", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, [("dead", 240, None)]), RUNNING, "ok", None),
    ("pending-overdue", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, [("pending", 2, None)]), RUNNING,
     "degraded", "1 pending message(s) overdue"),
    ("pending-fresh", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, [("pending", 0.2, None)]), RUNNING, "ok", None),
    ("pending-held-for-quiet-hours", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, [("pending", 3, 2)]),
     RUNNING, "ok", None),
    ("last-run-failed", Scene([*HEALTHY_RUNS, ("outbox", 3, "SMTP: connection refused")]), RUNNING,
     "degraded", "the last outbox run failed: SMTP: connection refused"),
    ("down-beats-degraded", Scene([("poll", 90, None)], HEALTHY_FEEDS, [("dead", 1, None)]), RUNNING,
     "down", "died in the outbox"),
    # issue 11: health that tells the truth
    ("every-feed-failing", Scene(HEALTHY_RUNS, [("a", "failing-1"), ("b", "failing-2")]), RUNNING,
     "degraded", "every polled feed is failing or gone (2 of 2; see `monitor feeds`)"),
    ("most-feeds-failing", Scene(HEALTHY_RUNS, [("a", "failing-1"), ("b", "failing-2"), ("c", "ok")]),
     RUNNING, "degraded", "2 of 3 polled feeds are failing or gone, more than half"),
    ("failing-and-gone-are-most", Scene(HEALTHY_RUNS, [("a", "failing-1"), ("b", "gone"), ("c", "ok")]),
     RUNNING, "degraded", "2 of 3 polled feeds are failing or gone"),
    ("half-failing-is-not-most", Scene(HEALTHY_RUNS, [("a", "failing-1"), ("b", "ok"), ("c", "never")]),
     RUNNING, "ok", None),
    ("quiet-while-feeds-answer", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, articles=[40, 30]), RUNNING,
     "degraded", "no new article stored for 30.0 h although 2 feed(s) answer "
     "(last stored 2024-09-15T06:00:00Z; limit health.quiet_period_hours = 24.0 h)"),
    ("quiet-within-the-period", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, articles=[20]), RUNNING, "ok", None),
    ("never-stored-in-a-day-of-polling",
     Scene([*HEALTHY_RUNS, ("poll", 26 * 60, None)], HEALTHY_FEEDS, articles=[]), RUNNING,
     "degraded", "no new article stored for 26.0 h although 2 feed(s) answer (none ever stored"),
    ("never-stored-just-started", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, articles=[]), RUNNING, "ok", None),
    ("quiet-because-feeds-fail-is-not-quiet",
     Scene(HEALTHY_RUNS, [("a", "failing-1"), ("b", "failing-1")], articles=[30]), RUNNING,
     "degraded", "every polled feed is failing or gone"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("scene", "daemon", "expected", "reason"),
    [s[1:] for s in SCENES],
    ids=[s[0] for s in SCENES],
)
def test_health_rules(
    tmp_path: Path, scene: Scene, daemon: status.DaemonState, expected: str, reason: str | None
) -> None:
    path = build(tmp_path / "m.db", scene)
    with db.Store.open(path, readonly=True) as store:
        report = status.assess(store, database=str(path), daemon=daemon, now=NOW, policy=POLICY)
    assert report.state == expected, report.reasons
    assert report.exit_status == {"ok": 0, "degraded": 1, "down": 2}[expected]
    if reason is None:
        assert report.reasons == ()
    else:
        assert any(reason in r for r in report.reasons), report.reasons


def test_quiet_feeds_do_not_count_as_quiet_when_they_fail(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", Scene(HEALTHY_RUNS, [("a", "failing-1")], articles=[30]))
    with db.Store.open(path, readonly=True) as store:
        report = status.assess(store, database=str(path), daemon=RUNNING, now=NOW, policy=POLICY)
    assert not [r for r in report.reasons if "no new article" in r], report.reasons


def test_the_quiet_check_can_be_turned_off(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", Scene(HEALTHY_RUNS, HEALTHY_FEEDS, articles=[300]))
    off = replace(POLICY, quiet_period=None)
    with db.Store.open(path, readonly=True) as store:
        quiet = status.assess(store, database=str(path), daemon=RUNNING, now=NOW, policy=POLICY)
        report = status.assess(store, database=str(path), daemon=RUNNING, now=NOW, policy=off)
    assert quiet.state == "degraded" and (report.state, report.reasons) == ("ok", ())
    assert report.articles["last_stored_at"] == "2024-09-04T00:00:00Z"
    assert "articles:    last stored 2024-09-04T00:00:00Z (12.5 d ago)" in status.render_status(
        report, fmt="table"
    )


def test_configuration_problems_make_it_degraded(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", Scene(HEALTHY_RUNS, HEALTHY_FEEDS))
    with db.Store.open(path, readonly=True) as store:
        report = status.assess(store, database=str(path), daemon=RUNNING, now=NOW,
                               policy=POLICY, config_problems=["no recipient configured: x"])  # fmt: skip
    assert (report.state, report.reasons) == ("degraded", ("no recipient configured: x",))


def test_a_gone_feed_shows_the_date_it_went(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", Scene(HEALTHY_RUNS, [("a", "gone"), ("b", "ok")]))
    with db.Store.open(path, readonly=True) as store:
        report = status.assess(store, database=str(path), daemon=RUNNING, now=NOW, policy=POLICY)
    table = status.render_status(report, fmt="table")
    assert (
        "  a                        gone since 2024-09-16T11:55:00Z (HTTP 410, no longer polled): http_410: Gone"
        in table
    )
    assert "feed a is gone (HTTP 410 since 2024-09-16T11:55:00Z): remove it" in table
    assert "?" not in table and "0 failures" not in table
    assert report.feeds["failing_feeds"][0]["failing_since"] == "2024-09-16T11:55:00Z"  # fmt: skip


GOOD_YAML = Path(__file__).parent.parent / "fixtures" / "config" / "good.yaml"


@pytest.mark.parametrize(
    ("toml", "theatre_recipients", "expected"),
    [
        pytest.param("[smtp]\nrecipients = ['desk@example.org']\n", (), None, id="recipients"),
        pytest.param("maildir = 'mail'\n", (), None, id="maildir-only-delivers"),
        pytest.param("", (), "no recipient configured: alerts are stored but never sent "
                     "(set smtp.recipients (or MONITOR_SMTP_RECIPIENTS) or maildir)", id="none"),
        pytest.param("", ("kg@example.org",), "smtp.recipients is empty: only the alerts of kg-tj "
                     "have recipients; digests, feed notices and other theatres' alerts are "
                     "stored but never sent", id="theatre-recipients-only"),
    ],
)  # fmt: skip
def test_delivery_problem(
    tmp_path: Path, toml: str, theatre_recipients: tuple[str, ...], expected: str | None
) -> None:
    settings = tmp_path / "monitor.toml"
    settings.write_text(toml, encoding="utf-8")
    config = load_config(indicators_path=GOOD_YAML, settings_path=settings, env={})
    if theatre_recipients:
        theatres = {
            key: replace(t, recipients=theatre_recipients) if isinstance(t, Theatre) else t
            for key, t in config.rules.theatres.items()
        }
        config = replace(config, rules=replace(config.rules, theatres=theatres))
    problem = status.config_delivery_problem(config)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected)


def test_unreadable_database_is_down() -> None:
    report = status.assess(None, database="/x/m.db", daemon=STOPPED, now=NOW, policy=POLICY,
                           open_error="no database here yet")  # fmt: skip
    assert report.state == "down" and report.exit_status == 2
    assert "cannot read the database: no database here yet" in report.reasons[0]


def test_report_renders_as_table_and_json(tmp_path: Path) -> None:
    scene = Scene(HEALTHY_RUNS, [("a", "ok"), ("b", "failing-30"), ("c", "never")],
                  [("sent", 2, None), ("pending", 3, None)])  # fmt: skip
    path = build(tmp_path / "m.db", scene)
    with db.Store.open(path, readonly=True) as store:
        report = status.assess(store, database=str(path), daemon=RUNNING, now=NOW, policy=POLICY)
    table = status.render_status(report, fmt="table")
    assert table.splitlines()[0] == "monitor status: DEGRADED (exit 1)"
    assert "daemon:      running (pid 4242" in table
    assert "last cycle:  poll ended 2024-09-16T11:59:00Z (60 s ago)" in table
    assert "feeds:       3 configured: 1 ok, 1 failing, 0 gone, 1 never polled" in table
    assert "outbox:      1 pending (1 overdue), 1 sent, 0 dead" in table
    data = json.loads(status.render_status(report, fmt="json"))
    assert data["state"] == "degraded" and data["exit_status"] == 1
    assert data["daemon"] == {"running": True, "pid": 4242, "detail": RUNNING.detail}
    assert data["feeds"]["failing_feeds"][0]["id"] == "b"
    assert [j["job"] for j in data["jobs"]] == ["poll", "score"]
    assert data["jobs"][0]["summary"] == {"feeds": 3, "errors": 0}


def test_scheduler_counters_are_shown_when_recorded(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", Scene(HEALTHY_RUNS, HEALTHY_FEEDS))
    with db.Store.open(path) as store, store.transaction():
        store.set_meta(
            status.SCHEDULER_STATS_META_KEY, json.dumps({"runs": {"poll": 9}, "missed": {}})
        )
    with db.Store.open(path, readonly=True) as store:
        report = status.assess(store, database=str(path), daemon=RUNNING, now=NOW, policy=POLICY)
    assert report.scheduler == {"runs": {"poll": 9}, "missed": {}}
    assert "scheduler:   runs: poll=9" in status.render_status(report, fmt="table")


def test_meta_key_is_the_daemons() -> None:
    from monitor.service.daemon import JOB_STATS_META_KEY

    assert status.SCHEDULER_STATS_META_KEY == JOB_STATS_META_KEY


# -- the instance lock, looked at from outside ---------------------------------------


HOLDER = """
import sys
from pathlib import Path
from monitor.service.instance_lock import acquire_instance_lock
lock = acquire_instance_lock(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("proc_locks", ["/proc/locks", "missing"], ids=["proc-locks", "pid-file"])
def test_lock_held_by_another_process(tmp_path: Path, proc_locks: str) -> None:
    path = tmp_path / "m.db"
    locks = Path(proc_locks) if proc_locks.startswith("/") else tmp_path / proc_locks
    if locks.is_absolute() and proc_locks == "/proc/locks" and not locks.exists():
        pytest.skip("no /proc/locks on this system")
    assert status.daemon_state(path, proc_locks=locks).running is False
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for _ in range(3):  # looking does not disturb the holder
            state = status.daemon_state(path, proc_locks=locks)
            assert state.running is True and state.pid == holder.pid, state
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=20)
    state = status.daemon_state(path, proc_locks=locks)
    assert state.running is False and state.pid is None, state
    acquire_instance_lock(path).close()  # and the lock is free for the next daemon


def test_lock_file_left_by_a_clean_stop(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    acquire_instance_lock(path).close()  # leaves an empty file behind
    assert lock_path_for(path).read_text() == ""
    for locks in (Path("/proc/locks"), tmp_path / "missing"):
        state = status.daemon_state(path, proc_locks=locks)
        assert state.running is False, state


def test_lock_held_in_this_process_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with acquire_instance_lock(path):
        state = status.daemon_state(path)
        assert state.running is True
    assert status.daemon_state(path).running is False
