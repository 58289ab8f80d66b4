"""Frozen typed records passed between modules.

This module holds data only: no I/O, no clock reads, no SQL. Every datetime in these
records is timezone-aware UTC; `to_iso`/`from_iso` are the one way they are written to
and read from text (the database, JSON output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

# ---------------------------------------------------------------------------
# Time helpers


def utc(dt: datetime) -> datetime:
    """Return `dt` as an aware UTC datetime (naive input is taken as UTC already)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def indicator_name(indicator_id: str) -> str:
    """What people read for an indicator: `border_clash` is "border clash"."""
    return indicator_id.replace("_", " ")


def to_iso(dt: datetime) -> str:
    """Format as `2024-09-14T08:30:00Z`: fixed width, so text order is time order."""
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    """Parse what `to_iso` wrote (and any ISO 8601 timestamp) into aware UTC."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return utc(datetime.fromisoformat(value))


# ---------------------------------------------------------------------------
# Configuration records (built by `config`, frozen, validated)


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed the user asked us to watch."""

    id: str  # slug, unique in the config; the key of the feed's state in the database
    url: str
    name: str  # the outlet, shown in emails ("Eurasianet")
    source_weight: float = 1.0  # how much one story from this outlet counts
    interval_seconds: int | None = None  # per-feed override of the default poll interval
    language: str | None = None  # hint ("en"/"ru") for items whose language is unclear


@dataclass(frozen=True, slots=True)
class Theatre:
    """A place where risk is scored: a country pair (`pair`) or an alliance (`alliance`)."""

    id: str  # "kg-tj"
    name: str  # "Kyrgyzstan–Tajikistan"
    kind: Literal["pair", "alliance"]
    recipients: tuple[str, ...] = ()  # extra recipients of this theatre's alerts


@dataclass(frozen=True, slots=True)
class Indicator:
    """A warning sign (or, with a negative weight, a de-escalation sign)."""

    id: str  # "border_clash"
    description: str
    weight: float  # points one certain, single-source story adds (negative: de-escalation)
    severity: Literal["normal", "critical"] = "normal"  # critical alerts at once
    half_life_hours: float | None = None  # None: the scoring default


@dataclass(frozen=True, slots=True)
class Level:
    """A named risk level: entered at `enter` or above, left only below `exit`."""

    name: str  # "low", "elevated", "high", "critical"
    enter: float
    exit: float


@dataclass(frozen=True, slots=True)
class ScoringSettings:
    half_life_hours: float = 72.0
    window_days: float = 30.0  # matches older than this no longer count at all
    saturation: float = 40.0  # raw points at which the index reaches ~63 (1 - 1/e)
    corroboration: float = 0.25  # extra share per additional distinct source, up to the cap
    corroboration_cap: int = 5  # sources beyond this add nothing more
    baseline_days: int = 28
    timezone: str = "UTC"  # IANA name: the baseline's days (and weekends) are local days
    levels: tuple[Level, ...] = (
        Level("low", 0.0, 0.0),
        Level("elevated", 30.0, 25.0),
        Level("high", 55.0, 48.0),
        Level("critical", 80.0, 72.0),
    )
    methodology_version: str = "1"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    min_level_seconds: int = 6 * 3600  # minimum time in a level before a downward move
    repeat_interval_seconds: int = 24 * 3600  # no repeat of the same alert within this
    surge_points_24h: float = 20.0  # a rise of this many index points within 24 h is a surge
    digest_time: str = "08:00"  # local time of the daily digest, "HH:MM"
    timezone: str = "UTC"  # IANA name, for the digest and quiet hours
    quiet_hours: tuple[str, str] | None = None  # ("22:00", "07:00"): hold non-critical alerts
    feed_down_after_seconds: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never logged
    timeout_seconds: float = 30.0
    sender: str = "monitor@localhost"
    recipients: tuple[str, ...] = ()
    # PEM file of the CA(s) that signed the relay's certificate (a private CA); None: the
    # system's CAs. The host name is checked either way.
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class HttpSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_deadline_seconds: float = 30.0  # a whole fetch, however the server drips
    max_body_bytes: int = 10 * 1024 * 1024  # decoded, enforced while streaming
    max_redirects: int = 5
    global_concurrency: int = 64  # a warm cycle of 1,000 feeds needs 64+ to stay under 2 s
    per_host_concurrency: int = 2
    per_host_min_interval_seconds: float = 1.0
    contact_url: str = "https://github.com/monitor-early-warning/monitor"
    allow_private_networks: tuple[str, ...] = ()  # CIDRs explicitly allowed, e.g. 127.0.0.0/8
    parse_timeout_seconds: float = 20.0
    parse_memory_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    default_feed_interval_seconds: int = 30 * 60
    min_feed_interval_seconds: int = 5 * 60
    max_feed_interval_seconds: int = 6 * 3600
    max_backoff_seconds: int = 24 * 3600
    poll_tick_seconds: int = 60  # how often the daemon looks for due feeds
    score_tick_seconds: int = 15 * 60
    outbox_tick_seconds: int = 30
    maintenance_tick_seconds: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """What `monitor status` treats as degraded beyond its fixed rules ([health] table)."""

    # No new article for this long while feeds answer is degraded; 0 turns the check off.
    quiet_period_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    """How long stored data is kept ([retention] table; docs/operations.md says why).

    Every age is in days; 0 turns that rule off (kept for ever). Evidence is never
    removed: the contributions of a kept score point, the matches and articles behind them
    and behind every alert stay whatever their age.
    """

    article_text_days: int = 365  # articles' summary text (the row, title and link stay)
    uncounted_match_days: int = 90  # matches below the event confidence (denials, ...)
    score_full_days: int = 90  # every score point; older ones are downsampled
    score_hourly_days: int = 365  # then each hour's peak and last point; older: each day's
    sent_email_days: int = 90  # the body of a sent email (its alert row stays for good)
    run_days: int = 30  # the job log (`runs`); each job's newest run always stays
    batch_rows: int = 500  # rows changed per transaction: what a writer may wait behind


@dataclass(frozen=True, slots=True)
class Settings:
    """Deployment settings: where state lives and how to reach the outside world."""

    db_path: Path = Path("monitor.db")
    maildir: Path | None = None  # if set, alerts are also written here (the demo uses it)
    smtp: SmtpSettings = SmtpSettings()
    http: HttpSettings = HttpSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    metrics_listen: str | None = None  # "127.0.0.1:9464" enables /healthz and /metrics
    report_dir: Path | None = None  # if set, the static report is rebuilt here after each score
    report_url: str | None = None  # where report_dir is served; alert emails link into it
    health: HealthSettings = HealthSettings()
    retention: RetentionSettings = RetentionSettings()
    routes: tuple[Route, ...] = ()  # chat, push, webhook and Alertmanager channels (issue 13)


@dataclass(frozen=True, slots=True)
class ChannelItem:
    """A channel outbox row due for delivery: its payload, for one route."""

    id: int
    alert_id: int
    route: str
    channel: str
    payload: dict[str, Any]
    attempts: int


RouteKind = Literal["urgent", "digest", "feed"]
ChannelType = Literal["apprise", "webhook", "alertmanager"]


@dataclass(frozen=True, slots=True)
class Route:
    """Which alerts go to one non-email channel (`[[routes]]` in monitor.toml), and how.

    The URL and token are secrets (tokens live inside Apprise URLs): never logged or shown;
    `url_source` says where they came from (`env NAME`, `file PATH`, `credential NAME`).
    """

    name: str
    channel: ChannelType
    url: str = field(repr=False)
    url_source: str = "settings"
    token: str | None = field(default=None, repr=False)  # a bearer token (webhook, Alertmanager)
    theatres: tuple[str, ...] = ()  # empty: every theatre
    kinds: tuple[RouteKind, ...] = ("urgent",)
    min_level: str | None = None
    # None: the watch list's alerts.quiet_hours; () : none for this route; else (start, end)
    quiet_hours: tuple[str, str] | tuple[()] | None = None
    timeout_seconds: float = 10.0
    hold_hours: float = 24.0  # Alertmanager: endsAt of a firing alert (it is sent once)


# ---------------------------------------------------------------------------
# Fetching and parsing

FetchOutcome = Literal["ok", "not_modified", "error", "gone"]


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the database remembers of a feed between polls."""

    feed_id: str
    url: str  # current URL (a 301/308 may have replaced the configured one)
    etag: str | None = None
    last_modified: str | None = None
    next_check_at: datetime | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    disabled: bool = False  # 410 Gone
    # The configured address when this state was read (None: not read from the database).
    # A poll's outcome belongs to that address; see `Store.record_poll`.
    configured_url: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one HTTP fetch. Only `fetcher` makes these."""

    feed_id: str
    outcome: FetchOutcome
    fetched_at: datetime
    http_status: int | None = None
    body: bytes | None = None  # decoded (gzip etc. undone), only for outcome "ok"
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    etag: str | None = None
    last_modified: str | None = None
    permanent_url: str | None = None  # set after a 301/308 chain that passed the checks
    error_kind: str | None = None  # "ssrf_blocked", "timeout", "body_too_large", "http_500"…
    error_message: str | None = None
    retry_after_seconds: float | None = None  # from Retry-After, already capped
    elapsed_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a feed, cleaned. Text fields are plain text, single-line titles."""

    entry_id: str  # stable: GUID, else canonical link, else content hash
    feed_id: str
    url: str | None  # http/https only
    title: str
    summary: str  # plain text, HTML removed
    published_at: datetime  # clamped: never after the fetch time
    language: str  # "en", "ru" or "und"
    content_hash: str  # of title + summary, to notice updates


@dataclass(frozen=True, slots=True)
class ParseResult:
    entries: tuple[Entry, ...]
    status: Literal["ok", "warning", "error"]
    error_kind: str | None = None  # "entity_declaration", "no_entries", "parse_exception"…
    message: str | None = None
    feed_ttl_seconds: int | None = None  # from <ttl>, for the next-check time


# ---------------------------------------------------------------------------
# Matching


@dataclass(frozen=True, slots=True)
class ArticleText:
    """What the matcher reads."""

    title: str
    text: str  # body (summary) without the title
    language: str  # "en", "ru" or "und"
    published_at: datetime | None = None  # for recognising historical references


EVENT_CONFIDENCE = 0.5  # a match with at least this confidence counts as a detection


@dataclass(frozen=True, slots=True)
class Match:
    """One indicator found in one article, for one theatre, with its evidence."""

    indicator_id: str
    theatre_id: str
    confidence: float  # 0..1; non-events are kept with low or zero confidence
    evidence: str  # the sentence that proves it
    terms: tuple[str, ...]  # the words that matched
    qualifiers: tuple[str, ...] = ()  # "negated", "hypothetical", "historical"… and why

    @property
    def is_event(self) -> bool:
        return self.confidence >= EVENT_CONFIDENCE


# ---------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True, slots=True)
class ScoredMatch:
    """A stored match joined with what scoring needs from its article and story."""

    match_id: int
    story_id: int
    article_id: int
    indicator_id: str
    theatre_id: str
    weight: float  # the indicator's weight
    confidence: float
    source_weight: float  # the best source weight among the story's outlets
    sources: int  # distinct outlets that carried the story
    occurred_at: datetime  # when it counts from (publication, clamped to first seen)
    half_life_hours: float | None  # the indicator's, or None for the default
    title: str = ""
    outlet: str = ""
    url: str | None = None
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class Contribution:
    """How much one story's indicator added to (or took from) a score point."""

    story_id: int
    match_id: int
    indicator_id: str
    points: float  # raw points at the time of the score, signed


@dataclass(frozen=True, slots=True)
class ScorePoint:
    theatre_id: str
    at: datetime
    raw: float  # sum of contributions (never below 0)
    index: float  # 0..100
    level: str  # the level after hysteresis
    methodology_version: str
    contributions: tuple[Contribution, ...] = ()
    change_24h: float | None = None  # index points against 24 h before
    change_7d: float | None = None
    baseline: float | None = None  # trailing mean index
    surge: float | None = None  # index above baseline, in index points


# ---------------------------------------------------------------------------
# Alerts

AlertKind = Literal[
    "level_up",  # a theatre entered a higher level
    "surge",  # a fast rise against its baseline / 24 h before
    "critical",  # a match of an indicator marked critical
    "resolved",  # a theatre fell back to the lowest level
    "level_down",  # fell a level but not to the lowest (goes into the digest)
    "feed_down",
    "feed_recovered",
    "digest",
    "test",
]


@dataclass(frozen=True, slots=True)
class AlertState:
    """What alert decisions remember of a theatre between score points."""

    theatre_id: str
    level: str
    level_since: datetime
    last_sent: tuple[tuple[str, datetime], ...] = ()  # (dedup key, when) of recent alerts


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """An alert to record in the outbox (the pure result of `alerts`)."""

    dedup_key: str  # stable: the same situation always gives the same key
    kind: AlertKind
    theatre_id: str | None  # None for feed notices and digests
    created_at: datetime
    urgent: bool  # False: held for the digest
    level: str | None = None
    previous_level: str | None = None
    index: float | None = None
    change_24h: float | None = None
    reason: str = ""  # one line: why this alert exists
    match_ids: tuple[int, ...] = ()  # the critical matches behind a "critical" alert
