"""Article links: the one check of a link from a feed, and the comparable form of an article URL.

Pure and dependency-free, below every stage: the parser cleans links with it, and story
grouping compares articles by `canonical_url` (in the parser workers and in the store).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MAX_URL_CHARS = 2048


# Query parameters that only track the reader (removed from canonical URLs).
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid",
        "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "vero_id",
        "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid", "ref_src", "cmpid",
        "ito", "ns_mchannel", "ns_source", "ns_campaign", "ns_linkname", "ns_fee",
    }
)  # fmt: skip


TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")


# Every format (Cf), control (Cc) and surrogate (Cs) character of Unicode 15 except tab,
# LF and CR (handled apart): C0/C1 controls, soft hyphen, bidi embeddings, overrides,
# isolates and marks, zero-width characters, the BOM, tag characters; plus U+FFFE/FFFF.
# A test checks this class against `unicodedata`.
INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ud800-\udfff\ufeff\ufff9-\ufffb\ufffe\uffff\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


_LINE_BREAKS = re.compile("[\r\n\t\x0b\x0c\x85\u2028\u2029]+")


def clean_link(url: Any) -> str | None:
    """The URL if it is an absolute http(s) URL with a host and no controls, else None."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    if not text or len(text) > MAX_URL_CHARS or INVISIBLE.search(text) or " " in text:
        return None
    if _LINE_BREAKS.search(text):
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return text


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """A comparable form of an article URL, or None if it is not an http(s) URL.

    Scheme and host lower-cased, default port, user info and fragment dropped, tracking
    parameters (utm_*, fbclid, gclid…) removed, remaining parameters sorted, empty path "/".
    """
    link = clean_link(url)
    if link is None:
        return None
    parts = urlsplit(link)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))
