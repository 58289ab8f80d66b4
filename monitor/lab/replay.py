"""`monitor replay`: a dated corpus through the production pipeline on a simulated clock.

Owns: turning corpus items into feed entries (one synthetic feed per outlet), the simulated
clock (every item's time plus a regular tick between them), and the report: the score
history (level changes and peaks), every alert with its date, and, against a file of known
events, how long before (or after) each event the first warning came.

Everything in between is production code, called as the poll path calls it after a fetch:
`pipeline.record_feed_result` stores the entries, matches them and records the feed's
poll in one transaction; `pipeline.score_theatres` scores every theatre, decides alerts
and writes them (and their rendered emails) to the alerts and outbox tables.

Must not: touch the network (no HTTP; no SMTP: the outbox is never drained, the report
says so), read the wall clock, or write into a database that is not its own. An existing
file is refused, so replayed alerts can never land in the outbox of a database that a
daemon would then send from. The whole run is one transaction (the pipeline's own
transactions nest in it): a scratch database needs no fsync per score point, and it ends
up complete or empty. Deterministic: the same corpus, configuration and options give the
same report, byte for byte.

Quiet stretches are skipped: once no theatre has any contribution left in its window and
every theatre is back at the lowest level, the clock jumps to one scoring lookback before
the next item (a score there is 0 and no alert can fire). The scorer only ever reads
points within that lookback, so every point from the next item on is the one a
continuous run would give.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import click

from monitor import db, pipeline
from monitor.cli import output
from monitor.cli.common import Context, handle_errors
from monitor.cli.timeparse import parse_duration
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.fetch.parser import clean_block, clean_line, clean_link, content_hash
from monitor.lab.corpus import CorpusItem, load_corpus, parse_corpus_date, source_feed_id
from monitor.models import Entry, Feed, FetchResult, ParseResult, from_iso, to_iso

__all__ = [
    "WARNING_KINDS",
    "EventOutcome",
    "HistoryMark",
    "LeadSummary",
    "ReplayError",
    "ReplayEvent",
    "ReplayResult",
    "compact_history",
    "corpus_entry",
    "event_outcomes",
    "lead_summary",
    "load_events",
    "render_json",
    "render_table",
    "replay_command",
    "replay_corpus",
    "replay_feeds",
]

WARNING_KINDS = ("level_up", "surge", "critical")  # urgent alerts that warn (not "resolved")
PEAK_FLOOR = 1.0  # an episode is a run of points at or above this index
MIN_TICK = timedelta(hours=1)
FEED_URL = "https://replay.monitor.invalid/{feed_id}"  # never fetched (.invalid, RFC 2606)
REPLAY_META_KEY = "replay_corpus"
CLOCK_META_KEY = "replay_clock"
_SAFETY_DAYS = 90  # after the last item's window: the clock stops here whatever happens


class ReplayError(MonitorError):
    """Replay cannot run: a bad events file, a database that exists, a bad option."""

    exit_code = 2


# ---------------------------------------------------------------------------
# Corpus items as feed entries


def replay_feeds(items: Sequence[CorpusItem]) -> dict[str, Feed]:
    """One synthetic feed per `source` (the outlet), keyed by source."""
    feeds: dict[str, Feed] = {}
    for source in sorted({item.source for item in items}):
        feed_id = source_feed_id(source)
        feeds[source] = Feed(id=feed_id, url=FEED_URL.format(feed_id=feed_id), name=source)
    return feeds


def corpus_entry(item: CorpusItem, feed: Feed) -> Entry:
    """The entry a feed carrying `item` would give after parsing (same cleaning, same hash)."""
    if item.published_at is None:
        raise ValueError(f"corpus item {item.id} has no date")
    title = clean_line(item.title)
    summary = clean_block(item.body)
    return Entry(
        entry_id=item.id,
        feed_id=feed.id,
        url=clean_link(item.url),
        title=title,
        summary=summary,
        published_at=item.published_at,
        language=item.lang,
        content_hash=content_hash(title, summary),
    )


# ---------------------------------------------------------------------------
# Known events


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """A known real-world escalation (one line of the events file)."""

    day: date
    theatre_id: str
    description: str
    line: int


def load_events(path: str | Path, theatres: Sequence[str]) -> list[ReplayEvent]:
    """Read `date<TAB>theatre<TAB>description` lines; a header line and `#` comments are allowed.

    Raises `ReplayError` naming the file and line for a bad date, an unknown theatre or a
    line without three fields.
    """
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{file_path}: cannot read events: {exc}") from None
    events: list[ReplayEvent] = []
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t", 2)
        is_first, first = first, False
        if is_first and fields[0].strip().lower() == "date":
            continue  # the header
        where = f"{file_path}:{number}"
        if len(fields) < 3 or not fields[2].strip():
            raise ReplayError(f"{where}: expected date<TAB>theatre<TAB>description")
        try:
            when, _ = parse_corpus_date(fields[0].strip())
        except ValueError as exc:
            raise ReplayError(f"{where}: bad date {fields[0].strip()!r}: {exc}") from None
        assert when is not None  # parse_corpus_date(str) always gives a date
        theatre = fields[1].strip()
        if theatre not in theatres:
            raise ReplayError(
                f"{where}: unknown theatre {theatre!r} (configured: {', '.join(theatres)})"
            )
        events.append(ReplayEvent(when.date(), theatre, fields[2].strip(), number))
    return events


@dataclass(frozen=True, slots=True)
class EventOutcome:
    event: ReplayEvent
    status: str  # "ahead", "same day", "after", "none"
    alert_at: datetime | None = None
    alert_kind: str | None = None
    days: int | None = None  # lead (ahead) or lag (after) in whole days

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.event.day.isoformat(),
            "theatre": self.event.theatre_id,
            "description": self.event.description,
            "status": self.status,
            "first_alert_at": to_iso(self.alert_at) if self.alert_at else None,
            "first_alert_kind": self.alert_kind,
            "lead_days": self.days if self.status in ("ahead", "same day") else None,
            "lag_days": self.days if self.status == "after" else None,
        }


def event_outcomes(
    events: Sequence[ReplayEvent],
    alerts: Sequence[Mapping[str, Any]],
    *,
    lookback: timedelta,
    lag: timedelta,
) -> list[EventOutcome]:
    """For each event, the first warning alert of its theatre within `lookback` before it
    (its lead time), else the first within `lag` after it (a late one), else none.

    Alerts are rows with `created_at`, `kind`, `theatre_id`; only `WARNING_KINDS` count.
    Days are compared as UTC calendar days: an alert on the event's own day is "same day".
    """
    warnings = sorted(
        (from_iso(str(a["created_at"])), str(a["kind"]), str(a["theatre_id"]))
        for a in alerts
        if a.get("kind") in WARNING_KINDS and a.get("theatre_id")
    )
    results = []
    for event in events:
        mine = [(at, kind) for at, kind, theatre in warnings if theatre == event.theatre_id]
        start = datetime.combine(event.day, datetime.min.time()).replace(tzinfo=UTC)
        before = [(at, k) for at, k in mine if start - lookback <= at < start + timedelta(days=1)]
        if before:
            at, kind = before[0]
            days = (event.day - at.date()).days
            status = "ahead" if days > 0 else "same day"
            results.append(EventOutcome(event, status, at, kind, days))
            continue
        after = [(at, k) for at, k in mine if start + timedelta(days=1) <= at <= start + lag]
        if after:
            at, kind = after[0]
            results.append(EventOutcome(event, "after", at, kind, (at.date() - event.day).days))
            continue
        results.append(EventOutcome(event, "none"))
    return results


@dataclass(frozen=True, slots=True)
class LeadSummary:
    """The events' outcomes counted, and two medians of their lead times (issue 12).

    `median_lead_days`: the median (`statistics.median`: the mean of the two middle values
    for an even count) of the lead of the events warned ahead, None when there is none.
    `median_all_days`: the median over every event, a lead positive, the same day 0, a
    late warning negative (minus its lag). An event never warned (nothing within the
    lookback before it or the lag after it) ranks below every late one: it is at least
    `lag` late, and how much later is unknown. So when the middle of the ranking falls on
    such an event, the median itself is "no warning" (`median_all_unwarned`, and
    `median_all_days` None). None too when there are no events.
    """

    events: int
    ahead: int
    same_day: int
    late: int
    unwarned: int
    median_lead_days: float | None
    median_all_days: float | None
    median_all_unwarned: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "ahead": self.ahead,
            "same_day": self.same_day,
            "late": self.late,
            "none": self.unwarned,
            "median_lead_days": self.median_lead_days,
            "median_all_days": self.median_all_days,
            "median_all_unwarned": self.median_all_unwarned,
        }


def _signed_days(outcome: EventOutcome) -> int | None:
    """Lead in days (late negative), None for an event never warned."""
    if outcome.status == "none" or outcome.days is None:
        return None
    return -outcome.days if outcome.status == "after" else outcome.days


def lead_summary(outcomes: Sequence[EventOutcome]) -> LeadSummary:
    """Count the outcomes and take the two medians `LeadSummary` describes."""
    leads = [o.days for o in outcomes if o.status == "ahead" and o.days is not None]
    signed = [_signed_days(o) for o in outcomes]
    # the ranking, lowest first: every unwarned event, then the warned ones by signed days
    ranked: list[int | None] = [None] * signed.count(None)
    ranked += sorted(days for days in signed if days is not None)
    middle = ranked[(len(ranked) - 1) // 2 : len(ranked) // 2 + 1]
    unwarned_middle = any(days is None for days in middle)
    median_all = (
        None
        if not ranked or unwarned_middle
        else statistics.median(d for d in middle if d is not None)
    )
    return LeadSummary(
        events=len(outcomes),
        ahead=sum(1 for o in outcomes if o.status == "ahead"),
        same_day=sum(1 for o in outcomes if o.status == "same day"),
        late=sum(1 for o in outcomes if o.status == "after"),
        unwarned=sum(1 for o in outcomes if o.status == "none"),
        median_lead_days=statistics.median(leads) if leads else None,
        median_all_days=None if median_all is None else float(median_all),
        median_all_unwarned=unwarned_middle,
    )


# ---------------------------------------------------------------------------
# The run


@dataclass(frozen=True, slots=True)
class HistoryMark:
    """A point of the compact history: where a theatre's level changed, or an episode peaked."""

    at: datetime
    theatre_id: str
    score: float
    level: str
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": to_iso(self.at),
            "theatre": self.theatre_id,
            "score": round(self.score, 1),
            "level": self.level,
            "note": self.note,
        }


@dataclass
class ReplayResult:
    corpus: str
    items_total: int
    items_replayed: int
    undated_skipped: int
    approximate_dates: int  # month or year precision, placed at the start of the period
    feeds: int
    tick: timedelta
    start: datetime | None = None
    end: datetime | None = None
    moments: int = 0
    score_points: int = 0
    new_articles: int = 0
    matches: int = 0
    history: list[HistoryMark] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)
    events: list[EventOutcome] | None = None
    db_path: str | None = None  # None: a temporary database, deleted after the run


def replay_corpus(
    config: Config,
    items: Sequence[CorpusItem],
    *,
    db_path: Path,
    corpus_name: str,
    tick: timedelta = timedelta(days=1),
    skip_quiet: bool = True,
) -> ReplayResult:
    """Replay the dated `items` into a new database at `db_path` and summarise what happened.

    `skip_quiet=False` ticks through every quiet stretch too (slower; same points from each
    item on, which the tests check).
    """
    if tick < MIN_TICK:
        raise ReplayError(f"--tick must be at least {_duration_text(MIN_TICK)}")
    if db_path.exists() and db_path.stat().st_size > 0:
        raise ReplayError(
            f"{db_path}: already exists. Replay writes into a new database of its own (its "
            "outbox holds alert emails that were not sent, which a daemon on that file would "
            "send); remove the file or choose another path"
        )
    dated = [item for item in items if item.published_at is not None]
    result = ReplayResult(
        corpus=corpus_name,
        items_total=len(items),
        items_replayed=len(dated),
        undated_skipped=len(items) - len(dated),
        approximate_dates=sum(1 for item in dated if item.date_precision in ("month", "year")),
        feeds=0,
        tick=tick,
    )
    feeds_by_source = replay_feeds(dated)
    result.feeds = len(feeds_by_source)
    run_config = replace(
        config,
        feeds=tuple(feeds_by_source.values()),
        settings=replace(config.settings, db_path=db_path, maildir=None),
    )
    if not dated:
        return result

    def moment_of(item: CorpusItem) -> datetime:
        assert item.published_at is not None
        return item.published_at

    ordered = sorted(dated, key=lambda item: (moment_of(item), item.id))
    groups = [(at, list(group)) for at, group in groupby(ordered, key=moment_of)]
    scoring = run_config.scoring
    lookback = timedelta(days=max(scoring.baseline_days, 8)) + tick
    lowest = min(scoring.levels, key=lambda level: level.enter).name
    anchor = datetime.combine((groups[0][0] - lookback).date(), datetime.min.time(), tzinfo=UTC)
    hard_end = groups[-1][0] + timedelta(days=scoring.window_days + _SAFETY_DAYS)

    def grid_at_or_after(moment: datetime) -> datetime:
        steps = math.ceil((moment - anchor) / tick)
        return anchor + max(steps, 0) * tick

    rng = random.Random(0)  # only the feeds' next-check jitter, which replay never reads
    poll = pipeline.PollSummary()
    with db.Store.open(db_path) as store:
        # One transaction for the whole run (see the module docstring).
        with store.transaction():
            store.set_meta(REPLAY_META_KEY, corpus_name)
            next_tick = grid_at_or_after(groups[0][0] - lookback)
            store.sync_feeds(run_config.feeds, now=next_tick)
            result.start = next_tick
            index = 0
            now = next_tick
            while now <= hard_end:
                item_time = groups[index][0] if index < len(groups) else None
                now = item_time if item_time is not None and item_time < next_tick else next_tick
                while index < len(groups) and groups[index][0] == now:
                    _ingest(store, run_config, feeds_by_source, groups[index][1], now, rng, poll)
                    index += 1
                summary = pipeline.score_theatres(store, run_config, now=now)
                result.moments += 1
                result.score_points += len(summary.points)
                if now == next_tick:
                    next_tick += tick
                quiet = all(not p.contributions and p.level == lowest for p in summary.points)
                if quiet:
                    if index >= len(groups):
                        break
                    if skip_quiet:
                        next_tick = max(next_tick, grid_at_or_after(groups[index][0] - lookback))
            result.end = now
            store.set_meta(CLOCK_META_KEY, to_iso(now))
        result.new_articles = poll.new_articles
        result.matches = poll.matches
        rows = db.history_rows(store, theatre_id=None, since=result.start, until=now)
        result.history = compact_history(rows, theatres=list(run_config.rules.theatres))
        alert_rows = db.alert_rows(store, theatre_id=None, since=None, status=None, limit=10**9)
        result.alerts = [_alert_dict(row) for row in reversed(alert_rows)]
        result.outbox = store.outbox_counts()
    return result


def _ingest(
    store: db.Store,
    config: Config,
    feeds_by_source: Mapping[str, Feed],
    items: Sequence[CorpusItem],
    now: datetime,
    rng: random.Random,
    poll: pipeline.PollSummary,
) -> None:
    """What a poll of each outlet's feed at `now` would store: its new items."""
    by_feed: dict[str, list[CorpusItem]] = {}
    for item in items:
        by_feed.setdefault(item.source, []).append(item)
    for source in sorted(by_feed):
        feed = feeds_by_source[source]
        state = store.feed_state(feed.id)
        assert state is not None  # sync_feeds created it
        entries = tuple(corpus_entry(item, feed) for item in by_feed[source])
        fetched = FetchResult(feed_id=feed.id, outcome="ok", fetched_at=now, http_status=200)
        parsed = ParseResult(entries=entries, status="ok")
        pipeline.record_feed_result(
            store, config, feed, state, fetched, parsed, now=now, rng=rng, summary=poll
        )


def _alert_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": row["created_at"],
        "kind": row["kind"],
        "theatre": row["theatre_id"],
        "level": row["level"],
        "score": None if row["score"] is None else round(float(row["score"]), 1),
        "delivery": row["delivery"],
        "reason": row["reason"],
        # the row shape `event_outcomes` reads
        "created_at": row["created_at"],
        "theatre_id": row["theatre_id"],
    }


def compact_history(
    rows: Sequence[Mapping[str, Any]], *, theatres: Sequence[str]
) -> list[HistoryMark]:
    """The points where a theatre's level changed, and the peak of each episode (a run of
    points at or above `PEAK_FLOOR`), in time order. Rows: `theatre_id`, `at`, `score`, `level`."""
    order = {theatre: position for position, theatre in enumerate(theatres)}
    marks: list[HistoryMark] = []
    by_theatre: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_theatre.setdefault(str(row["theatre_id"]), []).append(row)
    for theatre, points in by_theatre.items():
        points = sorted(points, key=lambda r: str(r["at"]))
        notes: dict[int, list[str]] = {}
        previous_level: str | None = None
        episode: list[int] = []
        for position, row in enumerate(points):
            level = str(row["level"])
            if previous_level is not None and level != previous_level:
                notes.setdefault(position, []).append(f"{previous_level} -> {level}")
            previous_level = level
            if float(row["score"]) >= PEAK_FLOOR:
                episode.append(position)
            if episode and (float(row["score"]) < PEAK_FLOOR or position == len(points) - 1):
                peak = max(episode, key=lambda p: (float(points[p]["score"]), -p))
                notes.setdefault(peak, []).append("peak")
                episode = []
        for position, texts in notes.items():
            row = points[position]
            marks.append(
                HistoryMark(
                    at=from_iso(str(row["at"])),
                    theatre_id=theatre,
                    score=float(row["score"]),
                    level=str(row["level"]),
                    note=", ".join(texts),
                )
            )
    return sorted(marks, key=lambda m: (m.at, order.get(m.theatre_id, len(order)), m.theatre_id))


# ---------------------------------------------------------------------------
# Reports


NOT_SENT = "no email was sent: replay records alerts and their emails in its own database's outbox and never delivers them"


def _when(moment: datetime) -> str:
    return (
        moment.strftime("%Y-%m-%d")
        if (moment.hour, moment.minute) == (0, 0)
        else moment.strftime("%Y-%m-%d %H:%M")
    )


def _duration_text(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _summary(result: ReplayResult) -> dict[str, Any]:
    return {
        "corpus": result.corpus,
        "items": result.items_total,
        "replayed": result.items_replayed,
        "undated_skipped": result.undated_skipped,
        "approximate_dates": result.approximate_dates,
        "feeds": result.feeds,
        "tick": _duration_text(result.tick),
        "start": to_iso(result.start) if result.start else None,
        "end": to_iso(result.end) if result.end else None,
        "moments": result.moments,
        "score_points": result.score_points,
        "new_articles": result.new_articles,
        "matches": result.matches,
        "database": result.db_path,
        "emails_sent": 0,
        "outbox": dict(sorted(result.outbox.items())),
    }


def render_json(result: ReplayResult) -> str:
    document: dict[str, Any] = {
        "replay": _summary(result),
        "note": NOT_SENT,
        "history": [mark.as_dict() for mark in result.history],
        "alerts": [
            {key: alert[key] for key in ("at", "kind", "theatre", "level", "score", "reason")}
            for alert in result.alerts
        ],
    }
    if result.events is not None:
        document["events"] = [outcome.as_dict() for outcome in result.events]
        document["events_summary"] = lead_summary(result.events).as_dict()
    return json.dumps(document, ensure_ascii=False, indent=2)


def render_table(result: ReplayResult, *, lookback: timedelta, lag: timedelta) -> str:
    lines = [
        f"monitor replay: {result.corpus}: {result.items_total} items, {result.items_replayed} "
        f"replayed in {result.feeds} feeds (one per source)",
    ]
    if result.undated_skipped:
        lines.append(f"  {result.undated_skipped} undated item(s) skipped")
    if result.approximate_dates:
        lines.append(
            f"  {result.approximate_dates} item(s) dated only to a month or year, placed at its start"
        )
    if result.start is None or result.end is None:
        lines.append("nothing to replay (no dated items)")
        return "\n".join(lines)
    lines.append(
        f"simulated clock {_when(result.start)} to {_when(result.end)}, every item's time and a "
        f"{_duration_text(result.tick)} tick ({result.moments} moments; quiet stretches skipped); "
        f"{result.new_articles} articles, {result.matches} matches, {result.score_points} score points"
    )
    lines.append(f"database: {result.db_path or 'temporary (deleted after the run)'}")
    lines += ["", "Score history (level changes and the peak of each episode):"]
    lines.append(
        output.render_rows(
            [
                {
                    "date": _when(m.at),
                    "theatre": m.theatre_id,
                    "score": m.score,
                    "level": m.level,
                    "note": m.note,
                }
                for m in result.history
            ],
            columns=["date", "theatre", "score", "level", "note"],
            empty="(every score stayed at 0)",
        )
    )
    lines += ["", f"Alerts ({len(result.alerts)}; {NOT_SENT}):"]
    lines.append(
        output.render_rows(
            [{**a, "date": _when(from_iso(str(a["at"])))} for a in result.alerts],
            columns=["date", "kind", "theatre", "level", "score", "reason"],
            empty="(no alerts)",
        )
    )
    if result.events is not None:
        lines += [
            "",
            f"Known events: first warning ({', '.join(WARNING_KINDS)}) of the theatre within "
            f"{_duration_text(lookback)} before, else within {_duration_text(lag)} after:",
        ]
        rows = []
        for outcome in result.events:
            if outcome.status == "ahead":
                verdict = f"{outcome.days} d ahead"
            elif outcome.status == "same day":
                verdict = "same day"
            elif outcome.status == "after":
                verdict = f"{outcome.days} d late"
            else:
                verdict = "no warning"
            rows.append(
                {
                    "date": outcome.event.day.isoformat(),
                    "theatre": outcome.event.theatre_id,
                    "warning": verdict,
                    "alert": f"{_when(outcome.alert_at)} {outcome.alert_kind}"
                    if outcome.alert_at
                    else "",
                    "event": outcome.event.description[:70],
                }
            )
        lines.append(
            output.render_rows(rows, columns=["date", "theatre", "warning", "alert", "event"])
        )
        lines += _lead_lines(lead_summary(result.events))
    return "\n".join(lines)


def _days_text(days: float) -> str:
    return f"{days:g} d"


def _lead_lines(summary: LeadSummary) -> list[str]:
    lines = [
        f"{summary.events} events: {summary.ahead} warned ahead, {summary.same_day} the same "
        f"day, {summary.late} late, {summary.unwarned} without warning"
    ]
    if summary.median_lead_days is not None:
        lines.append(
            f"median lead {_days_text(summary.median_lead_days)} over the {summary.ahead} "
            "warned ahead"
        )
    if summary.events:
        median = (
            "no warning"
            if summary.median_all_unwarned or summary.median_all_days is None
            else _days_text(summary.median_all_days)
        )
        lines.append(
            f"median over all {summary.events} events: {median} (ahead positive, same day 0, "
            "late negative; an event never warned ranks below every late one)"
        )
    return lines


# ---------------------------------------------------------------------------
# The command


def _duration_option(name: str, text: str) -> timedelta:
    try:
        span = parse_duration(text)
    except ValueError as exc:
        raise ReplayError(f"{name}: {exc}") from None
    if span <= timedelta(0):
        raise ReplayError(f"{name}: must be more than 0")
    return span


@click.command("replay")
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    help="Write the replay into this NEW database file (default: a temporary one, deleted after).",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Known events (TSV: date, theatre, description): report each one's warning lead time.",
)
@click.option("--tick", default="1d", show_default=True, help="Score this often between items.")
@click.option(
    "--lookback", default="30d", show_default=True, help="How far before an event a warning counts."
)
@click.option(
    "--lag",
    default="7d",
    show_default=True,
    help="How far after an event a late warning is reported.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_obj
@handle_errors
def replay_command(
    obj: Context,
    corpus: str,
    db_path: str | None,
    events_path: str | None,
    tick: str,
    lookback: str,
    lag: str,
    fmt: str,
) -> None:
    """Replay a dated corpus through matching, scoring and alert rules; send nothing."""
    tick_span = _duration_option("--tick", tick)
    lookback_span = _duration_option("--lookback", lookback)
    lag_span = _duration_option("--lag", lag)
    config = obj.config
    events = (
        load_events(events_path, list(config.rules.theatres)) if events_path is not None else None
    )
    items = load_corpus(corpus)
    target = db_path or obj.db_path
    name = Path(corpus).name
    if target is not None:
        result = replay_corpus(
            config, items, db_path=Path(target), corpus_name=name, tick=tick_span
        )
        result.db_path = str(target)
    else:
        with tempfile.TemporaryDirectory(prefix="monitor-replay-") as folder:
            result = replay_corpus(
                config, items, db_path=Path(folder) / "replay.db", corpus_name=name, tick=tick_span
            )
    if events is not None:
        result.events = event_outcomes(events, result.alerts, lookback=lookback_span, lag=lag_span)
    if fmt == "json":
        click.echo(render_json(result))
    else:
        click.echo(render_table(result, lookback=lookback_span, lag=lag_span))
