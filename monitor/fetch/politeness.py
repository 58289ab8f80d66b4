"""When to poll a feed next, and what to remember of the last poll.

Owns the pure decision `next_state(state, result, now, …) → FeedState`: validators for
conditional GET, the next check time (the feed's interval, stretched by what the server
or the feed asks — Cache-Control max-age, Expires, <ttl> — within the configured bounds,
plus jitter), exponential backoff with jitter after failures (capped, never giving up),
Retry-After, 410 Gone and permanent redirects.

Pure: no clock (pass `now`), no randomness of its own (pass `rng`), no I/O.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from monitor.models import FeedState, FetchResult, ScheduleSettings, utc

INTERVAL_JITTER = 0.10  # a next check lands up to 10 % after the interval, never before
BACKOFF_JITTER = 0.20  # a backoff delay is drawn from [80 %, 100 %] of its nominal value


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Directives of a Cache-Control header, names lower-cased: `{"max-age": "600"}`."""
    directives: dict[str, str | None] = {}
    if not value:
        return directives
    for part in value.split(","):
        name, sep, argument = part.strip().partition("=")
        name = name.strip().lower()
        if name:
            directives[name] = argument.strip().strip('"') if sep else None
    return directives


def cache_lifetime_seconds(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """How long the server says the response stays fresh, or None if it does not say.

    Cache-Control `max-age` (or `s-maxage`) wins over Expires (RFC 9111 §5.3); `no-cache`
    and `no-store` say nothing about how often to poll, so they give None.
    """
    directives = parse_cache_control(headers.get("cache-control"))
    for name in ("s-maxage", "max-age"):
        argument = directives.get(name)
        if argument is not None and argument.isascii() and argument.isdigit():
            return float(min(int(argument[:10]), 10**9))
    return expires_in_seconds(headers.get("expires"), now=now)


def expires_in_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds until an Expires HTTP-date, 0 if past, None if absent or invalid ("0", "-1")."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return max(0.0, (utc(when) - utc(now)).total_seconds())


def poll_interval_seconds(
    *,
    schedule: ScheduleSettings,
    feed_interval_seconds: int | None,
    freshness_seconds: float | None,
) -> float:
    """The interval before jitter: the feed's (or the default), stretched by `freshness`.

    A hint from the server or the feed only ever lengthens the interval, and only up to the
    maximum; nothing polls more often than the minimum. An explicit per-feed interval above
    the maximum is the user's choice and is kept.
    """
    interval = float(feed_interval_seconds or schedule.default_feed_interval_seconds)
    if freshness_seconds is not None and freshness_seconds > interval:
        interval = max(interval, min(freshness_seconds, float(schedule.max_feed_interval_seconds)))
    return max(interval, float(schedule.min_feed_interval_seconds))


def backoff_seconds(
    failures: int, *, base_seconds: float, cap_seconds: float, rng: random.Random
) -> float:
    """Delay after the `failures`-th failure in a row: base × 2^(n-1), capped, with jitter.

    The jitter takes up to 20 % off, so the delay never exceeds the cap, and feeds that
    failed together do not come back together.
    """
    exponent = min(max(failures, 1) - 1, 60)
    nominal = min(base_seconds * (2.0**exponent), cap_seconds)
    return nominal * (1.0 - BACKOFF_JITTER * rng.random())


def next_state(
    state: FeedState,
    result: FetchResult,
    *,
    now: datetime,
    schedule: ScheduleSettings,
    feed_interval_seconds: int | None,
    feed_ttl_seconds: int | None,
    rng: random.Random,
) -> FeedState:
    """The feed's state after `result`: validators, failure count and the next check time.

    - ok (200): store the response's ETag and Last-Modified (replacing the old ones, even
      with None); not_modified (304): keep them unless the 304 carries new ones.
    - ok / not_modified reset the failure count; a permanent redirect updates the URL.
    - gone (410): disabled, no next check.
    - error: failures + 1, `failing_since` kept from the first failure, the next check after
      an exponential backoff (never later than `max_backoff_seconds` unless Retry-After asks
      for more) — polling never stops on its own.
    A Retry-After (429/503) is always honoured: the next check is at least that far away.
    """
    now = utc(now)
    if result.outcome == "gone":
        return replace(
            state,
            disabled=True,
            next_check_at=None,
            consecutive_failures=0,
            failing_since=None,
        )
    interval = poll_interval_seconds(
        schedule=schedule,
        feed_interval_seconds=feed_interval_seconds,
        freshness_seconds=None,
    )
    if result.outcome in ("ok", "not_modified"):
        freshness = cache_lifetime_seconds(result.headers, now=now)
        if feed_ttl_seconds is not None:
            freshness = max(freshness or 0.0, float(feed_ttl_seconds))
        interval = poll_interval_seconds(
            schedule=schedule,
            feed_interval_seconds=feed_interval_seconds,
            freshness_seconds=freshness,
        )
        delay = interval * (1.0 + INTERVAL_JITTER * rng.random())
        if result.outcome == "ok":
            etag, last_modified = result.etag, result.last_modified
        else:
            etag = result.etag or state.etag
            last_modified = result.last_modified or state.last_modified
        delay = max(delay, result.retry_after_seconds or 0.0)
        return replace(
            state,
            url=result.permanent_url or state.url,
            etag=etag,
            last_modified=last_modified,
            next_check_at=now + timedelta(seconds=delay),
            consecutive_failures=0,
            failing_since=None,
            disabled=False,
        )
    failures = state.consecutive_failures + 1
    delay = backoff_seconds(
        failures,
        base_seconds=min(interval, float(schedule.max_backoff_seconds)),
        cap_seconds=float(schedule.max_backoff_seconds),
        rng=rng,
    )
    delay = max(delay, result.retry_after_seconds or 0.0)
    return replace(
        state,
        next_check_at=now + timedelta(seconds=delay),
        consecutive_failures=failures,
        failing_since=state.failing_since or now,
    )
