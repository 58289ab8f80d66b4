"""The daemon's /healthz and /metrics content: its health, its job counters and the database.

Owns `DaemonCollector`, a prometheus-client collector that reads `db.metrics_figures` and
the daemon's job counters afresh on every scrape, and `start_daemon_metrics`, which puts
it in a private registry (never the process-global one) beside prometheus-client's
process collector and serves it. Collection runs in the metrics server's threads, so it
opens its own read-only connection per scrape and never touches the daemon's.

Must not import the daemon: what it reads from it is the `DaemonState` protocol below.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import db
from monitor.errors import MonitorError
from monitor.service.metrics_http import Health, MetricsServer, start_metrics_server


class JobCounters(Protocol):
    """Scheduler events per job id since the daemon started (`daemon.JobStats`)."""

    @property
    def runs(self) -> Mapping[str, int]: ...
    @property
    def errors(self) -> Mapping[str, int]: ...
    @property
    def missed(self) -> Mapping[str, int]: ...
    @property
    def skipped(self) -> Mapping[str, int]: ...


class DaemonState(Protocol):
    """What the endpoint reads from the running daemon, from the server's threads."""

    @property
    def stats(self) -> JobCounters: ...

    def health(self, *, check_database: bool = ...) -> tuple[bool, str]: ...


def read_figures(db_path: Path) -> dict[str, Any]:
    """`db.metrics_figures` on a read-only connection of its own."""
    with db.Store.open(db_path, readonly=True) as store:
        return db.metrics_figures(store)


def daemon_health(db_path: Path, daemon: DaemonState) -> Health:
    """/healthz: the database answers on a connection of our own, and the daemon is healthy."""
    try:
        with db.Store.open(db_path, readonly=True) as store:
            if not store.ping():
                return Health(False, "database does not answer")
    except (MonitorError, sqlite3.Error) as exc:
        return Health(False, f"database does not answer: {exc}")
    healthy, reason = daemon.health(check_database=False)
    return Health(healthy, reason)


class DaemonCollector(Collector):
    """The daemon's metric families, read afresh on every scrape.

    When the database cannot be read, the scrape still answers: `monitor_up` 0 and the job
    counters (which live in memory), without the database's families.
    """

    def __init__(self, db_path: Path, daemon: DaemonState) -> None:
        self._db_path = db_path
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        try:
            figures: dict[str, Any] | None = read_figures(self._db_path)
        except (MonitorError, sqlite3.Error):
            figures = None
        healthy = figures is not None and self._daemon.health(check_database=False)[0]
        yield GaugeMetricFamily("monitor_up", "1 while the daemon is healthy", 1 if healthy else 0)
        if figures is not None:
            yield from figure_families(figures)
        yield from job_families(self._daemon.stats)


def figure_families(figures: Mapping[str, Any]) -> Iterator[Metric]:
    """The families read from the database (`db.metrics_figures`)."""
    feeds = figures["feeds"]
    polls = int(feeds["polls"])
    not_modified = int(feeds["not_modified"])
    outbox: Mapping[str, tuple[int, int]] = figures["outbox"]
    yield GaugeMetricFamily("monitor_feeds", "Configured feeds", int(feeds["feeds"]))
    yield GaugeMetricFamily(
        "monitor_feeds_failing", "Feeds whose last poll failed", int(feeds["failing"])
    )
    yield CounterMetricFamily("monitor_feed_polls_total", "Feed polls", polls)
    yield CounterMetricFamily("monitor_feed_not_modified_total", "Polls answered 304", not_modified)
    yield GaugeMetricFamily(
        "monitor_feed_not_modified_ratio",
        "Share of polls answered 304",
        (not_modified / polls) if polls else 0.0,
    )
    yield _labelled(
        GaugeMetricFamily,
        "monitor_feed_errors",
        "Failing feeds by error kind",
        "kind",
        figures["errors_by_kind"],
    )
    yield CounterMetricFamily(
        "monitor_entries_seen_total", "Feed entries seen", int(feeds["entries"])
    )
    yield GaugeMetricFamily("monitor_articles", "Stored articles", int(figures["articles"]))
    yield GaugeMetricFamily("monitor_matches", "Stored matches", int(figures["matches"]["n"]))
    yield GaugeMetricFamily(
        "monitor_events",
        "Stored matches that count as events",
        int(figures["matches"]["events"]),
    )
    yield _labelled(
        GaugeMetricFamily,
        "monitor_score",
        "Latest escalation index per theatre (0-100)",
        "theatre",
        figures["scores"],
    )
    yield _labelled(
        GaugeMetricFamily,
        "monitor_outbox_messages",
        "Outbox messages by status",
        "status",
        {status: n for status, (n, _) in outbox.items()},
    )
    yield _labelled(
        CounterMetricFamily,
        "monitor_delivery_attempts_total",
        "SMTP delivery attempts by final status of the message",
        "status",
        {status: attempts for status, (_, attempts) in outbox.items()},
    )


def job_families(stats: JobCounters) -> Iterator[Metric]:
    """The scheduler's counters per job (in memory since the daemon started)."""
    yield _labelled(
        CounterMetricFamily, "monitor_job_runs_total", "Scheduler job runs", "job", stats.runs
    )
    yield _labelled(
        CounterMetricFamily, "monitor_job_errors_total", "Scheduler job errors", "job", stats.errors
    )
    yield _labelled(
        CounterMetricFamily,
        "monitor_job_missed_total",
        "Scheduler runs missed",
        "job",
        stats.missed,
    )
    yield _labelled(
        CounterMetricFamily,
        "monitor_job_skipped_total",
        "Scheduler runs skipped because the previous one still ran",
        "job",
        stats.skipped,
    )


def _labelled(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, float],
) -> Metric:
    """One family with one label, its samples sorted by the label's value."""
    # A copy first: the daemon's loop thread may add a job id while we read (dict() of a
    # dict is one step under the GIL; iterating it is not).
    snapshot = dict(values)
    metric = family(name, documentation, labels=[label])
    for key in sorted(snapshot):
        metric.add_metric([key], snapshot[key])
    return metric


def daemon_registry(db_path: Path, daemon: DaemonState) -> CollectorRegistry:
    """A private registry: the daemon's collector and prometheus-client's process collector
    (CPU, memory, open files; empty where /proc is missing)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(db_path, daemon))
    ProcessCollector(registry=registry)
    return registry


def start_daemon_metrics(daemon: DaemonState, listen: str, db_path: Path) -> MetricsServer:
    return start_metrics_server(
        listen,
        registry=daemon_registry(db_path, daemon),
        health=lambda: daemon_health(db_path, daemon),
    )
