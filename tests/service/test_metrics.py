"""monitor.service.metrics: the daemon's families through a real server, on a real database."""

from __future__ import annotations

import ast
import http.client
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import monitor.service.metrics as metrics_module
from monitor.service.daemon import FAILURES_BEFORE_UNHEALTHY, Daemon
from monitor.service.metrics import start_daemon_metrics
from monitor.service.metrics_http import MetricsServer
from tests.support.cli import build_database
from tests.support.crash import base_config

# Every family /metrics had before it came from prometheus-client: name as scraped, type, help.
FAMILIES = {
    "monitor_up": ("gauge", "1 while the daemon is healthy"),
    "monitor_feeds": ("gauge", "Configured feeds"),
    "monitor_feeds_failing": ("gauge", "Feeds whose last poll failed"),
    "monitor_feed_polls_total": ("counter", "Feed polls"),
    "monitor_feed_not_modified_total": ("counter", "Polls answered 304"),
    "monitor_feed_not_modified_ratio": ("gauge", "Share of polls answered 304"),
    "monitor_feed_errors": ("gauge", "Failing feeds by error kind"),
    "monitor_entries_seen_total": ("counter", "Feed entries seen"),
    "monitor_articles": ("gauge", "Stored articles"),
    "monitor_matches": ("gauge", "Stored matches"),
    "monitor_events": ("gauge", "Stored matches that count as events"),
    "monitor_score": ("gauge", "Latest escalation index per theatre (0-100)"),
    "monitor_outbox_messages": ("gauge", "Outbox messages by status"),
    "monitor_delivery_attempts_total": (
        "counter",
        "SMTP delivery attempts by final status of the message",
    ),
    "monitor_job_runs_total": ("counter", "Scheduler job runs"),
    "monitor_job_errors_total": ("counter", "Scheduler job errors"),
    "monitor_job_missed_total": ("counter", "Scheduler runs missed"),
    "monitor_job_skipped_total": (
        "counter",
        "Scheduler runs skipped because the previous one still ran",
    ),
}
JOB_FAMILIES = {name for name in FAMILIES if name.startswith("monitor_job_")}
LABELS = {
    "monitor_feed_errors": "kind",
    "monitor_score": "theatre",
    "monitor_outbox_messages": "status",
    "monitor_delivery_attempts_total": "status",
    "monitor_job_runs_total": "job",
    "monitor_job_errors_total": "job",
    "monitor_job_missed_total": "job",
    "monitor_job_skipped_total": "job",
}
HEADER = re.compile(r"# (HELP|TYPE) (\S+) (.*)")


def daemon_for(db_path: Path) -> Daemon:
    config = base_config()
    daemon = Daemon(replace(config, settings=replace(config.settings, db_path=db_path)))
    # What the scheduler's events would have counted; added out of order on purpose.
    daemon.stats.runs.update({"score": 4, "poll": 7, "outbox": 2})
    daemon.stats.errors.update({"poll": 1})
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    return daemon_for(build_database(tmp_path / "monitor.db", days=16))


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        conn.close()


def scrape(daemon: Daemon) -> tuple[int, str, int, str]:
    """(/healthz status, its body, /metrics status, its body) from a real endpoint."""
    listen = "127.0.0.1:0"
    with start_daemon_metrics(daemon, listen, daemon.config.settings.db_path) as server:
        return *get(server, "/healthz"), *get(server, "/metrics")


def headers(body: str) -> dict[str, tuple[str, str]]:
    """name -> (type, help) from the HELP and TYPE lines, as scraped."""
    found: dict[str, dict[str, str]] = {}
    for line in body.splitlines():
        match = HEADER.fullmatch(line)
        if match:
            found.setdefault(match[2], {})[match[1]] = match[3]
    return {name: (parts["TYPE"], parts["HELP"]) for name, parts in found.items()}


def samples(body: str, name: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name
    ]


def test_every_family_keeps_its_name_type_help_and_label(daemon: Daemon) -> None:
    health, _, status, body = scrape(daemon)
    assert (health, status) == (200, 200)
    ours = {name: kind for name, kind in headers(body).items() if name.startswith("monitor_")}
    assert ours == FAMILIES
    for name, label in LABELS.items():
        for sample in samples(body, name):
            assert set(sample.labels) == {label}, sample


def test_the_figures_are_the_databases(daemon: Daemon) -> None:
    _, _, _, body = scrape(daemon)
    [up] = samples(body, "monitor_up")
    assert up.value == 1
    assert samples(body, "monitor_feeds")[0].value == 1
    assert samples(body, "monitor_articles")[0].value == 1
    assert samples(body, "monitor_matches")[0].value == 1
    assert samples(body, "monitor_events")[0].value == 1
    # build_database: the last of 16 days (day 15) scores 60
    assert {s.labels["theatre"]: s.value for s in samples(body, "monitor_score")} == {"kg-tj": 60.0}
    assert {s.labels["status"]: s.value for s in samples(body, "monitor_outbox_messages")} == {
        "pending": 1
    }
    assert samples(body, "monitor_feed_not_modified_ratio")[0].value == 0.0


def test_job_counters_are_sorted_by_job(daemon: Daemon) -> None:
    _, _, _, body = scrape(daemon)
    lines = [line for line in body.splitlines() if line.startswith("monitor_job_runs_total")]
    assert lines == [
        'monitor_job_runs_total{job="outbox"} 2.0',
        'monitor_job_runs_total{job="poll"} 7.0',
        'monitor_job_runs_total{job="score"} 4.0',
    ]
    assert [s.value for s in samples(body, "monitor_job_errors_total")] == [1]


def test_every_scrape_reads_afresh(daemon: Daemon) -> None:
    with start_daemon_metrics(daemon, "127.0.0.1:0", daemon.config.settings.db_path) as server:
        assert 'monitor_job_runs_total{job="poll"} 7.0' in get(server, "/metrics")[1]
        daemon.stats.runs["poll"] += 1
        assert 'monitor_job_runs_total{job="poll"} 8.0' in get(server, "/metrics")[1]


def test_an_unhealthy_daemon_is_down_on_both_paths(daemon: Daemon) -> None:
    daemon.stats.consecutive_errors["poll"] = FAILURES_BEFORE_UNHEALTHY
    daemon.stats.last_error["poll"] = "feeds unreachable"
    health, reason, status, body = scrape(daemon)
    assert health == 503 and "job poll failed 3 times in a row: feeds unreachable" in reason
    assert status == 200
    assert samples(body, "monitor_up")[0].value == 0


def test_an_unreadable_database_is_unhealthy_and_still_scraped(tmp_path: Path) -> None:
    daemon = daemon_for(tmp_path / "missing.db")
    health, reason, status, body = scrape(daemon)
    assert health == 503 and reason.startswith("database does not answer")
    assert "\n" not in reason.rstrip("\n")
    assert status == 200
    names = set(headers(body))
    assert samples(body, "monitor_up")[0].value == 0
    assert names >= JOB_FAMILIES  # the counters live in memory: still there
    assert "monitor_feeds" not in names and "monitor_score" not in names


def test_names_follow_the_prometheus_conventions(daemon: Daemon) -> None:
    _, _, _, body = scrape(daemon)
    for name, (kind, _) in headers(body).items():
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name), name
        assert (kind == "counter") == name.endswith("_total"), name
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            for label in sample.labels:
                assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) and not label.startswith("__")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc here")
def test_the_process_collector_is_there(daemon: Daemon) -> None:
    _, _, _, body = scrape(daemon)
    assert samples(body, "process_resident_memory_bytes")[0].value > 0
    assert samples(body, "process_open_fds")[0].value > 0


def test_the_registry_is_private(daemon: Daemon) -> None:
    scrape(daemon)
    assert b"monitor_up" not in generate_latest(REGISTRY)


def test_metrics_does_not_import_the_daemon() -> None:
    """metrics and daemon used to import each other (daemon at run time, metrics for its
    types): metrics now names what it reads as a protocol."""
    tree = ast.parse(Path(metrics_module.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name and "daemon" in name}
    assert "monitor.service.daemon" in sys.modules  # imported by this test, not by metrics
