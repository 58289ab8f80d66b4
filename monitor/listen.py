"""Parsing a listen address (`metrics_listen`): `HOST:PORT`, loopback unless allowed.

Owns the rule that an endpoint without authentication listens on 127.0.0.1 or [::1]
only. Pure: no DNS lookup, no socket. `config` checks the setting with it at load, and
`service.metrics_http` binds what it returns.
"""

from __future__ import annotations

import ipaddress

from monitor.errors import ConfigError


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
