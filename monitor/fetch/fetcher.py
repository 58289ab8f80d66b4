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
import ssl
import sys
import time
import zlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from monitor import __version__
from monitor.errors import FetchError
from monitor.fetch.decoding import IdentityDecoder, make_decoder, supported_encodings
from monitor.fetch.netguard import (
    AddressSpellingError,
    validate_feed_url,
)
from monitor.fetch.transport import (
    AsyncioDialer,
    GuardedNetworkBackend,
    GuardedTransport,
    Resolver,
    system_resolver,
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
_MAX_HEADER_VALUE = 8 * 1024
_POOL_SHARDS = 8
_START_BURST = 64  # fetch tasks started per turn of the event loop
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)


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


# ---------------------------------------------------------------------------
# Bounded content decoding


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
            transport = GuardedTransport(
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
        decoder = make_decoder(response.headers.get("content-encoding", ""))
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and isinstance(decoder, IdentityDecoder) and int(declared) > limit:
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
