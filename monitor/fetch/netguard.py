"""Which URLs and network addresses `monitor` may fetch from.

Owns the scheme check for feed URLs (config calls `validate_feed_url` at load time) and
the address rule that `fetcher` applies at connect time to every resolved IP, on every
redirect hop: only globally routable unicast addresses, unless an address falls inside a
CIDR the operator allowed explicitly (`HttpSettings.allow_private_networks`).

Before any of that, a URL host that *spells* an IP address in any form but the plain one is
refused outright, whatever the allow-list says (`host_spelling_problem`): IPv4 written as
one number (`2130706433`), in hex or octal (`0x7f000001`, `0177.0.0.1`) or with parts left
out (`127.1`), and IPv6 literals that only carry an IPv4 address (IPv4-mapped
`[::ffff:127.0.0.1]`, IPv4-compatible `[::127.0.0.1]`). No feed needs them; they exist to
slip past filters that compare text, and an allow-list written for `127.0.0.1` must not
be read as permission for them. Config validation, the fetcher's first request and every
redirect hop apply it (through `validate_feed_url`), and the connect-time guard again.

Pure: no DNS, no sockets. It must not decide anything from a host *name*; names are
resolved by `fetcher`, which then asks `is_address_allowed` about the answers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2048

# Ranges that Python's `is_global` (3.11) does not flag but that must never be fetched.
# Sources: IANA special-purpose registries, RFC 6598 (CGNAT), RFC 6052/8215 (NAT64),
# RFC 3056 (6to4), RFC 4380 (Teredo), RFC 4291 (IPv4-compatible IPv6).
_ALWAYS_FORBIDDEN: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",
        "64:ff9b:1::/48",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressSpellingError(ValueError):
    """A URL host spells an IP address in a form that is refused outright (see above)."""


def validate_feed_url(url: str) -> str:
    """Return `url` stripped if it is an absolute http(s) URL with a host; else raise ValueError.

    The message says what is wrong, e.g. "scheme 'file' is not allowed (use http or https)".
    A host spelling an IP address in a refused form raises `AddressSpellingError` (a
    ValueError). Addresses themselves are not checked here: names are resolved and the
    answers checked at connect time.
    """
    if not isinstance(url, str):
        raise ValueError(f"expected a URL string, got {type(url).__name__}")
    text = url.strip()
    if not text:
        raise ValueError("the URL is empty")
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) < 0x21 or 0x7F <= ord(char) <= 0x9F for char in text):
        raise ValueError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the URL cannot be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError("the URL has no scheme (write http:// or https://)")
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not allowed (use http or https)")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if port == 0:
        raise ValueError("port 0 is not a valid port")
    problem = host_spelling_problem(parts.hostname)
    if problem is not None:
        raise AddressSpellingError(problem)
    return text


def host_spelling_problem(host: str) -> str | None:
    """Why `host` (as written in a URL, brackets allowed) is refused outright, or None.

    None for DNS names, for IPv4 written as four decimal numbers without leading zeros,
    and for IPv6 literals that do not merely carry an IPv4 address. The allow-list plays
    no part: these spellings are refused whatever it says.
    """
    address = parse_ip_literal(host)
    if address is None:
        return None
    written = host.strip()
    if written.startswith("[") and written.endswith("]"):
        written = written[1:-1]
    if isinstance(address, ipaddress.IPv4Address):
        if written == str(address):
            return None
        return (
            f"{written!r} is a non-canonical spelling of {address}: refused whatever "
            f"allow_private_networks says (write {address} if you mean it)"
        )
    carried = address.ipv4_mapped
    form = "IPv4-mapped"
    if carried is None and int(address) >> 32 == 0 and int(address) > 1:
        carried, form = ipaddress.IPv4Address(int(address)), "IPv4-compatible"
    if carried is None:
        return None
    return (
        f"{written!r} is an {form} IPv6 literal for {carried}: refused whatever "
        f"allow_private_networks says (write {carried} if you mean it)"
    )


def parse_ip_literal(host: str) -> IPAddress | None:
    """Return the address a host string spells as a literal, or None for a DNS name.

    Accepts what the C resolver accepts as numeric, so that checks see the same address a
    socket would reach: dotted quads, `[::1]`, and the inet_aton spellings
    `2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1`.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # IPv6 zone index ("fe80::1%eth0"): the zone does not change the class
        text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    return _parse_inet_aton(text)


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The BSD `inet_aton` grammar: 1-4 parts, each decimal, 0x-hex or 0-octal."""
    if not text or len(text) > 64:
        return None
    parts = text.split(".")
    if len(parts) > 4:
        return None
    numbers: list[int] = []
    for part in parts:
        value = _parse_aton_part(part)
        if value is None:
            return None
        numbers.append(value)
    *leading, last = numbers
    if any(n > 0xFF for n in leading):
        return None
    remaining_bytes = 4 - len(leading)
    if last >= 1 << (8 * remaining_bytes):
        return None
    value = 0
    for n in leading:
        value = (value << 8) | n
    value = (value << (8 * remaining_bytes)) | last
    return ipaddress.IPv4Address(value)


def _parse_aton_part(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            digits = lowered[2:]
            return int(digits, 16) if digits else 0
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered[1:], 8)
        if lowered.isdigit() and lowered.isascii():
            return int(lowered, 10)
    except ValueError:
        return None
    return None


def parse_allowed_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse the operator's allow-list; raise ValueError naming the bad entry."""
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{cidr!r} is not a network in CIDR notation (e.g. 127.0.0.0/8, fd00::/8)"
            ) from None
    return tuple(networks)


@lru_cache(maxsize=64)
def _cached_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_allowed_networks(cidrs)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client address, as seen from outside
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # "::a.b.c.d", deprecated IPv4-compatible form
        return ipaddress.IPv4Address(int(ip))
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses (and what they embed)."""
    inner = embedded_ipv4(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public_address(ip.ipv4_mapped)  # the socket reaches exactly that IPv4 host
    if inner is not None and not is_public_address(inner):
        return False
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    ):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return not any(ip.version == net.version and ip in net for net in _ALWAYS_FORBIDDEN)


def is_address_allowed(ip: IPAddress | str, allow_private_networks: Sequence[str] = ()) -> bool:
    """May `fetcher` connect to `ip`? Public unicast: yes. Anything else only if allowed.

    `allow_private_networks` holds CIDRs (e.g. `("127.0.0.0/8",)`); an IPv4-mapped IPv6
    address is also tested as the IPv4 address it carries. A string that is not an IP
    address is refused (names must be resolved first).
    """
    address: IPAddress | None
    address = parse_ip_literal(ip) if isinstance(ip, str) else ip
    if address is None:
        return False
    if is_public_address(address):
        return True
    if not allow_private_networks:
        return False
    networks = _cached_networks(tuple(allow_private_networks))
    candidates: list[IPAddress] = [address]
    inner = embedded_ipv4(address)
    if inner is not None:
        candidates.append(inner)
    return any(c.version == net.version and c in net for c in candidates for net in networks)


def describe_address(ip: IPAddress) -> str:
    """A short reason an address is refused, for error messages ("loopback", "private")."""
    inner = embedded_ipv4(ip)
    if inner is not None and not is_public_address(inner):
        return f"embeds {inner} ({describe_address(inner)})"
    for label, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return label
    if ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "shared address space (CGNAT)"
    return "not globally routable"
