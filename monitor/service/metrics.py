"""The daemon's /healthz and /metrics content: a snapshot of its health and the database.

Owns turning daemon state and `db.metrics_figures` into a `MetricsSnapshot`. It runs in
the metrics server's thread, so it opens its own read-only connection per scrape and
never touches the daemon's.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from monitor import db
from monitor.errors import MonitorError
from monitor.service.metrics_http import MetricsServer, MetricsSnapshot, start_metrics_server

if TYPE_CHECKING:
    from monitor.service.daemon import Daemon


def daemon_snapshot(daemon: Daemon) -> MetricsSnapshot:
    try:
        with db.Store.open(daemon.config.settings.db_path, readonly=True) as store:
            figures = db.metrics_figures(store)
    except (MonitorError, sqlite3.Error) as exc:
        return MetricsSnapshot(healthy=False, reason=f"database does not answer: {exc}")
    healthy, reason = daemon.health(check_database=False)
    stats = daemon.stats
    feeds = figures["feeds"]
    polls = int(feeds["polls"])
    metrics: dict[str, tuple[str, str, object]] = {
        "monitor_up": ("gauge", "1 while the daemon is healthy", 1 if healthy else 0),
        "monitor_feeds": ("gauge", "Configured feeds", int(feeds["feeds"])),
        "monitor_feeds_failing": ("gauge", "Feeds whose last poll failed", int(feeds["failing"])),
        "monitor_feed_polls_total": ("counter", "Feed polls", polls),
        "monitor_feed_not_modified_total": (
            "counter",
            "Polls answered 304",
            int(feeds["not_modified"]),
        ),
        "monitor_feed_not_modified_ratio": (
            "gauge",
            "Share of polls answered 304",
            (int(feeds["not_modified"]) / polls) if polls else 0.0,
        ),
        "monitor_feed_errors": (
            "gauge",
            "Failing feeds by error kind",
            {(("kind", kind),): count for kind, count in figures["errors_by_kind"].items()},
        ),
        "monitor_entries_seen_total": ("counter", "Feed entries seen", int(feeds["entries"])),
        "monitor_articles": ("gauge", "Stored articles", int(figures["articles"])),
        "monitor_matches": ("gauge", "Stored matches", int(figures["matches"]["n"])),
        "monitor_events": (
            "gauge",
            "Stored matches that count as events",
            int(figures["matches"]["events"]),
        ),
        "monitor_score": (
            "gauge",
            "Latest escalation index per theatre (0-100)",
            {(("theatre", theatre),): score for theatre, score in figures["scores"].items()},
        ),
        "monitor_outbox_messages": (
            "gauge",
            "Outbox messages by status",
            {(("status", status),): n for status, (n, _) in figures["outbox"].items()},
        ),
        "monitor_delivery_attempts_total": (
            "counter",
            "SMTP delivery attempts by final status of the message",
            {(("status", status),): a for status, (_, a) in figures["outbox"].items()},
        ),
        "monitor_job_runs_total": ("counter", "Scheduler job runs", _by_job(stats.runs)),
        "monitor_job_errors_total": ("counter", "Scheduler job errors", _by_job(stats.errors)),
        "monitor_job_missed_total": ("counter", "Scheduler runs missed", _by_job(stats.missed)),
        "monitor_job_skipped_total": (
            "counter",
            "Scheduler runs skipped because the previous one still ran",
            _by_job(stats.skipped),
        ),
    }
    return MetricsSnapshot(healthy=healthy, reason=reason, metrics=metrics)  # type: ignore[arg-type]


def _by_job(counts: dict[str, int]) -> dict[tuple[tuple[str, str], ...], int]:
    return {(("job", job),): count for job, count in counts.items()}


def start_daemon_metrics(daemon: Daemon, listen: str) -> MetricsServer:
    return start_metrics_server(listen, lambda: daemon_snapshot(daemon))
