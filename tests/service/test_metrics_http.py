"""monitor.service.metrics_http: a real server on 127.0.0.1, prometheus-client's exposition of
a registry, /healthz, loopback only, bounded."""

from __future__ import annotations

import contextlib
import http.client
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import ConfigError, MonitorError
from monitor.listen import parse_listen_address
from monitor.service.metrics_http import Health, MetricsServer, start_metrics_server
from tests.support.http import NON_LOOPBACK

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0, text/plain;version=0.0.4;q=0.5"
TRICKY_LABEL = 'say "hi"\\ then\nnewline – Кыргызстан'


def sample_families() -> list[Metric]:
    fetches = CounterMetricFamily(
        "monitor_feed_fetches_total", "Feed fetches by outcome.", labels=["outcome"]
    )
    for outcome, count in (("error", 3), ("not_modified", 17), ("ok", 42)):
        fetches.add_metric([outcome], count)
    index = GaugeMetricFamily(
        "monitor_theatre_index",
        "Risk index 0-100 per theatre.\nSecond line \\ with backslash.",
        labels=["theatre", "level"],
    )
    index.add_metric(["kg-tj", "elevated"], 31.5)
    index.add_metric([TRICKY_LABEL, "low"], 0.0)
    return [
        fetches,
        index,
        GaugeMetricFamily("monitor_outbox_pending", "Alerts waiting to be sent.", 2),
        GaugeMetricFamily(
            "monitor_last_poll_age_seconds", "Seconds since the last poll.", math.inf
        ),
    ]


FAMILY_NAMES = {
    "monitor_feed_fetches_total",
    "monitor_theatre_index",
    "monitor_outbox_pending",
    "monitor_last_poll_age_seconds",
}


@dataclass(eq=False)  # hashable: a registry keys its collectors
class Source:
    """The server's health callable and a collector; tests change them between requests."""

    health: Health = field(default_factory=lambda: Health(True))
    families: Callable[[], Sequence[Metric]] = sample_families
    error: Exception | None = None
    collect_error: Exception | None = None
    calls: int = 0
    scrapes: int = 0
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(False))

    def __post_init__(self) -> None:
        self.registry.register(self)

    def __call__(self) -> Health:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.health

    def collect(self) -> Iterator[Metric]:
        self.scrapes += 1
        if self.collect_error is not None:
            raise self.collect_error
        yield from self.families()


@pytest.fixture
def source() -> Source:
    return Source()


@pytest.fixture
def server(source: Source) -> Iterator[MetricsServer]:
    with start_metrics_server("127.0.0.1:0", registry=source.registry, health=source) as running:
        yield running


def start(listen: str, source: Source | None = None, **options: float) -> MetricsServer:
    source = source or Source()
    return start_metrics_server(listen, registry=source.registry, health=source, **options)  # type: ignore[arg-type]


def get(
    server: MetricsServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read().decode("utf-8")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def poll_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# /healthz


def test_healthz_ok(server: MetricsServer) -> None:
    status, headers, body = get(server, "/healthz")
    assert (status, body) == (200, "ok\n")
    assert headers["cache-control"] == "no-store"


def test_healthz_503_with_the_reason_on_one_line(server: MetricsServer, source: Source) -> None:
    source.health = Health(False, "job poll has not completed for 400 s\r\n(3 errors)")
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert body == "job poll has not completed for 400 s (3 errors)\n"


def test_healthz_follows_the_source_on_every_request(server: MetricsServer, source: Source) -> None:
    assert get(server, "/healthz")[0] == 200
    source.health = Health(False)
    status, _, body = get(server, "/healthz")
    assert (status, body) == (503, "unhealthy\n")
    source.health = Health(True)
    assert get(server, "/healthz")[0] == 200
    assert source.calls == 3


def test_a_plain_tuple_is_a_health_too(source: Source) -> None:
    with start_metrics_server(
        "127.0.0.1:0", registry=source.registry, health=lambda: (False, "stale")
    ) as running:
        assert get(running, "/healthz")[:3:2] == (503, "stale\n")


def test_a_failing_health_check_is_503_and_the_server_survives(
    server: MetricsServer, source: Source
) -> None:
    source.error = RuntimeError("database is locked")
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert "database is locked" in body
    assert get(server, "/metrics")[0] == 200  # /metrics does not depend on /healthz
    source.error = None
    assert get(server, "/healthz")[0] == 200


def test_a_failing_collector_is_500_and_the_server_survives(
    server: MetricsServer, source: Source
) -> None:
    source.collect_error = RuntimeError("database is locked")
    status, _, body = get(server, "/metrics")
    assert status == 500
    assert "database is locked" in body and "\n" not in body.rstrip("\n")
    assert get(server, "/healthz")[0] == 200
    source.collect_error = None
    assert get(server, "/metrics")[0] == 200


def test_head_has_no_body(server: MetricsServer) -> None:
    status, headers, body = get(server, "/healthz", method="HEAD")
    assert (status, body) == (200, "")
    assert headers["content-length"] == "3"
    status, headers, body = get(server, "/metrics", method="HEAD")
    assert (status, body) == (200, "")
    assert int(headers["content-length"]) == len(get(server, "/metrics")[2].encode())


def test_other_paths_are_404(server: MetricsServer) -> None:
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/../etc/passwd")[0] == 404
    assert get(server, "/metrics/")[0] == 404


def test_other_methods_are_refused(server: MetricsServer) -> None:
    assert get(server, "/metrics", method="POST")[0] == 501


def test_query_strings_are_ignored(server: MetricsServer) -> None:
    assert get(server, "/healthz?verbose=1")[0] == 200
    assert get(server, "/metrics?name[]=x")[0] == 200


# ---------------------------------------------------------------------------
# /metrics

# The text format's line grammar (exposition_formats.md, "Text format details").
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)"
HELP_LINE = re.compile(rf"# HELP (?P<name>{_NAME}) (?:[^\\\n]|\\\\|\\n)*")
TYPE_LINE = re.compile(rf"# TYPE (?P<name>{_NAME}) (?:counter|gauge|histogram|summary|untyped)")
SAMPLE_LINE = re.compile(rf"(?P<name>{_NAME})(?:\{{(?:{_LABEL}(?:,{_LABEL})*)?\}})? {_VALUE}")


def check_text_format(body: str) -> set[str]:
    """Every line of `body` follows the text format's grammar; returns the TYPEd names."""
    assert body.endswith("\n")
    typed: set[str] = set()
    for line in body.splitlines():
        if line.startswith("# HELP"):
            assert HELP_LINE.fullmatch(line), line
        elif line.startswith("# TYPE"):
            match = TYPE_LINE.fullmatch(line)
            assert match, line
            typed.add(match["name"])
        else:
            match = SAMPLE_LINE.fullmatch(line)
            assert match, line
            assert match["name"] in typed, f"sample before its TYPE: {line}"
    return typed


def test_metrics_is_valid_text_format(server: MetricsServer) -> None:
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["content-type"] == PROMETHEUS_CONTENT_TYPE
    assert headers["cache-control"] == "no-store"
    assert check_text_format(body) == FAMILY_NAMES


def test_metrics_round_trip_through_the_prometheus_parser(server: MetricsServer) -> None:
    _, _, body = get(server, "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(body)}
    # prometheus_client drops the _total suffix from counter family names
    fetches = families["monitor_feed_fetches"]
    assert fetches.type == "counter"
    assert {s.labels["outcome"]: s.value for s in fetches.samples} == {
        "ok": 42,
        "error": 3,
        "not_modified": 17,
    }
    index = families["monitor_theatre_index"]
    assert index.documentation == "Risk index 0-100 per theatre.\nSecond line \\ with backslash."
    by_theatre = {s.labels["theatre"]: s.value for s in index.samples}
    assert by_theatre == {"kg-tj": 31.5, TRICKY_LABEL: 0.0}
    assert families["monitor_outbox_pending"].samples[0].value == 2
    assert families["monitor_last_poll_age_seconds"].samples[0].value == math.inf


def test_openmetrics_when_the_scraper_asks_for_it(server: MetricsServer) -> None:
    status, headers, body = get(server, "/metrics", headers={"Accept": OPENMETRICS_ACCEPT})
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(body)}
    assert families["monitor_feed_fetches"].type == "counter"
    assert {s.name for s in families["monitor_feed_fetches"].samples} == {
        "monitor_feed_fetches_total"
    }
    assert families["monitor_theatre_index"].samples[1].labels["theatre"] == TRICKY_LABEL


def test_every_scrape_collects_afresh(server: MetricsServer, source: Source) -> None:
    first = get(server, "/metrics")[2]
    assert first == get(server, "/metrics")[2]  # same figures, same bytes
    source.families = lambda: [GaugeMetricFamily("monitor_outbox_pending", "Waiting.", 5)]
    assert get(server, "/metrics")[2] == (
        "# HELP monitor_outbox_pending Waiting.\n"
        "# TYPE monitor_outbox_pending gauge\n"
        "monitor_outbox_pending 5.0\n"
    )
    assert source.scrapes == 3


def test_an_empty_registry_is_an_empty_body(server: MetricsServer, source: Source) -> None:
    source.families = list
    assert get(server, "/metrics")[:3:2] == (200, "")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        pytest.param("kg-tj", "kg-tj", id="plain"),
        pytest.param('say "hi"', 'say \\"hi\\"', id="quotes"),
        pytest.param("C:\\feeds", "C:\\\\feeds", id="backslash"),
        pytest.param("two\nlines", "two\\nlines", id="newline"),
        pytest.param('\\"', '\\\\\\"', id="backslash-then-quote"),
        pytest.param("Армения–Азербайджан", "Армения–Азербайджан", id="unicode"),
    ],
)
def test_label_value_escaping(
    server: MetricsServer, source: Source, raw: str, escaped: str
) -> None:
    family = GaugeMetricFamily("m", "h", labels=["theatre"])
    family.add_metric([raw], 1)
    source.families = lambda: [family]
    body = get(server, "/metrics")[2]
    assert f'm{{theatre="{escaped}"}} 1.0' in body.splitlines()
    check_text_format(body)
    [parsed] = text_string_to_metric_families(body)
    assert parsed.samples[0].labels == {"theatre": raw}


@pytest.mark.parametrize(
    ("number", "text"),
    [
        pytest.param(3, "3.0", id="int"),
        pytest.param(3.0, "3.0", id="integral-float"),
        pytest.param(31.5, "31.5", id="float"),
        pytest.param(1e-05, "1e-05", id="small"),
        pytest.param(1e20, "1e+20", id="large"),
        pytest.param(-2, "-2.0", id="negative-gauge"),
        pytest.param(math.nan, "NaN", id="nan"),
        pytest.param(math.inf, "+Inf", id="inf"),
        pytest.param(-math.inf, "-Inf", id="minus-inf"),
    ],
)
def test_values(server: MetricsServer, source: Source, number: float, text: str) -> None:
    source.families = lambda: [GaugeMetricFamily("m", "h", number)]
    body = get(server, "/metrics")[2]
    assert body.splitlines()[-1] == f"m {text}"
    assert re.fullmatch(_VALUE, text)
    [parsed] = text_string_to_metric_families(body)
    value = parsed.samples[0].value
    assert (math.isnan(value) and math.isnan(number)) or value == number


# ---------------------------------------------------------------------------
# Binding, timeouts and bounds (parse_listen_address itself: tests/test_listen.py)


@pytest.mark.parametrize(
    "listen",
    NON_LOOPBACK,
)
def test_non_loopback_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        start(listen)
    # ...unless explicitly allowed (parsed only: no test listens on every interface)
    _, port = parse_listen_address(listen, allow_non_loopback=True)
    assert port == 9464


def test_ipv6_loopback_serves() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        running = start("[::1]:0")
    except MonitorError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with running:
        assert running.url.startswith("http://[::1]:")
        assert get(running, "/healthz")[0] == 200


def test_a_port_in_use_is_a_clear_error(server: MetricsServer) -> None:
    _, port = server.address
    with pytest.raises(MonitorError, match="cannot listen"):
        start(f"127.0.0.1:{port}")


def test_close_frees_the_port_and_stops_the_thread(source: Source) -> None:
    running = start("127.0.0.1:0", source)
    _, port = running.address
    assert get(running, "/healthz")[0] == 200
    threads_before = {t.name for t in threading.enumerate()}
    assert f"metrics-http-{port}" in threads_before
    running.close()
    assert f"metrics-http-{port}" not in {t.name for t in threading.enumerate()}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with start(f"127.0.0.1:{port}", source) as again:
        assert again.address[1] == port


def test_concurrent_requests_are_served(server: MetricsServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def fetch() -> None:
        status = get(server, "/metrics")[0]
        with lock:
            results.append(status)

    workers: list[threading.Thread] = [threading.Thread(target=fetch) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=20)
    assert results == [200] * 8


def test_a_silent_client_is_dropped_after_the_request_timeout() -> None:
    with start("127.0.0.1:0", request_timeout=0.5) as running:
        with socket.create_connection(running.address, timeout=30) as silent:
            silent.sendall(b"GET /metr")  # and then nothing
            # the server gives up on it and closes the connection (EOF, or a reset)
            with contextlib.suppress(ConnectionResetError):
                assert silent.recv(100) == b""
        assert get(running, "/healthz")[0] == 200


def test_requests_beyond_the_bound_are_closed_unanswered() -> None:
    with start("127.0.0.1:0", request_timeout=60, max_connections=2) as running:
        idle = [socket.create_connection(running.address, timeout=30) for _ in range(2)]
        try:
            # Connections are accepted in order: these two hold both slots, so the next
            # request is closed without an answer rather than given a third thread.
            with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
                get(running, "/healthz")
        finally:
            for sock in idle:
                sock.close()

        def served() -> bool:
            try:
                return get(running, "/healthz")[0] == 200
            except (http.client.RemoteDisconnected, ConnectionResetError):
                return False

        poll_until(served)  # the slots are given back when their clients leave
