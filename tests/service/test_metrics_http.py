"""monitor.service.metrics_http: a real server on 127.0.0.1, the Prometheus text format, loopback only."""

from __future__ import annotations

import http.client
import math
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from monitor.errors import ConfigError, MonitorError
from monitor.service.metrics_http import (
    PROMETHEUS_CONTENT_TYPE,
    LabelSet,
    Metric,
    MetricsServer,
    MetricsSnapshot,
    MetricType,
    MetricValue,
    escape_label_value,
    format_value,
    parse_listen_address,
    render_prometheus,
    start_metrics_server,
)

TRICKY_LABEL = 'say "hi"\\ then\nnewline – Кыргызстан'

SNAPSHOT = MetricsSnapshot(
    healthy=True,
    metrics={
        "monitor_feed_fetches_total": Metric(
            "counter",
            "Feed fetches by outcome.",
            {
                (("outcome", "ok"),): 42,
                (("outcome", "error"),): 3,
                (("outcome", "not_modified"),): 17,
            },
        ),
        "monitor_theatre_index": (
            "gauge",
            "Risk index 0-100 per theatre.\nSecond line \\ with backslash.",
            {
                (("theatre", "kg-tj"), ("level", "elevated")): 31.5,
                (("theatre", TRICKY_LABEL), ("level", "low")): 0.0,
            },
        ),
        "monitor_outbox_pending": ("gauge", "Alerts waiting to be sent.", 2),
        "monitor_last_poll_age_seconds": ("gauge", "Seconds since the last poll.", math.inf),
    },
)


@dataclass
class Health:
    """What the server's snapshot callable returns; tests change it between requests."""

    snapshot: MetricsSnapshot = SNAPSHOT
    error: Exception | None = None
    calls: int = 0

    def __call__(self) -> MetricsSnapshot:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.snapshot


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(health: Health) -> Iterator[MetricsServer]:
    with start_metrics_server("127.0.0.1:0", health) as running:
        yield running


def get(server: MetricsServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read().decode("utf-8")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# /healthz


def test_healthz_ok(server: MetricsServer) -> None:
    status, headers, body = get(server, "/healthz")
    assert (status, body) == (200, "ok\n")
    assert headers["cache-control"] == "no-store"


def test_healthz_503_with_the_reason_on_one_line(server: MetricsServer, health: Health) -> None:
    health.snapshot = MetricsSnapshot(
        healthy=False, reason="job poll has not completed for 400 s\r\n(3 errors)"
    )
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert body == "job poll has not completed for 400 s (3 errors)\n"


def test_healthz_follows_the_snapshot_on_every_request(
    server: MetricsServer, health: Health
) -> None:
    assert get(server, "/healthz")[0] == 200
    health.snapshot = MetricsSnapshot(healthy=False)
    status, _, body = get(server, "/healthz")
    assert (status, body) == (503, "unhealthy\n")
    health.snapshot = SNAPSHOT
    assert get(server, "/healthz")[0] == 200
    assert health.calls == 3


def test_a_failing_snapshot_is_503_or_500_and_the_server_survives(
    server: MetricsServer, health: Health
) -> None:
    health.error = RuntimeError("database is locked")
    status, _, body = get(server, "/healthz")
    assert status == 503
    assert "database is locked" in body
    assert get(server, "/metrics")[0] == 500
    health.error = None
    assert get(server, "/healthz")[0] == 200


def test_head_has_no_body(server: MetricsServer) -> None:
    status, headers, body = get(server, "/healthz", method="HEAD")
    assert (status, body) == (200, "")
    assert headers["content-length"] == "3"


def test_other_paths_are_404(server: MetricsServer) -> None:
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/../etc/passwd")[0] == 404


def test_query_strings_are_ignored(server: MetricsServer) -> None:
    assert get(server, "/healthz?verbose=1")[0] == 200


# ---------------------------------------------------------------------------
# /metrics

# The text format's line grammar (exposition_formats.md, "Text format details").
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)"
HELP_LINE = re.compile(rf"# HELP (?P<name>{_NAME}) (?:[^\\\n]|\\\\|\\n)*")
TYPE_LINE = re.compile(rf"# TYPE (?P<name>{_NAME}) (?:counter|gauge|histogram|summary|untyped)")
SAMPLE_LINE = re.compile(rf"(?P<name>{_NAME})(?:\{{(?:{_LABEL}(?:,{_LABEL})*)?\}})? {_VALUE}")


def test_metrics_is_valid_text_format(server: MetricsServer) -> None:
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["content-type"] == PROMETHEUS_CONTENT_TYPE
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
    assert typed == set(SNAPSHOT.metrics)


def test_metrics_round_trip_through_the_prometheus_parser(server: MetricsServer) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    _, _, body = get(server, "/metrics")
    families = {f.name: f for f in parser.text_string_to_metric_families(body)}
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


def test_render_is_sorted_and_deterministic() -> None:
    text = render_prometheus(SNAPSHOT)
    assert text == render_prometheus(SNAPSHOT)
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert names == sorted(names)
    fetches = [line for line in text.splitlines() if line.startswith("monitor_feed_fetches_total")]
    assert fetches == [
        'monitor_feed_fetches_total{outcome="error"} 3',
        'monitor_feed_fetches_total{outcome="not_modified"} 17',
        'monitor_feed_fetches_total{outcome="ok"} 42',
    ]


def test_empty_snapshot_renders_nothing() -> None:
    assert render_prometheus(MetricsSnapshot(healthy=True)) == ""


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
def test_label_value_escaping(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped
    snapshot = MetricsSnapshot(
        healthy=True, metrics={"m": ("gauge", "h", {(("theatre", raw),): 1})}
    )
    assert f'm{{theatre="{escaped}"}} 1' in render_prometheus(snapshot).splitlines()


@pytest.mark.parametrize(
    ("number", "text"),
    [
        pytest.param(3, "3", id="int"),
        pytest.param(3.0, "3", id="integral-float"),
        pytest.param(31.5, "31.5", id="float"),
        pytest.param(1e-05, "1e-05", id="small"),
        pytest.param(1e20, "1e+20", id="large"),
        pytest.param(-2, "-2", id="negative-gauge"),
        pytest.param(math.nan, "NaN", id="nan"),
        pytest.param(math.inf, "+Inf", id="inf"),
        pytest.param(-math.inf, "-Inf", id="minus-inf"),
    ],
)
def test_format_value(number: float, text: str) -> None:
    assert format_value(number) == text
    assert re.fullmatch(_VALUE, text)


@pytest.mark.parametrize(
    ("metrics", "complaint"),
    [
        pytest.param({"bad-name": ("gauge", "h", 1)}, "metric name", id="metric-name"),
        pytest.param({"m": ("histogram", "h", 1)}, "counter or gauge", id="type"),
        pytest.param({"m": ("counter", "h", -1)}, "cannot be negative", id="negative-counter"),
        pytest.param({"m": ("gauge", "h", "7")}, "not a number", id="string-value"),
        pytest.param({"m": ("gauge", "h", True)}, "not a number", id="bool-value"),
        pytest.param({"m": ("gauge", "h", {(("1x", "v"),): 1})}, "label name", id="label-name"),
        pytest.param({"m": ("gauge", "h", {(("__x", "v"),): 1})}, "label name", id="reserved"),
        pytest.param(
            {"m": ("gauge", "h", {(("a", "1"), ("a", "2")): 1})}, "twice", id="duplicate-label"
        ),
        pytest.param({"m": ("gauge", "h", {(("a", 1),): 1})}, "must be a string", id="label-int"),
        pytest.param({"m": ("gauge", "h", {("a",): 1})}, "pair", id="label-not-pair"),
    ],
)
def test_bad_snapshots_fail_where_they_are_made(metrics: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        MetricsSnapshot(healthy=True, metrics=metrics)


def test_snapshot_does_not_change_when_the_callers_dict_does() -> None:
    samples: dict[LabelSet, float] = {(("theatre", "csto"),): 10}
    metrics: dict[str, tuple[MetricType, str, MetricValue]] = {"m": ("gauge", "h", samples)}
    snapshot = MetricsSnapshot(healthy=True, metrics=metrics)
    before = render_prometheus(snapshot)
    samples[(("theatre", "am-az"),)] = 99
    metrics["n"] = ("gauge", "h", 1)
    assert render_prometheus(snapshot) == before
    with pytest.raises(TypeError):
        snapshot.metrics["x"] = ("gauge", "h", 1)  # type: ignore[index]


# ---------------------------------------------------------------------------
# Binding


@pytest.mark.parametrize(
    "listen",
    [
        pytest.param("0.0.0.0:9464", id="any-v4"),
        pytest.param("[::]:9464", id="any-v6"),
        pytest.param("192.168.1.5:9464", id="private"),
        pytest.param("8.8.8.8:9464", id="public"),
        pytest.param("[::ffff:10.0.0.1]:9464", id="v4-mapped-private"),
    ],
)
def test_non_loopback_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        start_metrics_server(listen, Health())
    # ...unless explicitly allowed (parsed only: no test listens on every interface)
    _, port = parse_listen_address(listen, allow_non_loopback=True)
    assert port == 9464


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        pytest.param("127.0.0.1:9464", ("127.0.0.1", 9464), id="v4"),
        pytest.param("127.0.0.2:9464", ("127.0.0.2", 9464), id="v4-loopback-net"),
        pytest.param("localhost:9464", ("127.0.0.1", 9464), id="localhost"),
        pytest.param("[::1]:9464", ("::1", 9464), id="v6"),
        pytest.param("[::ffff:127.0.0.1]:9464", ("::ffff:7f00:1", 9464), id="v4-mapped-loopback"),
    ],
)
def test_loopback_addresses_are_accepted(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(listen) == expected


@pytest.mark.parametrize(
    "listen",
    [
        pytest.param("9464", id="port-only"),
        pytest.param("127.0.0.1", id="no-port"),
        pytest.param("127.0.0.1:http", id="named-port"),
        pytest.param("127.0.0.1:70000", id="port-range"),
        pytest.param("::1:9464", id="v6-without-brackets"),
        pytest.param("metrics.internal:9464", id="hostname"),
        pytest.param(":9464", id="empty-host"),
    ],
)
def test_malformed_listen_is_a_config_error(listen: str) -> None:
    with pytest.raises(ConfigError, match="metrics_listen"):
        parse_listen_address(listen)


def test_ipv6_loopback_serves() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        running = start_metrics_server("[::1]:0", Health())
    except MonitorError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with running:
        assert running.url.startswith("http://[::1]:")
        assert get(running, "/healthz")[0] == 200


def test_a_port_in_use_is_a_clear_error(server: MetricsServer) -> None:
    _, port = server.address
    with pytest.raises(MonitorError, match="cannot listen"):
        start_metrics_server(f"127.0.0.1:{port}", Health())


def test_close_frees_the_port_and_stops_the_thread(health: Health) -> None:
    running = start_metrics_server("127.0.0.1:0", health)
    _, port = running.address
    assert get(running, "/healthz")[0] == 200
    threads_before = {t.name for t in threading.enumerate()}
    assert f"metrics-http-{port}" in threads_before
    running.close()
    assert f"metrics-http-{port}" not in {t.name for t in threading.enumerate()}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with start_metrics_server(f"127.0.0.1:{port}", health) as again:
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
