"""next_state: validators, next check time, backoff, Retry-After, 410 and 301 (pure)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.fetch.politeness import (
    backoff_seconds,
    cache_lifetime_seconds,
    next_state,
    parse_cache_control,
)
from monitor.models import FeedState, FetchResult, ScheduleSettings

NOW = datetime(2024, 9, 14, 8, 0, tzinfo=UTC)
SCHEDULE = ScheduleSettings(
    default_feed_interval_seconds=1800,
    min_feed_interval_seconds=300,
    max_feed_interval_seconds=6 * 3600,
    max_backoff_seconds=24 * 3600,
)
STATE = FeedState(feed_id="f", url="https://example.org/feed", etag='"old"', last_modified="Mon")


def ok(**kwargs: object) -> FetchResult:
    return FetchResult(feed_id="f", outcome="ok", fetched_at=NOW, http_status=200, **kwargs)  # type: ignore[arg-type]


def error(kind: str = "http_503", **kwargs: object) -> FetchResult:
    return FetchResult(feed_id="f", outcome="error", fetched_at=NOW, error_kind=kind, **kwargs)  # type: ignore[arg-type]


def advance(
    state: FeedState,
    result: FetchResult,
    *,
    interval: int | None = None,
    ttl: int | None = None,
    seed: int = 1,
    now: datetime = NOW,
) -> FeedState:
    return next_state(
        state,
        result,
        now=now,
        schedule=SCHEDULE,
        feed_interval_seconds=interval,
        feed_ttl_seconds=ttl,
        rng=random.Random(seed),
    )


def delay_of(state: FeedState, now: datetime = NOW) -> float:
    assert state.next_check_at is not None
    return (state.next_check_at - now).total_seconds()


@pytest.mark.parametrize(
    ("headers", "interval", "ttl", "low", "high"),
    [
        pytest.param({}, None, None, 1800, 1980, id="default"),
        pytest.param({}, 3600, None, 3600, 3960, id="per-feed-override"),
        pytest.param({}, 60, None, 300, 330, id="floor-at-min-interval"),
        pytest.param(
            {"cache-control": "public, max-age=7200"}, None, None, 7200, 7920, id="max-age"
        ),
        pytest.param(
            {"cache-control": "max-age=60"}, None, None, 1800, 1980, id="max-age-never-shortens"
        ),
        pytest.param(
            {"cache-control": "max-age=999999"}, None, None, 21600, 23760, id="max-age-capped"
        ),
        pytest.param(
            {"cache-control": "s-maxage=4000, max-age=10"}, None, None, 4000, 4400, id="s-maxage"
        ),
        pytest.param({"cache-control": "no-cache"}, None, None, 1800, 1980, id="no-cache"),
        pytest.param(
            {"expires": "Sat, 14 Sep 2024 10:00:00 GMT"}, None, None, 7200, 7920, id="expires"
        ),
        pytest.param({"expires": "0"}, None, None, 1800, 1980, id="expires-invalid"),
        pytest.param(
            {"cache-control": "max-age=3000", "expires": "Sat, 14 Sep 2024 12:00:00 GMT"},
            None,
            None,
            3000,
            3300,
            id="max-age-beats-expires",
        ),
        pytest.param({}, None, 5400, 5400, 5940, id="feed-ttl"),
        pytest.param(
            {}, 8 * 3600, None, 8 * 3600, 8 * 3600 * 1.1, id="explicit-interval-above-max"
        ),
    ],
)
def test_next_check_is_the_interval_stretched_by_server_hints(
    headers: dict[str, str], interval: int | None, ttl: int | None, low: float, high: float
) -> None:
    for seed in range(20):
        state = advance(STATE, ok(headers=headers), interval=interval, ttl=ttl, seed=seed)
        assert low <= delay_of(state) <= high


def test_jitter_spreads_feeds_that_were_polled_together() -> None:
    delays = {delay_of(advance(STATE, ok(), seed=seed)) for seed in range(50)}
    assert len(delays) == 50
    assert max(delays) - min(delays) > 60


@pytest.mark.parametrize(
    ("result", "etag", "last_modified"),
    [
        pytest.param(ok(etag='"new"', last_modified="Tue"), '"new"', "Tue", id="200-stores"),
        pytest.param(ok(etag='"old"', last_modified="Mon"), '"old"', "Mon", id="200-same"),
        pytest.param(ok(), None, None, id="200-without-validators-clears"),
        pytest.param(
            FetchResult("f", "not_modified", NOW, http_status=304), '"old"', "Mon", id="304-keeps"
        ),
        pytest.param(
            FetchResult("f", "not_modified", NOW, http_status=304, etag='"v2"'),
            '"v2"',
            "Mon",
            id="304-with-new-etag",
        ),
        pytest.param(error(), '"old"', "Mon", id="error-keeps"),
    ],
)
def test_validators(result: FetchResult, etag: str | None, last_modified: str | None) -> None:
    state = advance(STATE, result)
    assert (state.etag, state.last_modified) == (etag, last_modified)


def test_failures_back_off_exponentially_with_jitter_to_the_cap_and_never_stop() -> None:
    state = STATE
    now = NOW
    delays = []
    for poll in range(12):
        state = advance(state, error(), seed=poll, now=now)
        delay = delay_of(state, now)
        delays.append(delay)
        assert state.consecutive_failures == poll + 1
        assert state.failing_since == NOW
        assert not state.disabled
        assert state.next_check_at is not None
        now = state.next_check_at
    cap = SCHEDULE.max_backoff_seconds
    assert all(d <= cap for d in delays)
    growing = [d for d in delays if d < cap * 0.8]
    assert all(b > a * 1.5 for a, b in itertools.pairwise(growing))
    assert delays[-1] >= cap * 0.8
    assert 1800 * 0.8 <= delays[0] <= 1800


def test_the_first_success_resets_the_failure_count() -> None:
    state = STATE
    for _ in range(5):
        state = advance(state, error("connect_error"))
    assert state.consecutive_failures == 5
    recovered = advance(state, FetchResult("f", "not_modified", NOW, http_status=304))
    assert (recovered.consecutive_failures, recovered.failing_since) == (0, None)
    assert 1800 <= delay_of(recovered) <= 1980


@pytest.mark.parametrize(
    ("retry_after", "at_least"),
    [
        pytest.param(120.0, 1800 * 0.8, id="short-retry-after-within-backoff"),
        pytest.param(7200.0, 7200, id="retry-after-longer-than-backoff"),
        pytest.param(172800.0, 172800, id="retry-after-beyond-max-backoff"),
    ],
)
def test_retry_after_is_honoured(retry_after: float, at_least: float) -> None:
    state = advance(STATE, error("http_429", retry_after_seconds=retry_after))
    assert delay_of(state) >= max(at_least, retry_after)


def test_gone_disables_the_feed() -> None:
    state = advance(STATE, FetchResult("f", "gone", NOW, http_status=410))
    assert state.disabled
    assert state.next_check_at is None


def test_a_permanent_redirect_updates_the_url_only_on_success() -> None:
    moved = "https://new.example.org/feed"
    assert advance(STATE, ok(permanent_url=moved)).url == moved
    assert advance(STATE, FetchResult("f", "not_modified", NOW, permanent_url=moved)).url == moved
    assert advance(STATE, error(permanent_url=moved)).url == STATE.url


def test_backoff_seconds_is_capped_even_for_huge_failure_counts() -> None:
    rng = random.Random(3)
    assert backoff_seconds(10_000, base_seconds=1800, cap_seconds=86400, rng=rng) <= 86400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=60, public", {"max-age": "60", "public": None}),
        ('Max-Age="120"', {"max-age": "120"}),
        ("", {}),
        (None, {}),
        (",,no-store,", {"no-store": None}),
    ],
)
def test_parse_cache_control(value: str | None, expected: dict[str, str | None]) -> None:
    assert parse_cache_control(value) == expected


def test_cache_lifetime_ignores_garbage() -> None:
    assert cache_lifetime_seconds({"cache-control": "max-age=-5"}, now=NOW) is None
    assert cache_lifetime_seconds({"cache-control": "max-age=abc"}, now=NOW) is None
    assert cache_lifetime_seconds({"expires": "yesterday"}, now=NOW) is None
    past = (NOW - timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert cache_lifetime_seconds({"expires": past}, now=NOW) == 0.0
