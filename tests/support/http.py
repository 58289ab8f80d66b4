"""Real network fixtures for the fetching tests: no mocks of our own code.

- `FeedServer`: a threaded HTTP/1.1 server on 127.0.0.1 whose answer per path is scripted
  (a fixed `Reply`, a function of the request, or a raw `Script` that writes to the socket
  itself: drip, hang, huge and bomb bodies). It records every request and counts accepted
  TCP connections and the maximum number of requests in flight.
- `Sentinel`: a listener that only counts TCP connections, on 127.0.0.1 and ::1 with the
  same port; SSRF tests point forbidden URLs at it and assert it saw nothing.
- `FakeInternet` / `ScriptedResolver`: stand-ins for the *public internet only*: DNS answers
  and routes from a public IP to a local server. Any address they do not know is dialled
  for real, so a guard failure would really reach the sentinel.
- `AuditLog`: records `socket.connect` and `open` audit events raised by the interpreter.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpcore
import pytest

PUBLIC_IP = "93.184.215.14"  # a globally routable address that tests route to a local server


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    started_at: float  # time.monotonic()
    finished_at: float | None = None


class Exchange:
    """What a raw `Script` gets: the socket writer, the request and the stop signal."""

    def __init__(
        self, handler: BaseHTTPRequestHandler, request: RecordedRequest, stop: threading.Event
    ):
        self._handler = handler
        self.request = request
        self.stop = stop

    def send_head(self, status: int, headers: Sequence[tuple[str, str]] = ()) -> None:
        self._handler.send_response(status)
        for name, value in headers:
            self._handler.send_header(name, value)
        self._handler.end_headers()
        self._handler.wfile.flush()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)
        self._handler.wfile.flush()

    def close_after(self) -> None:
        self._handler.close_connection = True


Script = Callable[[Exchange], None]


@dataclass
class _Route:
    reply: Reply | Callable[[RecordedRequest], Reply] | None = None
    script: Script | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False

    def __init__(self, owner: FeedServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner.lock:
            self.owner.connections += 1
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        record = RecordedRequest(
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            started_at=time.monotonic(),
        )
        with owner.lock:
            owner.requests.append(record)
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
        try:
            route = owner.find(self.path)
            if route is None:
                self._send(Reply(404, b"not found"))
            elif route.script is not None:
                route.script(Exchange(self, record, owner.stop_event))
            else:
                if owner.latency:
                    time.sleep(owner.latency)
                reply = route.reply
                assert reply is not None
                self._send(reply if isinstance(reply, Reply) else reply(record))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            record.finished_at = time.monotonic()
            with owner.lock:
                owner.in_flight -= 1

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        names = {name.lower() for name, _ in reply.headers}
        for name, value in reply.headers:
            self.send_header(name, value)
        if "content-length" not in names and reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.status not in (204, 304):
            self.wfile.write(reply.body)


class FeedServer:
    """A scripted HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, *, latency: float = 0.0, tls: ssl.SSLContext | None = None) -> None:
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = latency
        self.stop_event = threading.Event()
        self._routes: dict[str, _Route] = {}
        self._prefix_routes: dict[str, _Route] = {}
        self._server = _Server(self, ("127.0.0.1", 0))
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, path: str, *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, responder: Reply | Callable[[RecordedRequest], Reply]) -> None:
        """Answer GET `path` (exact; a trailing `*` matches a prefix) with a reply."""
        self._add(path, _Route(reply=responder))

    def script(self, path: str, script: Script) -> None:
        """Let `script` write the raw response for `path` (drip, hang, bombs...)."""
        self._add(path, _Route(script=script))

    def _add(self, path: str, route: _Route) -> None:
        if path.endswith("*"):
            self._prefix_routes[path[:-1]] = route
        else:
            self._routes[path] = route

    def find(self, path: str) -> _Route | None:
        if path in self._routes:
            return self._routes[path]
        for prefix, route in self._prefix_routes.items():
            if path.startswith(prefix):
                return route
        return None

    def hits(self, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


# ---------------------------------------------------------------------------
# Scripts


def drip(byte_interval: float, total_bytes: int = 120) -> Script:
    """A 200 whose body arrives one byte per `byte_interval` seconds."""

    def run(ex: Exchange) -> None:
        ex.close_after()
        ex.send_head(
            200, [("Content-Type", "application/rss+xml"), ("Content-Length", str(total_bytes))]
        )
        for _ in range(total_bytes):
            if ex.stop.wait(byte_interval):
                return
            ex.write(b" ")

    return run


def hang(ex: Exchange) -> None:
    """Read the request, never answer (until the server stops)."""
    ex.close_after()
    ex.stop.wait(60)


def huge_body(size: int, *, chunked: bool = False) -> Script:
    """A 200 with `size` bytes of identity body, with or without Content-Length."""

    def run(ex: Exchange) -> None:
        ex.close_after()
        headers = [("Content-Type", "application/xml")]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", str(size)))
        ex.send_head(200, headers)
        block = b"x" * 65536
        sent = 0
        while sent < size and not ex.stop.is_set():
            piece = block[: min(len(block), size - sent)]
            if chunked:
                ex.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                ex.write(piece)
            sent += len(piece)
        if chunked:
            ex.write(b"0\r\n\r\n")

    return run


def compressed_body(encoding: str, data: bytes) -> Script:
    """A 200 that sends `data` (already compressed) with `Content-Encoding: encoding`."""

    def run(ex: Exchange) -> None:
        ex.close_after()
        ex.send_head(
            200,
            [
                ("Content-Type", "application/xml"),
                ("Content-Encoding", encoding),
                ("Content-Length", str(len(data))),
            ],
        )
        view = memoryview(data)
        for start in range(0, len(data), 65536):
            if ex.stop.is_set():
                return
            ex.write(bytes(view[start : start + 65536]))

    return run


def gzip_bomb(decoded_size: int = 1 << 30) -> bytes:
    """A single-member gzip stream of `decoded_size` zero bytes (1 GiB → about 1 MiB).

    Each MiB is compressed after a full flush, so its compressed form is identical and can
    be repeated; building the bomb costs a CRC pass, not a compression pass.
    """
    mib = 1 << 20
    assert decoded_size % mib == 0
    zeros = b"\0" * mib
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()
    crc = 0
    for _ in range(decoded_size // mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, decoded_size & 0xFFFFFFFF)
    return header + block * (decoded_size // mib) + tail + trailer


def brotli_bomb(decoded_size: int = 1 << 30) -> bytes:
    import brotli

    compressor = brotli.Compressor(quality=1)
    zeros = b"\0" * (1 << 20)
    parts = [compressor.process(zeros) for _ in range(decoded_size // len(zeros))]
    parts.append(compressor.finish())
    return b"".join(parts)


# ---------------------------------------------------------------------------
# Listeners and stand-ins for the internet


class Sentinel:
    """Counts TCP connections to one port on 127.0.0.1 and ::1; never answers."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._sockets = self._bind_both()
        self.port = self._sockets[0].getsockname()[1]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self._sockets
        ]

    @staticmethod
    def _bind_both() -> list[socket.socket]:
        for _ in range(50):
            v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            try:
                v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                v6.bind(("::1", port))
            except OSError:
                v4.close()
                continue
            for s in (v4, v6):
                s.listen(64)
                s.settimeout(0.05)
            return [v4, v6]
        raise RuntimeError("no port free on both 127.0.0.1 and ::1")

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted.append((addr[0], addr[1]))
            conn.close()

    def __enter__(self) -> Sentinel:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for s in self._sockets:
            s.close()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.accepted)


class Silent:
    """Accepts TCP connections and never sends a byte (a stalled TLS handshake)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> Silent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        self._sock.close()


class ScriptedResolver:
    """DNS for names that stand for the public internet; a list answers call by call."""

    def __init__(self, answers: Mapping[str, Sequence[Any]]) -> None:
        self._answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        answer = self._answers.get(host.lower().rstrip("."))
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, f"unknown test host {host}")
        if answer and isinstance(answer[0], list | tuple):  # one answer per lookup
            seen = self.calls.count(host)
            step: Sequence[str] = answer[min(seen, len(answer)) - 1]
            return step
        return answer


class FakeInternet(httpcore.AsyncNetworkBackend):
    """Routes chosen public IPs to local servers; dials every other address for real."""

    def __init__(self, routes: dict[str, tuple[str, int]]) -> None:
        self._routes = routes
        self._real = httpcore.AnyIOBackend()
        self.dialled: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append((host, port))
        target_host, target_port = self._routes.get(host, (host, port))
        return await self._real.connect_tcp(
            target_host,
            target_port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


# ---------------------------------------------------------------------------
# Interpreter audit events


class AuditLog:
    """Collects `socket.connect` addresses and `open` paths while active (PEP 578 hooks)."""

    _active: ClassVar[list[AuditLog]] = []
    _installed: ClassVar[bool] = False

    def __init__(self) -> None:
        self.connects: list[Any] = []
        self.opens: list[str] = []

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if not cls._active:
            return
        if event == "socket.connect":
            for log in cls._active:
                log.connects.append(args[1])
        elif event == "open":
            path = args[0]
            if isinstance(path, bytes):
                path = path.decode("utf-8", "replace")
            for log in cls._active:
                log.opens.append(str(path))

    @contextlib.contextmanager
    def watching(self) -> Iterator[AuditLog]:
        if not AuditLog._installed:
            sys.addaudithook(AuditLog._hook)
            AuditLog._installed = True
        AuditLog._active.append(self)
        try:
            yield self
        finally:
            AuditLog._active.remove(self)

    def connects_to_port(self, port: int) -> list[Any]:
        return [a for a in self.connects if isinstance(a, tuple) and len(a) >= 2 and a[1] == port]


def refused_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@dataclass
class Blackhole:
    """A listener whose accept queue is full, so a new connect hangs in SYN-SENT."""

    port: int = 0
    _sockets: list[socket.socket] = field(default_factory=list)

    def __enter__(self) -> Blackhole:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self.port = listener.getsockname()[1]
        self._sockets.append(listener)
        for _ in range(8):  # fill the backlog; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._sockets.append(filler)
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self._sockets:
            s.close()


def self_signed_certificate(directory: str, name: str = "localhost") -> tuple[str, str]:
    """A throw-away certificate and key for `name`, made with the openssl command."""
    cert, key = f"{directory}/cert.pem", f"{directory}/key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            key,
            "-out",
            cert,
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# Addresses that are not loopback: refused unless explicitly allowed.
NON_LOOPBACK = [
    pytest.param("0.0.0.0:9464", id="any-v4"),
    pytest.param("[::]:9464", id="any-v6"),
    pytest.param("192.168.1.5:9464", id="private"),
    pytest.param("8.8.8.8:9464", id="public"),
    pytest.param("[::ffff:10.0.0.1]:9464", id="v4-mapped-private"),
]
