"""An optional loopback HTTP endpoint: `/healthz` and Prometheus `/metrics`.

Owns: the metric records (`Metric`, `MetricsSnapshot`), rendering them in the
Prometheus text exposition format 0.0.4 (`render_prometheus`, pure), and a
small stdlib HTTP server in a daemon thread that serves them.

Must not: collect numbers itself (the caller passes a `snapshot` callable;
it runs on the server's threads, so it must be thread-safe and quick), talk
to feeds or SMTP, or listen anywhere but loopback unless explicitly allowed.
It is off unless `Settings.metrics_listen` is set.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Literal, NamedTuple

from monitor.errors import ConfigError, MonitorError

log = logging.getLogger(__name__)

MetricType = Literal["counter", "gauge"]
LabelSet = tuple[tuple[str, str], ...]  # (("theatre", "kg-tj"), ("level", "high"))
MetricValue = float | Mapping[LabelSet, float]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_SECONDS = 5.0  # a client that dribbles its request loses its thread

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_REASON_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class Metric(NamedTuple):
    """One metric family: its type, help text, and either a single value or one
    value per label set. A plain `(type, help, value)` tuple works as well."""

    type: MetricType
    help: str
    value: MetricValue


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What `/healthz` and `/metrics` show at one moment.

    `metrics` maps a metric name to `(type, help, value)`, where value is a
    number or `{label set: number}`; a label set is a tuple of (name, value)
    pairs. Names are checked here, so a bad one fails where it was made.
    Counters conventionally end in `_total`.
    """

    healthy: bool
    reason: str = ""  # why not healthy (one line); shown by /healthz
    metrics: Mapping[str, tuple[MetricType, str, MetricValue]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        frozen: dict[str, Metric] = {}
        for name, family in self.metrics.items():
            kind, help_text, value = family
            if not _METRIC_NAME.fullmatch(name):
                raise ValueError(f"metric name {name!r} is not [a-zA-Z_:][a-zA-Z0-9_:]*")
            if kind not in ("counter", "gauge"):
                raise ValueError(f"metric {name}: type must be counter or gauge, not {kind!r}")
            if isinstance(value, Mapping):
                samples: dict[LabelSet, float] = {}
                for labels, number in value.items():
                    _check_labels(name, labels)
                    samples[tuple(labels)] = _check_number(name, kind, number)
                frozen[name] = Metric(kind, help_text, MappingProxyType(samples))
            else:
                frozen[name] = Metric(kind, help_text, _check_number(name, kind, value))
        # The caller's dict may change after this; the snapshot must not.
        object.__setattr__(self, "metrics", MappingProxyType(frozen))


def _check_labels(name: str, labels: LabelSet) -> None:
    seen: set[str] = set()
    for pair in labels:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"metric {name}: a label must be a (name, value) pair, not {pair!r}")
        label, value = pair
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"metric {name}: bad label name {label!r}")
        if label in seen:
            raise ValueError(f"metric {name}: label {label!r} appears twice")
        if not isinstance(value, str):
            raise ValueError(f"metric {name}: label {label}={value!r} must be a string")
        seen.add(label)


def _check_number(name: str, kind: str, number: object) -> float:
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(f"metric {name}: value {number!r} is not a number")
    if kind == "counter" and number < 0:
        raise ValueError(f"metric {name}: a counter cannot be negative ({number})")
    return number


# ---------------------------------------------------------------------------
# Rendering (pure)


def escape_label_value(value: str) -> str:
    r"""Backslash, double quote and line feed become \\, \" and \n."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    r"""Backslash and line feed become \\ and \n (quotes stay as they are in HELP)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(number: float) -> str:
    """Integers without a decimal point; NaN and infinities as Prometheus spells them."""
    if isinstance(number, int):
        return str(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def render_prometheus(snapshot: MetricsSnapshot) -> str:
    """The text exposition of `snapshot`: families sorted by name, samples by labels."""
    lines: list[str] = []
    for name in sorted(snapshot.metrics):
        kind, help_text, value = snapshot.metrics[name]
        lines.append(f"# HELP {name} {escape_help(help_text)}")
        lines.append(f"# TYPE {name} {kind}")
        if isinstance(value, Mapping):
            for labels in sorted(value):
                rendered = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
                selector = f"{{{rendered}}}" if rendered else ""
                lines.append(f"{name}{selector} {format_value(value[labels])}")
        else:
            lines.append(f"{name} {format_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""


# ---------------------------------------------------------------------------
# Serving


def parse_listen_address(listen: str, *, allow_non_loopback: bool = False) -> tuple[str, int]:
    """`127.0.0.1:9464`, `[::1]:9464` or `localhost:9464` -> (ip, port).

    Raises ConfigError for anything else, and for a non-loopback address unless
    `allow_non_loopback` (the endpoint has no authentication).
    """
    where = f"metrics_listen: {listen!r}"
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise ConfigError(f"{where}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"{where}: port {port} is out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{where}: write an IPv6 address in brackets, e.g. [::1]:9464")
    if host == "localhost":
        host = "127.0.0.1"  # no DNS lookup for a bind address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{where}: {host!r} is not an IP address (or localhost)") from None
    mapped = getattr(ip, "ipv4_mapped", None)
    is_loopback = (mapped or ip).is_loopback
    if not is_loopback and not allow_non_loopback:
        raise ConfigError(
            f"{where}: {host} is not a loopback address; /metrics and /healthz have no "
            f"authentication, so they listen on 127.0.0.1 or [::1] only"
        )
    return str(ip), port


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown
    block_on_close = False
    snapshot: Callable[[], MetricsSnapshot]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_SECONDS
    server_version = "monitor-metrics"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/healthz", "/metrics"):
            self._reply(HTTPStatus.NOT_FOUND, "not found: try /healthz or /metrics\n", send_body)
            return
        try:
            snapshot = self.server.snapshot()
        except Exception as exc:
            log.exception("metrics snapshot failed")
            status = (
                HTTPStatus.SERVICE_UNAVAILABLE
                if path == "/healthz"
                else HTTPStatus.INTERNAL_SERVER_ERROR
            )
            self._reply(status, f"snapshot failed: {_one_line(repr(exc))}\n", send_body)
            return
        if path == "/healthz":
            if snapshot.healthy:
                self._reply(HTTPStatus.OK, "ok\n", send_body)
            else:
                reason = _one_line(snapshot.reason) or "unhealthy"
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, f"{reason}\n", send_body)
            return
        try:
            body = render_prometheus(snapshot)
        except Exception as exc:
            log.exception("rendering metrics failed")
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, f"render failed: {exc!r}\n", send_body)
            return
        self._reply(HTTPStatus.OK, body, send_body, content_type=PROMETHEUS_CONTENT_TYPE)

    def _reply(
        self,
        status: HTTPStatus,
        text: str,
        send_body: bool,
        *,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics http: " + format, *args)


def _one_line(text: str) -> str:
    return " ".join(_REASON_CONTROL.sub(" ", text).split())[:500]


class MetricsServer:
    """A running endpoint. `close()` (or leaving `with`) stops it and frees the port."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was asked for."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def close(self) -> None:
        """Stop serving, wait for the serving thread, free the port (idempotent)."""
        if self._thread.is_alive():
            # shutdown() waits until serve_forever() notices, which it does only
            # when its select() wakes: poke it with a connection instead of
            # waiting out the poll interval.
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            while stopper.is_alive():
                self._poke()
                stopper.join(0.05)
            self._thread.join()
        self._server.server_close()

    def _poke(self) -> None:
        # OSError: already closed, or the backlog is full; the poll interval still ends it
        with contextlib.suppress(OSError):
            socket.create_connection(self.address, timeout=1).close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_metrics_server(
    listen: str,
    snapshot: Callable[[], MetricsSnapshot],
    *,
    allow_non_loopback: bool = False,
) -> MetricsServer:
    """Serve `/healthz` and `/metrics` on `listen` (e.g. `127.0.0.1:9464`) in a daemon thread.

    Raises ConfigError for a malformed or non-loopback address, MonitorError
    when the address cannot be bound (port in use).
    """
    host, port = parse_listen_address(listen, allow_non_loopback=allow_non_loopback)
    server_class = _Server6 if ":" in host else _Server
    try:
        server = server_class((host, port), _Handler)
    except OSError as exc:
        raise MonitorError(f"metrics_listen: {listen!r}: cannot listen: {exc.strerror}") from exc
    server.snapshot = snapshot
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.5},
        name=f"metrics-http-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    log.info("metrics endpoint listening on %s:%s", host, server.server_address[1])
    return MetricsServer(server, thread)
