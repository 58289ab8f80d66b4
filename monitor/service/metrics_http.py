"""An optional loopback HTTP endpoint: `/healthz` and Prometheus `/metrics`.

Owns a small stdlib HTTP server in a daemon thread: loopback only unless explicitly
allowed, a timeout on every request, at most `max_connections` requests served at once,
GET and HEAD, 404 for any other path. `/metrics` is prometheus-client's exposition of the
registry it is given (the classic text format, or OpenMetrics when the scraper's Accept
header asks for it); `/healthz` is `200 ok` or `503` with the reason on one line.

Must not: collect numbers itself (the caller's registry and `health` callable run on the
server's threads, so they must be thread-safe and quick), talk to feeds or SMTP, or
listen anywhere but loopback unless explicitly allowed. It is off unless
`Settings.metrics_listen` is set. Why our server and not prometheus-client's: see
docs/decisions.md ("The metrics endpoint").
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from monitor.errors import MonitorError
from monitor.listen import parse_listen_address

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 5.0  # a client that dribbles its request loses its thread
MAX_CONNECTIONS = 16  # requests served at once; more are closed unanswered

_REASON_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class Health(NamedTuple):
    """What `/healthz` shows: healthy, or not and why (one line)."""

    healthy: bool
    reason: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown
    block_on_close = False
    registry: CollectorRegistry
    health: Callable[[], Health | tuple[bool, str]]
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per request, but never more than `slots`: a flood of connections
        # is closed at once instead of growing threads without bound.
        if not self.slots.acquire(blocking=False):
            log.warning(
                "metrics http: too many requests at once, closed one from %s", client_address
            )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "monitor-metrics"
    sys_version = ""

    timeout = REQUEST_TIMEOUT_SECONDS  # StreamRequestHandler applies it to the socket

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._healthz(send_body)
        elif path == "/metrics":
            self._metrics(send_body)
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found: try /healthz or /metrics\n", send_body)

    def _healthz(self, send_body: bool) -> None:
        try:
            healthy, reason = self.server.health()
        except Exception as exc:
            log.exception("metrics health check failed")
            text = f"health check failed: {_one_line(repr(exc))}\n"
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, text.encode(), send_body)
            return
        if healthy:
            self._reply(HTTPStatus.OK, b"ok\n", send_body)
        else:
            text = f"{_one_line(reason) or 'unhealthy'}\n"
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, text.encode(), send_body)

    def _metrics(self, send_body: bool) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception as exc:
            log.exception("collecting metrics failed")
            text = f"collect failed: {_one_line(repr(exc))}\n"
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, text.encode(), send_body)
            return
        self._reply(HTTPStatus.OK, body, send_body, content_type=content_type)

    def _reply(
        self,
        status: HTTPStatus,
        body: bytes,
        send_body: bool,
        *,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
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
    *,
    registry: CollectorRegistry,
    health: Callable[[], Health | tuple[bool, str]],
    allow_non_loopback: bool = False,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> MetricsServer:
    """Serve `/healthz` (from `health`) and `/metrics` (the exposition of `registry`) on
    `listen` (e.g. `127.0.0.1:9464`) in a daemon thread.

    Raises ConfigError for a malformed or non-loopback address, MonitorError
    when the address cannot be bound (port in use).
    """
    host, port = parse_listen_address(listen, allow_non_loopback=allow_non_loopback)
    server_class = _Server6 if ":" in host else _Server
    try:
        # A handler class per server: the request timeout is a class attribute
        handler = type("_Handler", (_Handler,), {"timeout": request_timeout})
        server = server_class((host, port), handler)
    except OSError as exc:
        raise MonitorError(f"metrics_listen: {listen!r}: cannot listen: {exc.strerror}") from exc
    server.registry = registry
    server.health = health
    server.slots = threading.BoundedSemaphore(max_connections)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.5},
        name=f"metrics-http-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    log.info("metrics endpoint listening on %s:%s", host, server.server_address[1])
    return MetricsServer(server, thread)
