"""HTTP fetching of feeds: the only module of `monitor` that talks HTTP.

Owns conditional GET, redirects (followed by hand, at most `max_redirects`), the address
rule at connect time (every resolved IP of every hop goes through `netguard`; the socket
connects to the very IP that was checked, while the Host header and TLS SNI keep the name,
so DNS rebinding cannot slip through), timeouts plus a total deadline per fetch, a cap on
the *decoded* body enforced while streaming (gzip/deflate/brotli bombs), Retry-After, and
the global, per-host and per-host-spacing limits of a poll round.

It never raises for network or HTTP trouble: every problem becomes a `FetchResult` with
outcome "error" and a stable `error_kind`. It must not parse feeds, touch the database or
decide when to poll next (see `politeness`). Environment proxies are ignored on purpose.
"""

from __future__ import annotations

import asyncio
import email.utils
import http.cookiejar
import logging
import select
import socket
import ssl
import sys
import time
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpcore
import httpx

from monitor import __version__
from monitor.errors import FetchError
from monitor.fetch.netguard import (
    AddressSpellingError,
    IPAddress,
    describe_address,
    host_spelling_problem,
    is_address_allowed,
    parse_allowed_networks,
    parse_ip_literal,
    validate_feed_url,
)
from monitor.models import FeedState, FetchResult, HttpSettings, utc

try:  # optional: brotli is only advertised when it can be decoded under the same cap
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

logger = logging.getLogger(__name__)

# httpcore 1.0.x imports sniffio inside every lock, event and semaphore it creates and falls
# back to asyncio when that fails. Since anyio 4.11 no longer installs sniffio, every
# request paid several failed imports (a path search each; about 1 ms of CPU per request,
# encode/httpcore#1103). Record the absence once; `import sniffio` then fails at once,
# exactly as before, only cheaply. Installing sniffio makes this a no-op.
try:
    import sniffio  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

MAX_RETRY_AFTER_SECONDS = 48 * 3600
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_DECODE_PIECE = 64 * 1024  # decoded bytes produced per step: bounds memory per chunk
_MAX_HEADER_VALUE = 8 * 1024
_POOL_SHARDS = 8
_START_BURST = 64  # fetch tasks started per turn of the event loop
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Turns a host name and port into IP address strings (the default asks the system)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve `host` with the system resolver (getaddrinfo) into unique address strings."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def build_user_agent(version: str, contact_url: str) -> str:
    """`monitor/0.1.0 (+https://…)`: names the software, its version and whom to contact."""
    return f"monitor/{version} (+{contact_url})"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), capped at 48 h.

    Returns None when the header is absent or unreadable; past dates give 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 100:
        return None
    if text.isascii() and text.isdigit():
        seconds = float(int(text[:12]))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        seconds = (utc(when) - utc(now)).total_seconds()
    return float(min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS))


# ---------------------------------------------------------------------------
# Connect-time address guard


class _TcpOnlyBackend(httpcore.AsyncNetworkBackend):
    """A network backend that never dials a unix socket (a feed URL cannot name one)."""

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise FetchError("ssrf_blocked", "unix sockets are never fetched")


class GuardedNetworkBackend(_TcpOnlyBackend):
    """An httpcore network backend that resolves, checks and then dials the checked IP.

    httpcore calls `connect_tcp` with the host name of the URL for every new connection
    (so for every redirect hop that needs one). We resolve it once, refuse the connection
    if *any* answer is not allowed, and hand the dialer the literal address, never the name.
    TLS still uses the name for SNI and certificate checks (httpcore passes it separately).
    """

    def __init__(
        self,
        *,
        allow_private_networks: Sequence[str],
        resolver: Resolver,
        dialer: httpcore.AsyncNetworkBackend,
    ) -> None:
        self._allow = tuple(allow_private_networks)
        parse_allowed_networks(self._allow)  # fail at construction, not at the first fetch
        self._resolver = resolver
        self._dialer = dialer

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        spelling = host_spelling_problem(host)  # validate_feed_url checks it first; again here
        if spelling is not None:
            raise FetchError("ssrf_blocked", f"{spelling}; refusing to connect")
        addresses = await self._resolve(host, port, timeout)
        for address in addresses:
            if not is_address_allowed(address, self._allow):
                named = (
                    str(address) if parse_ip_literal(host) is not None else f"{host} is {address}"
                )
                raise FetchError(
                    "ssrf_blocked",
                    f"{named} ({describe_address(address)}); refusing to connect "
                    "(add its network to allow_private_networks to permit it)",
                )
        last_error: Exception | None = None
        for address in addresses[:4]:
            remaining = (
                None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            )
            try:
                return await self._dialer.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        literal = parse_ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(timeout):
                answers = await self._resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise FetchError("dns_error", f"cannot resolve {host}: {exc}") from None
        addresses: list[IPAddress] = []
        for answer in answers:
            address = parse_ip_literal(str(answer))
            if address is None:
                raise FetchError("dns_error", f"resolver gave a non-address {answer!r}")
            addresses.append(address)
        if not addresses:
            raise FetchError("dns_error", f"{host} has no addresses")
        return addresses

    async def sleep(self, seconds: float) -> None:
        await self._dialer.sleep(seconds)


class _AsyncioStream(httpcore.AsyncNetworkStream):
    """An httpcore stream over asyncio's own streams, with per-operation timeouts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout(f"no data for {timeout} s") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"could not send for {timeout} s") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._writer.close()
            raise httpcore.ConnectTimeout(f"TLS handshake took longer than {timeout} s") from None
        except OSError as exc:  # ssl.SSLError is an OSError
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle keep-alive connection the server has closed
            sock = self._writer.get_extra_info("socket")
            return self._reader.at_eof() or sock is None or _is_socket_readable(sock)
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername"}
        if info in names:
            return self._writer.get_extra_info(names[info])
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None


def _is_socket_readable(sock: Any) -> bool:
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class AsyncioDialer(_TcpOnlyBackend):
    """Dials IP literals with asyncio directly.

    httpcore's default (anyio) backend costs about a third more CPU per connection
    (a task group per connect, a cancel scope per read and write); a poll round opens a
    new connection for nearly every feed, so this is the cheaper path. It only ever gets
    addresses `GuardedNetworkBackend` has checked.
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"TCP connect took longer than {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool rebuilt around the guarded backend.

    httpx does not take a network backend as an argument; replacing the pool it builds is
    the documented-by-source way (httpx 0.28: `AsyncHTTPTransport._pool`).
    """

    def __init__(
        self,
        *,
        network_backend: httpcore.AsyncNetworkBackend,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
    ) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        if not hasattr(self, "_pool"):  # pragma: no cover - guards an httpx upgrade
            raise RuntimeError("httpx.AsyncHTTPTransport no longer has _pool; update fetcher")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=network_backend,
        )


# ---------------------------------------------------------------------------
# Bounded content decoding


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def flush(self) -> Iterator[bytes]: ...


class _IdentityDecoder:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _ZlibDecoder:
    """gzip (multi-member) or deflate (zlib-wrapped or raw), at most 64 KiB per step."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._wbits = 16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._kind == "deflate" and not self._started and data:
            self._started = True
            # RFC 9110 says zlib-wrapped; some servers send raw deflate. Decide on the header.
            is_zlib = (
                len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            )
            if not is_zlib:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = data
        while True:
            out = self._obj.decompress(pending, _DECODE_PIECE)
            if out:
                yield out
            if self._obj.eof:
                pending = self._obj.unused_data
                if self._kind != "gzip" or not pending.strip(b"\0"):
                    return  # padding or junk after the stream is ignored, as browsers do
                self._obj = zlib.decompressobj(self._wbits)  # the next gzip member
                continue
            pending = self._obj.unconsumed_tail
            if not pending and len(out) < _DECODE_PIECE:
                return

    def flush(self) -> Iterator[bytes]:
        out = self._obj.flush()
        if out:
            yield out


class _BrotliDecoder:
    def __init__(self) -> None:
        assert _brotli is not None
        self._obj = _brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = self._obj.process(data, output_buffer_limit=_DECODE_PIECE)
        if out:
            yield out
        while not self._obj.can_accept_more_data():
            out = self._obj.process(b"", output_buffer_limit=_DECODE_PIECE)
            if not out:
                break
            yield out

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _ChainDecoder:
    """Undo `Content-Encoding: a, b` (applied in that order) lazily, so nothing balloons."""

    def __init__(self, decoders: list[_Decoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, data)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._decoders):
            if data:
                yield data
            return
        for piece in self._decoders[index].feed(data):
            yield from self._through(index + 1, piece)

    def flush(self) -> Iterator[bytes]:
        for index, decoder in enumerate(self._decoders):
            for piece in decoder.flush():
                yield from self._through(index + 1, piece)


def supported_encodings() -> tuple[str, ...]:
    """Content codings this fetcher can undo under the body cap (sent as Accept-Encoding)."""
    return ("gzip", "deflate", "br") if _brotli is not None else ("gzip", "deflate")


def _make_decoder(content_encoding: str) -> _Decoder:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    decoders: list[_Decoder] = []
    for coding in reversed(codings):  # the last coding applied is undone first
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            decoders.append(_ZlibDecoder("gzip"))
        elif coding == "deflate":
            decoders.append(_ZlibDecoder("deflate"))
        elif coding == "br" and _brotli is not None:
            decoders.append(_BrotliDecoder())
        else:
            raise FetchError("unsupported_encoding", f"cannot decode Content-Encoding {coding!r}")
    if not decoders:
        return _IdentityDecoder()
    return decoders[0] if len(decoders) == 1 else _ChainDecoder(decoders)


# ---------------------------------------------------------------------------
# Politeness gates


@dataclass
class _HostGate:
    semaphore: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_start: float = float("-inf")


def _host_key(url: str) -> str:
    """The host a request goes to first: the unit of per-host politeness."""
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""


def _clean_validator(value: str | None) -> bytes | None:
    """A stored ETag/Last-Modified as the bytes to send back, if it is a safe single line.

    Validators are kept as their raw bytes decoded one byte per character (Latin-1), so
    a non-ASCII ETag goes back exactly as the server sent it."""
    if not value or len(value) > 1024:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0xFF for c in value):
        return None
    return value.encode("latin-1")


def _raw_validator(headers: httpx.Headers, name: bytes) -> str | None:
    """A response's ETag or Last-Modified, byte for byte (Latin-1 decoded: lossless)."""
    for key, value in headers.raw:
        if key.lower() == name:
            return value[:_MAX_HEADER_VALUE].decode("latin-1")
    return None


def _lowercase_headers(headers: httpx.Headers) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        value = value[:_MAX_HEADER_VALUE]
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _classify(exc: Exception) -> tuple[str, str]:
    """Map an httpx/httpcore exception to (error_kind, message)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return "timeout", f"connect timed out (TCP or TLS handshake): {text}"
    if isinstance(exc, httpx.ReadTimeout):
        return "timeout", f"read timed out: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", text
    if any(isinstance(e, ssl.SSLError) for e in _cause_chain(exc)):
        return "tls_error", text
    if isinstance(exc, httpx.ConnectError):
        return "connect_error", text
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol_error", text
    if isinstance(exc, httpx.NetworkError):
        return "network_error", text
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid_url", text
    if isinstance(exc, httpx.TooManyRedirects):
        return "too_many_redirects", text
    return "internal_error", f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------
# The fetcher


class Fetcher:
    """Fetches feeds politely and safely. Use as `async with Fetcher(settings) as fetcher:`.

    `resolver`, `network_backend` and `ssl_context` exist for tests and unusual
    deployments: a resolver answers DNS questions (the address rule still applies to its
    answers), a network backend dials the *checked* IP literal (tests use one to stand in
    for the internet), an SSL context replaces the default (certifi CAs, verification on).
    """

    def __init__(
        self,
        settings: HttpSettings,
        *,
        version: str = __version__,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._ssl_context = ssl_context
        self.user_agent = build_user_agent(version, settings.contact_url)
        self._backend = GuardedNetworkBackend(
            allow_private_networks=settings.allow_private_networks,
            resolver=resolver or system_resolver,
            dialer=network_backend or AsyncioDialer(),
        )
        self._clients: list[httpx.AsyncClient] = []
        self._global: asyncio.Semaphore | None = None
        self._hosts: dict[str, _HostGate] = {}

    async def __aenter__(self) -> Fetcher:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Create the HTTP clients (idempotent); `async with` does this for you."""
        if self._clients:
            return
        settings = self.settings
        # httpcore scans its whole pool on every request and response, so one pool of
        # `global_concurrency` connections costs O(n) per request. Hosts are spread over
        # a few smaller pools instead (the global semaphore still caps the total). Idle
        # connections only help feeds of one host within a round, so few are kept.
        shards = max(1, min(_POOL_SHARDS, settings.global_concurrency // 8))
        limits = httpx.Limits(
            max_connections=max(1, settings.global_concurrency),
            max_keepalive_connections=max(2, 16 // shards),
            keepalive_expiry=5.0,
        )
        ssl_context = self._ssl_context or httpx.create_ssl_context(trust_env=False)
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.total_deadline_seconds,
        )
        for _ in range(shards):
            # A jar whose policy accepts no domain: feeds must not share or keep cookies.
            no_cookies = http.cookiejar.CookieJar(
                policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            )
            transport = _GuardedTransport(
                network_backend=self._backend, ssl_context=ssl_context, limits=limits
            )
            self._clients.append(
                httpx.AsyncClient(
                    transport=transport,
                    trust_env=False,
                    follow_redirects=False,
                    cookies=no_cookies,
                    timeout=timeout,
                    headers={"User-Agent": self.user_agent},
                )
            )
        self._global = asyncio.Semaphore(max(1, settings.global_concurrency))

    async def aclose(self) -> None:
        """Close pooled connections."""
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    def _client_for(self, url: str) -> httpx.AsyncClient:
        key = _host_key(url).encode("utf-8", "replace")
        return self._clients[zlib.crc32(key) % len(self._clients)]

    async def fetch_many(self, states: Sequence[FeedState], *, now: datetime) -> list[FetchResult]:
        """Fetch every feed concurrently within the limits; results in the order given."""
        return list(await asyncio.gather(*(self.fetch(state, now=now) for state in states)))

    async def iter_fetches(
        self, states: Sequence[FeedState], *, now: datetime, max_pending: int | None = None
    ) -> AsyncGenerator[FetchResult, None]:
        """Yield results as they complete, so a caller can parse and drop bodies early.

        With `max_pending`, at most that many results are fetched or being fetched and not
        yet taken by the caller: a caller that takes the next result only when it has room
        for it holds memory bounded by that, not by the number of feeds. A feed waits for
        room only after its host's slot and spacing, so a slow host holds no room.
        """
        room = asyncio.Semaphore(max_pending) if max_pending is not None else None
        # Finished fetches wait in `done` until taken; nothing else keeps a finished task
        # (with its body) once the caller has it, so memory does not grow with the feeds.
        done: asyncio.Queue[asyncio.Task[FetchResult]] = asyncio.Queue()
        pending: set[asyncio.Task[FetchResult]] = set()

        def finished(task: asyncio.Task[FetchResult]) -> None:
            pending.discard(task)
            done.put_nowait(task)

        try:
            for started, state in enumerate(states, start=1):
                task = asyncio.create_task(self._fetch(state, now=now, room=room))
                pending.add(task)
                task.add_done_callback(finished)
                if started % _START_BURST == 0:
                    # Each new task takes its first steps at once: a few at a time, so
                    # thousands of feeds do not hold the event loop for one long turn.
                    await asyncio.sleep(0)
            for _ in range(len(states)):
                result = (await done.get()).result()
                if room is not None:
                    room.release()  # the caller holds this one now
                yield result
        finally:
            for task in list(pending):
                task.cancel()

    async def fetch(self, state: FeedState, *, now: datetime) -> FetchResult:
        """Fetch one feed with conditional GET. Never raises for network or HTTP trouble.

        Waits for a global slot, a per-host slot and the per-host spacing first; the total
        deadline starts when the request does.
        """
        return await self._fetch(state, now=now, room=None)

    async def _fetch(
        self, state: FeedState, *, now: datetime, room: asyncio.Semaphore | None
    ) -> FetchResult:
        now = utc(now)
        await self.open()
        try:
            url = validate_feed_url(state.url)
        except AddressSpellingError as exc:
            return FetchResult(
                state.feed_id,
                "error",
                now,
                error_kind="ssrf_blocked",
                error_message=f"{exc}; refusing to connect",
            )
        except ValueError as exc:
            if room is not None:
                await room.acquire()  # every result yielded holds room until it is taken
            return FetchResult(
                state.feed_id, "error", now, error_kind="invalid_url", error_message=str(exc)
            )
        gate = self._gate(_host_key(url))
        assert self._global is not None
        async with gate.semaphore:
            async with gate.lock:
                loop = asyncio.get_running_loop()
                wait = gate.last_start + self.settings.per_host_min_interval_seconds - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if room is not None:
                    await room.acquire()  # released when the caller takes the result
                await self._global.acquire()
                gate.last_start = loop.time()
            try:
                return await self._fetch_within_deadline(state, url, now)
            finally:
                self._global.release()

    def _gate(self, host: str) -> _HostGate:
        gate = self._hosts.get(host)
        if gate is None:
            gate = _HostGate(asyncio.Semaphore(max(1, self.settings.per_host_concurrency)))
            self._hosts[host] = gate
        return gate

    async def _fetch_within_deadline(
        self, state: FeedState, url: str, now: datetime
    ) -> FetchResult:
        started = time.monotonic()
        deadline = self.settings.total_deadline_seconds

        def failed(kind: str, message: str, **extra: Any) -> FetchResult:
            return FetchResult(
                feed_id=state.feed_id,
                outcome="error",
                fetched_at=now,
                error_kind=kind,
                error_message=message,
                elapsed_seconds=time.monotonic() - started,
                **extra,
            )

        try:
            async with asyncio.timeout(deadline) as scope:
                result = await self._follow_redirects(state, url, now)
        except TimeoutError:
            if scope.expired():
                return failed("deadline_exceeded", f"the fetch took longer than {deadline:g} s")
            return failed("timeout", "timed out")
        except FetchError as exc:
            return failed(exc.kind, exc.detail)
        except httpx.HTTPError as exc:
            kind, message = _classify(exc)
            return failed(kind, message)
        except Exception as exc:  # a bug must not take the poll round down with it
            logger.exception("fetch feed=%s url=%s failed unexpectedly", state.feed_id, url)
            return failed("internal_error", f"{type(exc).__name__}: {exc}")
        elapsed = time.monotonic() - started
        logger.debug(
            "fetch feed=%s outcome=%s status=%s kind=%s elapsed=%.3f",
            state.feed_id,
            result.outcome,
            result.http_status,
            result.error_kind,
            elapsed,
        )
        return replace(result, elapsed_seconds=elapsed)

    def _request_headers(self, state: FeedState) -> dict[bytes, bytes]:
        """As bytes: a validator goes back exactly as the server sent it."""
        headers = {
            b"Accept": _ACCEPT.encode("ascii"),
            b"Accept-Encoding": ", ".join(supported_encodings()).encode("ascii"),
        }
        etag = _clean_validator(state.etag)
        if etag:
            headers[b"If-None-Match"] = etag
        last_modified = _clean_validator(state.last_modified)
        if last_modified:
            headers[b"If-Modified-Since"] = last_modified
        return headers

    async def _follow_redirects(self, state: FeedState, url: str, now: datetime) -> FetchResult:
        headers = self._request_headers(state)
        current = url
        redirects = 0
        permanent_url: str | None = None
        only_permanent_so_far = True
        while True:
            client = self._client_for(current)
            request = client.build_request("GET", current, headers=headers)
            try:
                response = await client.send(request, stream=True)
            except httpx.InvalidURL as exc:  # httpx pre-builds the next hop of a redirect
                raise FetchError("bad_redirect", f"redirect to an invalid URL: {exc}") from None
            try:
                status = response.status_code
                if status in _REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("bad_redirect", f"HTTP {status} without a Location")
                    redirects += 1
                    if redirects > self.settings.max_redirects:
                        raise FetchError(
                            "too_many_redirects",
                            f"more than {self.settings.max_redirects} redirects (last {current})",
                        )
                    try:
                        target = validate_feed_url(str(response.url.join(location.strip())))
                    except (ValueError, httpx.InvalidURL) as exc:
                        raise _refused_redirect(location, exc) from None
                    if status in _PERMANENT_REDIRECTS and only_permanent_so_far:
                        permanent_url = target
                    else:
                        only_permanent_so_far = False
                    current = target
                    continue
                return await self._finish(state, response, now, permanent_url)
            finally:
                await response.aclose()

    async def _finish(
        self,
        state: FeedState,
        response: httpx.Response,
        now: datetime,
        permanent_url: str | None,
    ) -> FetchResult:
        status = response.status_code
        headers = _lowercase_headers(response.headers)
        location = response.headers.get("content-location")
        try:
            base = str(response.url.join(location)) if location else str(response.url)
        except httpx.InvalidURL:
            base = str(response.url)
        headers["content-location"] = base  # absolute: the parser resolves relative links
        common: dict[str, Any] = {
            "feed_id": state.feed_id,
            "fetched_at": now,
            "http_status": status,
            "headers": headers,
        }
        if status == 304:
            return FetchResult(
                outcome="not_modified",
                etag=_raw_validator(response.headers, b"etag"),
                last_modified=_raw_validator(response.headers, b"last-modified"),
                permanent_url=permanent_url,
                **common,
            )
        if status == 410:
            return FetchResult(
                outcome="gone",
                error_kind="http_410",
                error_message="410 Gone: the feed was removed",
                **common,
            )
        if 200 <= status < 300:
            body = await self._read_body(response)
            return FetchResult(
                outcome="ok",
                body=body,
                etag=_raw_validator(response.headers, b"etag"),
                last_modified=_raw_validator(response.headers, b"last-modified"),
                permanent_url=permanent_url,
                **common,
            )
        return FetchResult(
            outcome="error",
            error_kind=f"http_{status}",
            error_message=f"HTTP {status} {response.reason_phrase}".strip(),
            retry_after_seconds=parse_retry_after(headers.get("retry-after"), now=now),
            **common,
        )

    async def _read_body(self, response: httpx.Response) -> bytes:
        limit = self.settings.max_body_bytes
        decoder = _make_decoder(response.headers.get("content-encoding", ""))
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and isinstance(decoder, _IdentityDecoder) and int(declared) > limit:
            raise FetchError(
                "body_too_large", f"Content-Length {int(declared)} exceeds the {limit}-byte cap"
            )
        chunks: list[bytes] = []
        received = 0
        decoded = 0
        try:
            async for raw in response.aiter_raw():
                received += len(raw)
                if received > limit:
                    raise FetchError("body_too_large", f"more than {limit} bytes on the wire")
                for piece in decoder.feed(raw):
                    decoded += len(piece)
                    if decoded > limit:
                        raise _too_large(limit, decoded, received)
                    chunks.append(piece)
            for piece in decoder.flush():
                decoded += len(piece)
                if decoded > limit:
                    raise _too_large(limit, decoded, received)
                chunks.append(piece)
        except (zlib.error, ValueError) as exc:
            raise FetchError("decode_error", f"cannot decode the body: {exc}") from None
        except Exception as exc:
            if _brotli is not None and isinstance(exc, _brotli.error):
                raise FetchError("decode_error", f"cannot decode the body: {exc}") from None
            raise
        return b"".join(chunks)


def _refused_redirect(location: str, exc: Exception) -> FetchError:
    """`ssrf_blocked` for a refused spelling of an address, else `bad_redirect`."""
    if isinstance(exc, AddressSpellingError):
        return FetchError("ssrf_blocked", f"redirect to {location!r}: {exc}; refusing to connect")
    return FetchError("bad_redirect", f"redirect to {location!r}: {exc}")


def _too_large(limit: int, decoded: int, received: int) -> FetchError:
    return FetchError(
        "body_too_large",
        f"decoded body exceeds the {limit}-byte cap "
        f"(stopped at {decoded} decoded bytes from {received} received)",
    )
