"""The network under httpx: resolving, the address rule at connect time, TCP only.

Every resolved IP of every hop goes through `netguard` before the socket connects, and the
socket connects to the very IP that was checked while the Host header and TLS SNI keep the
name, so DNS rebinding cannot slip through. Environment proxies are ignored on purpose.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpcore
import httpx

from monitor.errors import FetchError
from monitor.fetch.netguard import (
    IPAddress,
    describe_address,
    host_spelling_problem,
    is_address_allowed,
    parse_allowed_networks,
    parse_ip_literal,
)

try:  # optional: brotli is only advertised when it can be decoded under the same cap
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

logger = logging.getLogger(__name__)


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


class GuardedTransport(httpx.AsyncHTTPTransport):
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
