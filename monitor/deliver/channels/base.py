"""The channel interface and the HTTP answer → outcome rule every HTTP channel shares.

A channel's `send(payload)` returns `Delivered`, `Retry(after, error)` or `Dead(reason)`;
it never raises for a delivery failure and never touches the database or the clock.

Classification (the same as for feeds and SMTP, issue 13):
- 2xx: delivered.
- 408, 425, 429 and 5xx, timeouts, connection errors: retry later; a 429 or 503 with
  `Retry-After` (seconds or an HTTP date) is honoured, capped at `MAX_RETRY_AFTER_SECONDS`.
- any other status (other 4xx, a 3xx: redirects are not followed): dead, one log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

MAX_RETRY_AFTER_SECONDS = 6 * 3600.0
_RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Delivered:
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    error: str
    after_seconds: float | None = None  # None: the outbox's own backoff; else Retry-After


@dataclass(frozen=True, slots=True)
class Dead:
    reason: str


Outcome = Delivered | Retry | Dead


class Channel(Protocol):
    """One configured destination. `send` is called from a delivery thread."""

    def send(self, payload: dict[str, Any]) -> Outcome: ...

    def close(self) -> None: ...


def outcome_for_status(
    status: int, headers: Any, *, body: str = "", now: datetime | None = None
) -> Outcome:
    """The outcome of an HTTP answer (`headers`: a mapping with `.get`, case-insensitive)."""
    if 200 <= status < 300:
        return Delivered(f"HTTP {status}")
    text = " ".join(body.split())[:200]
    error = f"HTTP {status}" + (f": {text}" if text else "")
    if status in _RETRYABLE_STATUS or status >= 500:
        return Retry(error, retry_after_seconds(headers.get("retry-after"), now=now))
    return Dead(error)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now (RFC 9110 §10.2.3), capped; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    import email.utils  # here: the settings import this module, and email costs 20-30 ms

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
