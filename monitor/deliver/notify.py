"""Alert emails: turning an alert into a message, and delivering it over SMTP.

Owns: the wording and layout of every email `monitor` sends (plain text + HTML), the stable
Message-ID, SMTP delivery with a timeout on every step, the retryable/permanent classification
of delivery failures, the retry backoff, and the Maildir copy used by the demo.

Must not: read the clock (callers pass `now`), touch the database, or decide whether an alert is
due (that is `alerts`). This is the only module that talks SMTP.

Everything that came from a feed (titles, outlets, evidence, links, feed errors) is hostile:
- text is reduced to one clean line (controls, bidi overrides and line breaks removed) before
  it reaches a header or a body, and escaped before it reaches HTML;
- links are kept only when they are plain `http`/`https` URLs;
- RFC 2047 encoded-word openers (`=?`) are broken up in header text, because the stdlib's
  header parser decodes them and, before Python 3.11.10, writes a decoded CR/LF back out raw
  (cpython gh-121650, CVE-2024-6923); and every rendered message is re-parsed and its header
  set verified before it is returned;
- the Subject is folded and encoded here rather than by the stdlib, whose folder on 3.11
  loses spaces around encoded-words and can glue them into `?==?` (cpython gh-144156).
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.utils
import functools
import hashlib
import html
import ipaddress
import logging
import mailbox
import math
import random
import re
import smtplib
import socket
import ssl
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import urlsplit

from monitor import models
from monitor.deliver.addresses import ADDR_SPEC, parse_address
from monitor.errors import DeliveryError
from monitor.models import AlertDecision, Contribution, ScoredMatch, SmtpSettings, utc

log = logging.getLogger(__name__)

SUBJECT_MAX_CHARS = 200
MAX_STORIES = 5
SPARKLINE_WIDTH = 28
SPARK_CHARS = "▁▂▃▄▅▆▇█"
URL_MAX_CHARS = 2048

# The headers a rendered message has, and no other (checked after rendering).
MESSAGE_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "auto-submitted",
        "x-auto-response-suppress",
        "list-id",
        "x-monitor-kind",
        "mime-version",
        "content-type",
    }
)

_LEVEL_COLOURS = {
    "low": "#2e7d32",
    "elevated": "#b26a00",
    "high": "#d84315",
    "critical": "#b71c1c",
}

# Where the policy knows it (Python 3.11.10+), also have the generator refuse bad headers.
_POLICY = (
    default_policy.clone(verify_generated_headers=True)
    if hasattr(default_policy, "verify_generated_headers")
    else default_policy
)

# ---------------------------------------------------------------------------
# What the pipeline hands us


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


# ---------------------------------------------------------------------------
# Cleaning hostile text

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


def _header_text(text: object, limit: int) -> str:
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


# ---------------------------------------------------------------------------
# Small formatting helpers


def sparkline(values: Sequence[float], *, width: int = SPARKLINE_WIDTH) -> str:
    """A Unicode sparkline of index values on the fixed 0–100 scale, at most `width` wide.

    Long series are cut into `width` consecutive buckets and each bucket shows its maximum,
    so a short spike stays visible.
    """
    points = [float(value) for value in values if math.isfinite(value)]
    if not points:
        return ""
    count = len(points)
    if count > width:
        points = [max(points[i * count // width : (i + 1) * count // width]) for i in range(width)]
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(top, max(0, round(p / 100.0 * top)))] for p in points)


def _fmt_time(dt: datetime) -> str:
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
    ids = sorted({i for i in indicator_ids if i}, key=len, reverse=True)
    if not ids or not text:
        return text
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ids)) + r")(?![\w-])")
    return pattern.sub(lambda found: indicator_name(found.group(1)), text)


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
    parts = [_fmt_time(decision.created_at), where, what]
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


def _feed_name(alert: AlertEmail) -> str:
    return clean_line(alert.feed.name if alert.feed else "a feed", 60)


# ---------------------------------------------------------------------------
# Wording


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
            text += f" (failing since {_fmt_time(since)})"
    elif kind == "feed_recovered":
        text = f"Feed recovered: {_feed_name(alert)}"
    elif kind == "digest":
        count = len(alert.lines)
        text = f"Daily digest {_fmt_day(decision.created_at)}: {count} item{'s' * (count != 1)}"
    else:  # "test", and any kind added later
        text = "Test email: delivery works" if kind == "test" else f"{kind}: {where}"
    return _header_text("[monitor] " + text, SUBJECT_MAX_CHARS)


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
                _fmt_time(first.published_at),
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
class _Content:
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


def _content(alert: AlertEmail) -> _Content:
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
            feed_rows.append(("Failing since", _fmt_time(alert.feed.failing_since)))
    key = clean_line(decision.dedup_key, 200)
    return _Content(
        subject=_subject(alert),
        headline=clean_line(_headline(alert), 300),
        level=decision.level if decision.theatre_id else None,
        reason=clean_line(name_indicators(decision.reason, alert.indicator_ids), 400),
        as_of=_fmt_time(decision.created_at),
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


def render_plain(alert: AlertEmail) -> tuple[str, str]:
    """(subject, plain-text body): the email's words, for chat, push and webhook channels."""
    content = _content(alert)
    return content.subject, _render_text(content)


def top_stories(alert: AlertEmail) -> list[list[StoryLine]]:
    """The stories the email shows, in its order (one entry per story, its lines)."""
    return _top_stories(alert)


# ---------------------------------------------------------------------------
# Plain text and HTML


def _render_text(content: _Content) -> str:
    out = [content.headline]
    if content.reason:
        out.append(f"Why: {content.reason}")
    out.append(f"As of {content.as_of}.")
    if content.trend is not None:
        trend = content.trend
        out += [
            "",
            f"Trend (index 0–100): {trend.spark}  now {trend.last:.0f}",
            f"  from {_fmt_time(trend.start)} to {_fmt_time(trend.end)}",
        ]
    if content.feed:
        out.append("")
        out += [f"{label}: {value}" for label, value in content.feed]
        if content.feed_url:
            out.append(f"URL: {content.feed_url}")
    if content.stories:
        out += ["", "Top stories behind this score:"]
        for number, story in enumerate(content.stories, 1):
            flag = "[CRITICAL] " if story.critical else ""
            out.append(f"{number}. {flag}{story.title}")
            out.append(f"   {story.meta}")
            out += [f"   “{sentence}”" for sentence in story.evidence]
            if story.url:
                out.append(f"   {story.url}")
    if content.lines:
        out += ["", "Items:"]
        out += [f"- {line}" for line in content.lines]
    if content.report_link:
        out += ["", f"In the report: {content.report_link}"]
    if content.command:
        out += ["", f"More: {content.command}"]
    out += ["", "-- ", content.footer]
    return "\n".join(out) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _link(url: str, label: str) -> str:
    return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(label)}</a>'


def _render_html(content: _Content) -> str:
    colour = _LEVEL_COLOURS.get((content.level or "").lower(), "#455a64")
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{_e(content.subject)}</title></head>",
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;color:#222;'
        'max-width:720px">',
        f'<p style="font-size:19px;font-weight:bold;border-left:6px solid {colour};'
        f'padding-left:10px">{_e(content.headline)}</p>',
    ]
    if content.reason:
        out.append(f"<p><b>Why:</b> {_e(content.reason)}</p>")
    out.append(f'<p style="color:#555">As of {_e(content.as_of)}.</p>')
    if content.trend is not None:
        trend = content.trend
        out.append(
            '<p><span style="font-family:monospace;font-size:22px;letter-spacing:1px;'
            f'color:{colour}">{_e(trend.spark)}</span> now <b>{trend.last:.0f}</b><br>'
            f'<span style="color:#555;font-size:12px">index 0–100, from '
            f"{_e(_fmt_time(trend.start))} to {_e(_fmt_time(trend.end))}</span></p>"
        )
    if content.feed:
        out.append('<table style="border-collapse:collapse">')
        for label, value in content.feed:
            out.append(f"<tr><td><b>{_e(label)}</b></td><td>{_e(value)}</td></tr>")
        if content.feed_url:
            out.append(f"<tr><td><b>URL</b></td><td>{_link(content.feed_url, content.feed_url)}")
            out.append("</td></tr>")
        out.append("</table>")
    if content.stories:
        out.append(
            '<p style="font-weight:bold;margin-bottom:4px">Top stories behind this score</p>'
        )
        out.append("<ol>")
        for story in content.stories:
            flag = '<b style="color:#b71c1c">CRITICAL</b> ' if story.critical else ""
            title = _link(story.url, story.title) if story.url else _e(story.title)
            out.append(
                f'<li style="margin-bottom:10px">{flag}{title}<br>'
                f'<span style="color:#555;font-size:13px">{_e(story.meta)}</span>'
            )
            for sentence in story.evidence:
                out.append(f'<br><span style="font-style:italic">“{_e(sentence)}”</span>')
            out.append("</li>")
        out.append("</ol>")
    if content.lines:
        out.append("<ul>")
        out += [f"<li>{_e(line)}</li>" for line in content.lines]
        out.append("</ul>")
    if content.report_link:
        out.append(f"<p>{_link(content.report_link, 'See this alert in the report')}</p>")
    if content.command:
        out.append(
            '<p>More: <code style="background:#f2f2f2;padding:2px 4px">'
            f"{_e(content.command)}</code></p>"
        )
    out.append(f'<p style="color:#777;font-size:12px">{_e(content.footer)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Addresses and the message

# A plain ASCII addr-spec; display names are handled separately. No "=?" (see module doc).
_ADDR_SPEC = ADDR_SPEC


def _checked_address(text: str, role: str) -> Address:
    """Parse "Name <a@b>" or "a@b" into an Address, or raise ValueError naming the problem.

    The same check as configuration loading (`monitor.deliver.addresses`), so an address that
    passed `check-config` renders."""
    address = parse_address(text, f"{role} address")
    return Address(display_name=_header_text(address.display_name, 80), addr_spec=address.addr_spec)


def _checked_recipients(recipients: Sequence[str]) -> list[Address]:
    """The recipients that can be addressed, each once. A bad one (say, a theatre's address
    recorded before it was checked) is left out with a warning rather than failing the
    message to the others; ValueError only when none is left."""
    addresses: list[Address] = []
    seen: set[str] = set()
    problems: list[str] = []
    for recipient in recipients:
        try:
            address = _checked_address(recipient, "recipient")
        except ValueError as error:
            problems.append(str(error))
            continue
        if address.addr_spec.lower() not in seen:
            seen.add(address.addr_spec.lower())
            addresses.append(address)
    if problems and not addresses:
        raise ValueError("; ".join(problems))
    for problem in problems:
        log.warning("recipient left out of the message: %s", problem)
    return addresses


def _list_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    return label[:60] or "alerts"


def _clean_domain(domain: str) -> str:
    """`domain` reduced to lower-case LDH labels joined by dots ("localhost" if nothing is left)."""
    labels = (re.sub(r"[^a-z0-9-]", "", label).strip("-") for label in domain.lower().split("."))
    return ".".join(label for label in labels if label)[:200] or "localhost"


def message_id_for(dedup_key: str, *, domain: str) -> str:
    """A Message-ID that depends only on the alert's dedup key, e.g. `<alert.3f2a…@example.org>`.

    A retry of the same alert (after a timeout or a crash after the server's 250) carries the
    same Message-ID, so mail clients and archives can recognise the duplicate.
    """
    digest = hashlib.sha256(dedup_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"<alert.{digest}@{_clean_domain(domain)}>"


_MESSAGE_ID = re.compile(r"<[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+>")


def _list_id(alert: AlertEmail, sender: Address) -> str:
    decision = alert.decision
    if decision.theatre_id:
        topic = decision.theatre_id
    elif decision.kind in ("feed_down", "feed_recovered"):
        topic = "feeds"
    else:
        topic = decision.kind
    return f"<{_list_label(topic)}.monitor.{_clean_domain(sender.domain)}>"


def render_email(
    alert: AlertEmail,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    now: datetime,
) -> EmailMessage:
    """Render `alert` as a multipart/alternative (plain text + HTML) message.

    `sender` and each recipient are "user@domain" or "Name <user@domain>" (no recipients: no
    To header, for the outbox to add one when they are configured); `message_id` is
    normally `message_id_for(decision.dedup_key, domain=...)`; `now` gives the Date header.
    Raises `DeliveryError(retryable=False)` when the message cannot be built (bad address,
    bad Message-ID, a header that would not survive): trying again would not help.
    """
    try:
        return _render(alert, sender=sender, recipients=recipients, message_id=message_id, now=now)
    except DeliveryError:
        raise
    except Exception as error:  # any rendering bug must fail this alert, not the outbox
        raise DeliveryError(
            f"cannot render alert {clean_line(alert.decision.dedup_key, 120)!r}: "
            f"{clean_line(error, 300)}",
            retryable=False,
        ) from error


def _render(
    alert: AlertEmail,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    now: datetime,
) -> EmailMessage:
    from_address = _checked_address(sender, "sender")
    to_addresses = _checked_recipients(recipients)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"Message-ID {message_id!r} is not of the form <id@domain>")

    content = _content(alert)
    message = EmailMessage(policy=_POLICY)
    message["From"] = from_address
    if to_addresses:  # none yet: the outbox adds To when recipients are configured
        message["To"] = tuple(to_addresses)
    # Folded here, not by the stdlib: see _folded_subject.
    message.set_raw("Subject", _folded_subject(content.subject))
    message["Date"] = email.utils.format_datetime(utc(now))
    message["Message-ID"] = message_id
    # RFC 3834: this is automatic mail; well-behaved responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["List-Id"] = _list_id(alert, from_address)  # RFC 2919: lets people filter by theatre
    message["X-Monitor-Kind"] = _list_label(alert.decision.kind)
    # Quoted-printable keeps every line short and 7-bit, whatever the relay supports.
    message.set_content(_render_text(content), cte="quoted-printable")
    message.add_alternative(_render_html(content), subtype="html", cte="quoted-printable")
    _verify_headers(message)
    return message


_PLAIN_LINE_CHARS = 68  # "Subject: " + 68 < 78 (RFC 5322 2.1.1)
_ENCODED_CHUNK_BYTES = 39  # base64 of 39 bytes: 52 chars, 64 with "=?utf-8?b?…?="


def _folded_subject(text: str) -> str:
    """`text` (one clean line) folded for the wire, for `Message.set_raw`.

    The stdlib folder on Python 3.11 can drop or add spaces next to encoded-words, and glue two
    of them together ("?==?"), which some providers reject (cpython gh-144156, gh-124452). So:
    ASCII text with short words is folded at its spaces (unfolding restores it exactly);
    anything else becomes a run of base64 encoded-words, each holding whole characters, with
    only folding whitespace between them, which decoders ignore (RFC 2047 section 6.2).
    """
    words = text.split(" ")
    if text.isascii() and all(len(word) <= _PLAIN_LINE_CHARS - 8 for word in words):
        lines = [words[0]]
        for word in words[1:]:
            if len(lines[-1]) + 1 + len(word) > _PLAIN_LINE_CHARS:
                lines.append(word)
            else:
                lines[-1] += " " + word
        return "\n ".join(lines)
    chunks = [""]
    for char in text:
        if len((chunks[-1] + char).encode("utf-8")) > _ENCODED_CHUNK_BYTES:
            chunks.append("")
        chunks[-1] += char
    return "\n ".join(
        "=?utf-8?b?" + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + "?="
        for chunk in chunks
    )


def _verify_headers(message: EmailMessage) -> None:
    """Re-parse the serialised message: exactly our headers, each one line once decoded."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    names = [name.lower() for name in parsed]
    expected = MESSAGE_HEADERS if "to" in names else MESSAGE_HEADERS - {"to"}
    if set(names) != expected or len(names) != len(expected):
        raise ValueError(f"rendered headers are not the expected set: {sorted(names)}")
    for name in names:
        value = str(parsed[name])
        if "\r" in value or "\n" in value:
            raise ValueError(f"rendered header {name} contains a line break")


# ---------------------------------------------------------------------------
# Delivery


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _envelope_recipients(message: EmailMessage) -> list[str]:
    fields: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        fields += [str(value) for value in message.get_all(name, [])]
    recipients: list[str] = []
    bad: list[str] = []
    for _, addr in email.utils.getaddresses(fields):
        (recipients if _ADDR_SPEC.fullmatch(addr) else bad).append(addr)
    if bad and not recipients:
        raise DeliveryError(f"bad recipient address {bad[0]!r} in the message", retryable=False)
    if bad:  # one bad address (an old outbox row) must not stop the message to the others
        log.warning(
            "recipients left out of the envelope message_id=%s bad=%s",
            message.get("Message-ID"),
            ", ".join(repr(addr) for addr in bad),
        )
    if not recipients:
        raise DeliveryError("the message has no recipients (To is empty)", retryable=False)
    return recipients


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {clean_line(text, 200)}".strip()


# 5xx replies at MAIL/RCPT/DATA that concern the account, not the message (RFC 4954).
_SETUP_CODES = frozenset({530, 534, 535, 538})


QUIT_TIMEOUT_SECONDS = 5.0  # everything is recorded by then: a goodbye never holds a round long


class DeliveryInterrupted(DeliveryError):
    """The stop path interrupted a delivery. Not a failure of the message: it stays due, with
    no attempt counted, and goes out at the next start (with the same Message-ID; if the
    server kept the copy it was writing, that is the at-least-once repeat)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class DeliveryStop:
    """Ends a delivery running in another thread: the daemon's stop path holds one.

    - `stop()` (at SIGTERM): no new message or connection is started; the message in flight
      may still get its reply; a QUIT under way is cut short (all before it is recorded).
    - `interrupt()` (at the stop deadline): also wakes every blocking network call of the
      sessions watching it (connect, TLS handshake, a reply awaited) by shutting their socket
      down; the message in flight ends with `DeliveryInterrupted`.

    A blocked socket call does not notice that a thread or task was cancelled, and closing
    its file descriptor does not wake it on Linux; `shutdown(2)` does. Both calls are
    one-way and thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = False
        self._interrupted = False
        self._sessions: set[SmtpSession] = set()
        self._on_interrupt: list[Callable[[], None]] = []

    def on_interrupt(self, callback: Callable[[], None]) -> None:
        """Call `callback` at `interrupt()` (the channel deliveries abandon their sends)."""
        with self._lock:
            self._on_interrupt.append(callback)

    def is_stopping(self) -> bool:
        return self._stopping

    def is_interrupted(self) -> bool:
        return self._interrupted

    def stop(self) -> None:
        self._trip(interrupt=False)

    def interrupt(self) -> None:
        self._trip(interrupt=True)

    def _trip(self, *, interrupt: bool) -> None:
        with self._lock:
            self._stopping = True
            self._interrupted = self._interrupted or interrupt
            sessions = list(self._sessions)
            callbacks = list(self._on_interrupt) if interrupt else []
        for session in sessions:
            session._wake(hard=interrupt)
        for callback in callbacks:
            callback()

    def _watch(self, session: SmtpSession) -> None:
        with self._lock:
            self._sessions.add(session)

    def _unwatch(self, session: SmtpSession) -> None:
        with self._lock:
            self._sessions.discard(session)


class _WatchedSMTP(smtplib.SMTP):
    """smtplib.SMTP that hands each socket to `on_socket` before connecting it, so the
    session can shut it down from another thread even while it connects."""

    on_socket: Callable[[socket.socket], None]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # socket.create_connection, with the hook (source_address is never set here)
        error: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            try:
                self.on_socket(sock)
                sock.settimeout(timeout)
                sock.connect(address)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
            except BaseException:
                sock.close()
                raise
        raise error or OSError(f"no address found for {host}")


class _WatchedSMTPSSL(smtplib.SMTP_SSL, _WatchedSMTP):
    """Implicit TLS over `_WatchedSMTP`'s socket (SMTP_SSL wraps what its parent connects)."""


class SmtpSession:
    """One SMTP connection that delivers messages one after the other, then says QUIT.

    The connection is opened for the first message and opened again after any failure (a
    failed connection is dropped without QUIT). `send` returns as soon as the server
    accepted the message (its 250), so the caller records it before the next message and
    before the QUIT, which `close` sends politely, bounded by QUIT_TIMEOUT_SECONDS; a QUIT
    that fails changes nothing. `stop` lets another thread end the session (see DeliveryStop).
    """

    def __init__(
        self,
        smtp: SmtpSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        stop: DeliveryStop | None = None,
    ) -> None:
        self.smtp = smtp
        self.server = f"{smtp.host}:{smtp.port}"
        self._ssl_context = ssl_context
        self._stop = stop or DeliveryStop()
        self._client: smtplib.SMTP | None = None
        self._lock = threading.Lock()  # guards _control and _quitting against _wake
        self._control: socket.socket | None = None  # a dup of the connection, for shutdown
        self._quitting = False
        self._stage = "connect"
        self._stop._watch(self)

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: EmailMessage) -> None:
        """Deliver `message`; return only once the server accepted it.

        Raises `DeliveryError` as `send_email` documents, or `DeliveryInterrupted` when the
        stop path ended the attempt (or had asked that no new message start).
        """
        server = self.server
        smtp = self.smtp
        recipients = _envelope_recipients(message)
        try:
            sender = _checked_address(smtp.sender, "sender").addr_spec
        except ValueError as error:
            raise DeliveryError(f"smtp.sender: {error}", retryable=True) from error
        if smtp.username and smtp.security == "none" and not _is_loopback(smtp.host):
            raise DeliveryError(
                f"refusing to send the SMTP password unencrypted to {server}; "
                "set smtp.security to starttls or tls",
                retryable=True,
            )
        if self._stop.is_stopping():
            raise DeliveryInterrupted(f"not sent to {server}: monitor is stopping")
        try:
            client = self._client or self._open()
            self._stage = "send"
            refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
        except Exception as error:
            self._drop()
            if isinstance(error, DeliveryInterrupted):
                raise
            if self._stop.is_interrupted():
                raise DeliveryInterrupted(
                    f"delivery to {server} interrupted by shutdown (during {self._stage})"
                ) from error
            if isinstance(error, DeliveryError):
                raise
            failure = _delivery_failure(
                error, server=server, stage=self._stage, timeout=smtp.timeout_seconds
            )
            if failure is None:
                raise
            raise failure from error
        if refused:
            log.warning(
                "smtp_partial_delivery server=%s message_id=%s refused=%s",
                server,
                message.get("Message-ID"),
                "; ".join(f"{addr}: {_reply_text(c, r)}" for addr, (c, r) in refused.items()),
            )
        log.info(
            "smtp_sent server=%s message_id=%s recipients=%d",
            server,
            message.get("Message-ID"),
            len(recipients) - len(refused),
        )

    def close(self) -> None:
        """QUIT (unless stopping; bounded; its failure ignored), then close the connection."""
        client = self._client
        try:
            if client is not None:
                with self._lock:
                    self._quitting = True  # from now on a stop() cuts the QUIT short
                if not self._stop.is_stopping():
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        if client.sock is not None:
                            client.sock.settimeout(
                                min(self.smtp.timeout_seconds, QUIT_TIMEOUT_SECONDS)
                            )
                        client.quit()
        finally:
            self._drop()
            self._stop._unwatch(self)

    # -- inside --------------------------------------------------------------

    def _open(self) -> smtplib.SMTP:
        smtp = self.smtp
        server = self.server
        timeout = smtp.timeout_seconds
        self._stage = "connect"
        client: _WatchedSMTP
        if smtp.security == "tls":
            client = _WatchedSMTPSSL(
                local_hostname=_local_hostname(),
                timeout=timeout,
                context=self._ssl_context or _ca(smtp.ca_file),
            )
        else:
            client = _WatchedSMTP(local_hostname=_local_hostname(), timeout=timeout)
        client.on_socket = self._watch_socket
        client._host = smtp.host  # type: ignore[attr-defined]  # TLS checks this name
        self._client = client
        code, reply = client.connect(smtp.host, smtp.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, reply)
        self._stage = "EHLO"
        client.ehlo_or_helo_if_needed()
        if smtp.security == "starttls":
            self._stage = "STARTTLS"
            if not client.has_extn("starttls"):
                raise DeliveryError(
                    f"SMTP server {server} does not offer STARTTLS (security=starttls); "
                    "not sending in plain text",
                    retryable=True,
                )
            client.starttls(context=self._ssl_context or _ca(smtp.ca_file))
            client.ehlo()
        if smtp.username:
            self._stage = "login"
            if not client.has_extn("auth"):
                raise DeliveryError(
                    f"SMTP server {server} does not offer AUTH, but smtp.username is set",
                    retryable=True,
                )
            client.login(smtp.username, smtp.password or "")
        return client

    def _watch_socket(self, sock: socket.socket) -> None:
        """Keep a duplicate of `sock` (the same connection, whatever TLS wraps it later) for
        `_wake`; refuse to connect once interrupted."""
        with self._lock:
            if self._control is not None:
                self._control.close()  # the previous address tried
            self._control = sock.dup()
        if self._stop.is_interrupted():
            raise DeliveryInterrupted(f"not connecting to {self.server}: monitor is stopping")

    def _wake(self, *, hard: bool) -> None:
        """Called by DeliveryStop from another thread."""
        with self._lock:
            if self._control is not None and (hard or self._quitting):
                with contextlib.suppress(OSError):
                    self._control.shutdown(socket.SHUT_RDWR)

    def _drop(self) -> None:
        """Close the connection without QUIT."""
        client, self._client = self._client, None
        try:
            if client is not None:
                client.close()
        finally:
            with self._lock:
                if self._control is not None:
                    self._control.close()
                    self._control = None
                self._quitting = False


def _delivery_failure(
    error: Exception, *, server: str, stage: str, timeout: float
) -> DeliveryError | None:
    """The DeliveryError that `error`, raised during `stage`, means (None: not ours)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = {addr: code for addr, (code, _) in error.recipients.items()}
        replies = "; ".join(
            f"{addr}: {_reply_text(code, reply)}"
            for addr, (code, reply) in error.recipients.items()
        )
        retryable = any(code < 500 for code in codes.values())
        return DeliveryError(
            f"SMTP server {server} refused all recipients: {replies}", retryable=retryable
        )
    if isinstance(error, smtplib.SMTPResponseException):
        # sender refused, DATA error, login, greeting
        reply = _reply_text(error.smtp_code, error.smtp_error)
        retryable = (
            stage != "send"
            or not 500 <= error.smtp_code < 600
            or error.smtp_code in _SETUP_CODES  # "log in first": settings, not this message
        )
        return DeliveryError(
            f"SMTP server {server} answered {reply} (during {stage})", retryable=retryable
        )
    if isinstance(error, smtplib.SMTPServerDisconnected):
        if isinstance(error.__context__, TimeoutError):  # smtplib turns a read timeout into this
            return DeliveryError(
                f"SMTP server {server} did not answer within {timeout:g} s (during {stage})",
                retryable=True,
            )
        return DeliveryError(
            f"SMTP server {server} closed the connection during {stage}: {clean_line(error, 200)}",
            retryable=True,
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):  # the message needs SMTPUTF8
        return DeliveryError(
            f"SMTP server {server} cannot take this message: {clean_line(error, 200)}",
            retryable=stage != "send",
        )
    if isinstance(error, TimeoutError):
        return DeliveryError(
            f"SMTP server {server} did not answer within {timeout:g} s (during {stage})",
            retryable=True,
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return DeliveryError(
            f"TLS certificate of SMTP server {server} not trusted: {clean_line(error, 200)}",
            retryable=True,
        )
    if isinstance(error, OSError):  # refused, unreachable, DNS failure, TLS errors, other smtplib
        return DeliveryError(
            f"cannot reach SMTP server {server} (during {stage}): {clean_line(error, 200)}",
            retryable=True,
        )
    if isinstance(error, (ValueError, UnicodeError, LookupError, TypeError)):
        return DeliveryError(
            f"message cannot be sent to {server}: {clean_line(error, 200)}", retryable=False
        )
    return None


def send_email(
    message: EmailMessage,
    smtp: SmtpSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    stop: DeliveryStop | None = None,
) -> None:
    """Deliver `message` to the SMTP server in `smtp` in a session of its own; return only
    once the server accepted it (and the session said QUIT).

    Security "none", "starttls" (refused if the server does not offer it: never falls back to
    plain text) or "tls" (implicit TLS). Certificates are verified against the system CAs, the
    CAs of `smtp.ca_file`, or `ssl_context` if given. Every network step (connect, each command, the reply after
    DATA) is bounded by `smtp.timeout_seconds`, and `stop` can end it early from another
    thread. The password is never logged or put in errors.

    Raises `DeliveryError`:
    - `retryable=True`: the server could not be reached, timed out, dropped the connection,
      answered 4xx, or refused the connection setup (greeting, EHLO, STARTTLS, TLS, login);
      those concern the server or its settings, not this message, so the message waits.
    - `retryable=False`: the server refused this message with 5xx at MAIL, RCPT or DATA, every
      recipient was refused permanently, or the message itself is bad (addresses, encoding).
    - `DeliveryInterrupted` (retryable): `stop` ended the attempt.
    Some recipients refused while others accepted: delivered; the refusals are logged.
    """
    with SmtpSession(smtp, ssl_context=ssl_context, stop=stop) as session:
        session.send(message)


def _ca(ca_file: str | None) -> ssl.SSLContext:
    """Verify the server against the system CAs (or those of `ca_file`), with its host name
    (never smtplib's default, which verifies nothing). Made only when TLS is used: loading
    the CAs costs ~30 ms."""
    return ssl.create_default_context(cafile=ca_file)


@functools.cache
def _local_hostname() -> str:
    """Our name in EHLO (what smtplib would use, looked up once rather than per message)."""
    return socket.getfqdn()


def retry_delay_seconds(
    attempts: int,
    *,
    base: float = 60,
    cap: float = 6 * 3600,
    rng: random.Random | None = None,
) -> float:
    """How long to wait before the next attempt, after `attempts` failed ones (1, 2, …).

    Exponential (`base`, 2×, 4×, …) up to `cap`, minus up to 20 % jitter, so that rows that
    failed together do not retry together. The jitter never lets a delay fall below the one
    before it: delay(n) ≤ d(n) and delay(n+1) > 0.8 × 2 × d(n) > d(n), until the cap.
    """
    exponent = min(max(attempts, 1) - 1, 64)
    ceiling = min(cap, base * 2.0**exponent)
    jitter = (rng or _RNG).random()
    return max(0.0, ceiling * (1.0 - 0.2 * jitter))


_RNG = random.Random()


def write_to_maildir(message: EmailMessage, maildir: Path) -> Path:
    """Save `message` in the Maildir at `maildir` (created if needed); return the new file.

    Raises `DeliveryError(retryable=True)` when the folder cannot be written (full disk,
    permissions): the copy can be written later.
    """
    try:
        box = mailbox.Maildir(maildir, create=True)
        key = box.add(message.as_bytes())
    except OSError as error:
        raise DeliveryError(
            f"cannot write the message to Maildir {maildir}: {error}", retryable=True
        ) from error
    return Path(maildir) / "new" / key
