"""What an alert says: the records an alert email is made of (`AlertEmail`, `StoryLine`,
`FeedNotice`), their wording (subject, headline, trend, the stories and their evidence), and
the cleaning of hostile text from feeds (`clean_line`, `safe_url`).

Must not: read the clock (callers pass `now`), touch the database, or talk to the network.
Everything that came from a feed (titles, outlets, evidence, links, feed errors) is hostile:
text is reduced to one clean line (controls, bidi overrides and line breaks removed) before it
reaches a header or a body, and links are kept only when they are plain `http`/`https` URLs.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlsplit

from monitor import models
from monitor.deliver.sparkline import sparkline  # re-exported: the emails draw it too
from monitor.models import AlertDecision, Contribution, ScoredMatch, utc

SUBJECT_MAX_CHARS = 200


MAX_STORIES = 5


URL_MAX_CHARS = 2048


@dataclass(frozen=True, slots=True)
class StoryLine:
    """One story behind an alert, as shown in the email."""

    title: str
    outlet: str
    published_at: datetime
    url: str | None
    indicator_id: str
    evidence: str  # the sentence that proves the indicator
    points: float  # what it added to the score (negative: de-escalation)
    match_id: int | None = None  # lets a "critical" alert name its critical story first
    story_id: int | None = None  # lines of one story (one per indicator) show as one entry

    @classmethod
    def from_scored(cls, match: ScoredMatch, contribution: Contribution | None = None) -> StoryLine:
        """Build the line for a stored match and its contribution to a score point (none: a
        critical match shown for itself, with no points)."""
        return cls(
            title=match.title,
            outlet=match.outlet,
            published_at=match.occurred_at,
            url=match.url,
            indicator_id=match.indicator_id,
            evidence=match.evidence,
            points=contribution.points if contribution is not None else 0.0,
            match_id=match.match_id,
            story_id=match.story_id,
        )


@dataclass(frozen=True, slots=True)
class FeedNotice:
    """What a `feed_down` / `feed_recovered` email says about the feed."""

    name: str  # the outlet ("Eurasianet")
    url: str
    error: str = ""  # the last error, one line ("http_503: Service Unavailable")
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class AlertEmail:
    """Everything one email shows. The pipeline fills it from the database."""

    decision: AlertDecision
    theatre_name: str | None = None  # "Kyrgyzstan–Tajikistan"
    stories: tuple[StoryLine, ...] = ()  # top contributions; shown by size, at most MAX_STORIES
    history: tuple[tuple[datetime, float], ...] = ()  # recent index points, for the trend
    command_hint: str = ""  # "monitor explain kg-tj --at 2022-09-16T06:00Z"
    feed: FeedNotice | None = None  # for feed_down / feed_recovered
    lines: tuple[str, ...] = ()  # free-text items, e.g. digest entries (see describe_decision)
    indicator_ids: tuple[str, ...] = ()  # named, not shown as ids, in the reason
    report_link: str | None = None  # the alert's page in the static report (report_url)


_BREAK_CHARS = frozenset("\r\n\t\v\f\x85\u2028\u2029")


_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})  # controls, bidi/zero-width formats, surrogates


def clean_line(text: object, limit: int) -> str:
    """Return `text` as one printable line of at most `limit` characters.

    Line breaks become spaces; control characters, format characters (bidi overrides and
    isolates, zero-width characters) and lone surrogates are dropped; runs of whitespace
    collapse; a cut is marked with "…".
    """
    if text is None:
        return ""
    raw = str(text)[: max(8 * limit, 1024)]  # bound the work on a 10 MB title
    kept: list[str] = []
    for char in unicodedata.normalize("NFC", raw):
        if char in _BREAK_CHARS or char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) not in _DROP_CATEGORIES:
            kept.append(char)
    line = " ".join("".join(kept).split())
    if len(line) <= limit:
        return line
    return line[: max(limit - 1, 0)].rstrip() + "…"


def header_text(text: object, limit: int) -> str:
    """One clean line that the stdlib header parser will not decode into something else."""
    return clean_line(clean_line(text, limit).replace("=?", "= ?"), limit)


def safe_url(url: str | None) -> str | None:
    """Return `url` if it is a plain http(s) URL with a host, else None (the link is dropped)."""
    if not url or len(url) > URL_MAX_CHARS:
        return None
    if any(char.isspace() or unicodedata.category(char) in _DROP_CATEGORIES for char in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or not host:
        return None
    return url


def fmt_time(dt: datetime) -> str:
    return utc(dt).strftime("%d %b %Y %H:%M UTC")


def _fmt_day(dt: datetime) -> str:
    return utc(dt).strftime("%d %b %Y")


def _fmt_change(change: float | None) -> str:
    return "" if change is None or not math.isfinite(change) else f"{change:+.0f} in 24h"


def _fmt_index(index: float | None) -> str:
    return "" if index is None or not math.isfinite(index) else f"{index:.0f}"


def indicator_name(indicator_id: str) -> str:
    """What people read for an indicator (`models.indicator_name`), on one clean line."""
    return clean_line(models.indicator_name(indicator_id), 60)


def name_indicators(text: str, indicator_ids: Sequence[str]) -> str:
    """`text` with each of these indicator ids (as a whole word) replaced by its name, so a
    stored reason ("critical sign border_clash: …") reads "critical sign border clash: …"."""
    ids = tuple(sorted({i for i in indicator_ids if i}, key=lambda i: (-len(i), i)))
    if not ids or not text:
        return text
    return _ids_pattern(ids).sub(lambda found: indicator_name(found.group(1)), text)


@lru_cache(maxsize=16)
def _ids_pattern(ids: tuple[str, ...]) -> re.Pattern[str]:
    """Any of `ids` as a whole word, longest first: built once for a set of ids, not once
    per text (`monitor alerts` names the indicators of a thousand reasons)."""
    return re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ids)) + r")(?![\w-])")


def _level_label(level: str | None) -> str:
    return clean_line(level or "unknown", 20).upper()


def _theatre_label(alert: AlertEmail) -> str:
    name = alert.theatre_name or alert.decision.theatre_id or "all theatres"
    return clean_line(name, 60)


def _score_phrase(decision: AlertDecision) -> str:
    """ "72 (+18 in 24h)", "72" or ""."""
    index = _fmt_index(decision.index)
    change = _fmt_change(decision.change_24h)
    if index and change:
        return f"{index} ({change})"
    return index


def describe_decision(decision: AlertDecision, theatre_name: str | None = None) -> str:
    """One plain line for an alert held for the digest, e.g. for `AlertEmail.lines`."""
    where = clean_line(theatre_name or decision.theatre_id or "feeds", 60)
    what = {
        "level_up": "rose to",
        "level_down": "fell to",
        "resolved": "back to",
        "surge": "surge, level",
        "critical": "critical sign, level",
    }.get(decision.kind, decision.kind.replace("_", " "))
    parts = [fmt_time(decision.created_at), where, what]
    if decision.level:
        parts.append(_level_label(decision.level))
    score = _score_phrase(decision)
    if score:
        parts.append(score)
    line = " ".join(parts)
    if decision.reason:
        line += " — " + decision.reason
    return clean_line(line, 300)


def _critical_story(alert: AlertEmail) -> StoryLine | None:
    wanted = set(alert.decision.match_ids)
    for story in alert.stories:
        if story.match_id is not None and story.match_id in wanted:
            return story
    return alert.stories[0] if alert.stories else None


def _story_key(story: StoryLine) -> tuple[object, ...]:
    if story.story_id is not None:
        return ("story", story.story_id)
    return ("line", story.title, story.url)


def _points(story: StoryLine) -> float:
    return story.points if math.isfinite(story.points) else 0.0


def _top_stories(alert: AlertEmail) -> list[list[StoryLine]]:
    """The stories behind the alert, one entry per story (its lines, one per indicator,
    largest first), the largest total first; a critical alert's critical story leads."""
    groups: dict[tuple[object, ...], list[StoryLine]] = {}
    for story in alert.stories:
        groups.setdefault(_story_key(story), []).append(story)
    entries = [sorted(lines, key=lambda s: -abs(_points(s))) for lines in groups.values()]
    entries.sort(key=lambda lines: -abs(sum(_points(s) for s in lines)))
    critical = _critical_story(alert) if alert.decision.kind == "critical" else None
    if critical is not None:
        first = next(e for e in entries if _story_key(e[0]) == _story_key(critical))
        entries.remove(first)
        entries.insert(0, first)
    return entries[:MAX_STORIES]


def top_stories(alert: AlertEmail) -> list[list[StoryLine]]:
    """The stories the email shows, in its order (one entry per story: its lines)."""
    return _top_stories(alert)


def _feed_name(alert: AlertEmail) -> str:
    return clean_line(alert.feed.name if alert.feed else "a feed", 60)


def _subject(alert: AlertEmail) -> str:
    decision = alert.decision
    where = _theatre_label(alert)
    level = _level_label(decision.level)
    score = _score_phrase(decision)
    kind = decision.kind
    if kind == "level_up":
        text = f"{where} risk {level} {score}"
    elif kind == "surge":
        text = f"{where} risk surging: {score or 'index unknown'}, level {level}"
    elif kind == "critical":
        story = _critical_story(alert)
        if story is None:
            text = f"CRITICAL warning sign in {where}"
        else:
            title = clean_line(story.title, 120)
            text = f"CRITICAL {where}: {indicator_name(story.indicator_id)} — {title}"
    elif kind == "resolved":
        text = f"Resolved: {where} back to {level} {score}"
    elif kind == "level_down":
        text = f"{where} risk down to {level} {score}"
    elif kind == "feed_down":
        since = alert.feed.failing_since if alert.feed else None
        text = f"Feed down: {_feed_name(alert)}"
        if since is not None:
            text += f" (failing since {fmt_time(since)})"
    elif kind == "feed_recovered":
        text = f"Feed recovered: {_feed_name(alert)}"
    elif kind == "digest":
        count = len(alert.lines)
        text = f"Daily digest {_fmt_day(decision.created_at)}: {count} item{'s' * (count != 1)}"
    else:  # "test", and any kind added later
        text = "Test email: delivery works" if kind == "test" else f"{kind}: {where}"
    return header_text("[monitor] " + text, SUBJECT_MAX_CHARS)


def _headline(alert: AlertEmail) -> str:
    """The first thing the reader sees: what happened, in one sentence."""
    decision = alert.decision
    where = _theatre_label(alert)
    level = _level_label(decision.level)
    index = _fmt_index(decision.index)
    score = f"index {index}/100" if index else "index unknown"
    change = _fmt_change(decision.change_24h)
    if change:
        score += f" ({change})"
    kind = decision.kind
    if kind == "level_up":
        previous = (
            f" from {_level_label(decision.previous_level)}" if decision.previous_level else ""
        )
        return f"{where}: risk rose to {level}{previous}, {score}."
    if kind == "surge":
        return f"{where}: risk is rising fast, {score}; level {level}."
    if kind == "critical":
        story = _critical_story(alert)
        sign = indicator_name(story.indicator_id) if story else "critical indicator"
        return f"{where}: critical warning sign ({sign}) reported; {score}, level {level}."
    if kind == "resolved":
        return f"{where}: risk is back to {level}, {score}."
    if kind == "level_down":
        return f"{where}: risk fell to {level}, {score}."
    if kind == "feed_down":
        return f"Feed {_feed_name(alert)} has not been fetched successfully for a while."
    if kind == "feed_recovered":
        return f"Feed {_feed_name(alert)} is being fetched again."
    if kind == "digest":
        return f"Daily digest for {_fmt_day(decision.created_at)}: {len(alert.lines)} item(s)."
    if kind == "test":
        return "This is a test email from monitor: alert delivery works."
    return f"{kind}: {where}."


@dataclass(frozen=True, slots=True)
class _Trend:
    spark: str
    start: datetime
    end: datetime
    last: float


def _trend(alert: AlertEmail) -> _Trend | None:
    points = sorted(
        ((utc(at), value) for at, value in alert.history if math.isfinite(value)),
        key=lambda p: p[0],
    )
    if not points:
        return None
    spark = sparkline([value for _, value in points])
    return _Trend(spark=spark, start=points[0][0], end=points[-1][0], last=points[-1][1])


@dataclass(frozen=True, slots=True)
class _Story:
    """One story (its StoryLines, one per indicator) cleaned for display."""

    title: str
    # "Eurasianet · 16 Sep 2022 05:10 UTC · border clash +12.4 points, accusation of
    # aggression +3.1 points"
    meta: str
    evidence: tuple[str, ...]  # one sentence per indicator (repeats dropped)
    url: str | None
    critical: bool


def _indicator_points(story: StoryLine) -> str:
    # A critical story may come without a share of the score (0): say nothing then.
    points = f"{story.points:+.1f} points" if math.isfinite(story.points) else ""
    points = "" if points in ("+0.0 points", "-0.0 points") else points
    return " · ".join(part for part in (indicator_name(story.indicator_id), points) if part)


def _clean_stories(alert: AlertEmail) -> list[_Story]:
    critical_ids = set(alert.decision.match_ids)
    cleaned = []
    for lines in _top_stories(alert):
        first = lines[0]
        meta = " · ".join(
            part
            for part in (
                clean_line(first.outlet, 80),
                fmt_time(first.published_at),
                ", ".join(_indicator_points(line) for line in lines),
            )
            if part
        )
        evidence = dict.fromkeys(clean_line(line.evidence, 400) for line in lines)
        cleaned.append(
            _Story(
                title=clean_line(first.title, 200) or "(untitled)",
                meta=meta,
                evidence=tuple(sentence for sentence in evidence if sentence),
                url=safe_url(first.url),
                critical=any(
                    line.match_id is not None and line.match_id in critical_ids for line in lines
                ),
            )
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class AlertContent:
    """The email's content, cleaned once and rendered twice (text and HTML)."""

    subject: str
    headline: str
    level: str | None
    reason: str
    as_of: str
    trend: _Trend | None
    stories: list[_Story]
    feed: tuple[tuple[str, str], ...]  # (label, value) rows; values cleaned
    feed_url: str | None
    lines: list[str]
    command: str
    report_link: str | None
    footer: str


def alert_content(alert: AlertEmail) -> AlertContent:
    decision = alert.decision
    feed_rows: list[tuple[str, str]] = []
    feed_url = None
    if alert.feed is not None:
        feed_rows.append(("Feed", clean_line(alert.feed.name, 80)))
        feed_url = safe_url(alert.feed.url)
        if feed_url is None:
            feed_rows.append(("URL", clean_line(alert.feed.url, 300) + " (not a web link)"))
        if alert.feed.error:
            feed_rows.append(("Last error", clean_line(alert.feed.error, 500)))
        if alert.feed.failing_since is not None:
            feed_rows.append(("Failing since", fmt_time(alert.feed.failing_since)))
    key = clean_line(decision.dedup_key, 200)
    return AlertContent(
        subject=_subject(alert),
        headline=clean_line(_headline(alert), 300),
        level=decision.level if decision.theatre_id else None,
        reason=clean_line(name_indicators(decision.reason, alert.indicator_ids), 400),
        as_of=fmt_time(decision.created_at),
        trend=_trend(alert),
        stories=_clean_stories(alert),
        feed=tuple(feed_rows),
        feed_url=feed_url,
        lines=[clean_line(line, 400) for line in alert.lines if clean_line(line, 400)],
        command=clean_line(alert.command_hint, 300),
        report_link=safe_url(alert.report_link),
        footer=(
            f"Automatic message from monitor (alert {key}). "
            "Replies are not read; change alert settings in the monitor configuration."
        ),
    )
