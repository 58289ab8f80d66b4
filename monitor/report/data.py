"""What the report shows, read from the database at one moment (`now`).

Reads only through `monitor.db`'s read functions (no SQL here) and returns plain
records; the pages are rendered from these alone. Numbers are the stored ones, so the
report says what `monitor history` and `monitor explain` say for the same time.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from monitor import db
from monitor.config import Config
from monitor.models import Level

INDEX_DAYS = 90
THEATRE_DAYS = 365
LATEST_ALERTS = 12
THEATRE_ALERTS = 50
ALERT_PAGES = 2000  # the newest alerts get a page each (older ones: Datasette)


@dataclass(frozen=True, slots=True)
class Evidence:
    indicator_id: str
    points: float
    confidence: float | None
    sentence: str


@dataclass(frozen=True, slots=True)
class Source:
    outlet: str
    title: str
    url: str | None
    published_at: str | None


@dataclass(frozen=True, slots=True)
class Story:
    """One story behind a score point: its contributions (one per indicator) together."""

    story_id: int
    title: str
    url: str | None
    outlet: str
    published_at: str | None
    sources: int
    points: float
    evidence: list[Evidence] = field(default_factory=list)
    articles: list[Source] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TheatreData:
    theatre_id: str
    name: str
    kind: str
    point: dict[str, Any] | None  # the newest score point at or before `now`
    recent: list[dict[str, Any]]  # daily peaks, INDEX_DAYS
    year: list[dict[str, Any]]  # daily peaks, THEATRE_DAYS
    record: list[dict[str, Any]]  # weekly peaks, the whole record
    alerts: list[dict[str, Any]]  # newest first
    stories: list[Story]
    indicators: list[tuple[str, float]]  # (indicator id, points), largest first
    contributions: int  # stored contributions of the point
    contribution_total: float


@dataclass(frozen=True, slots=True)
class AlertData:
    row: dict[str, Any]
    email_text: str | None  # the plain-text part of the email that went out (or is due)


@dataclass(frozen=True, slots=True)
class ReportData:
    now: datetime
    theatres: list[TheatreData]
    latest_alerts: list[dict[str, Any]]
    alerts: list[AlertData]
    feeds: list[dict[str, Any]]
    levels: tuple[Level, ...]
    theatre_names: dict[str, str]
    indicator_ids: tuple[str, ...]


def read_report(
    store: db.Store, config: Config, *, now: datetime, theatre_id: str | None = None
) -> ReportData:
    """What the report shows as of `now`: every theatre of the watch list, or `theatre_id`
    alone (and only its alerts)."""
    theatres = [
        _theatre(store, key, theatre.name, theatre.kind, now=now)
        for key, theatre in config.rules.theatres.items()
        if theatre_id is None or key == theatre_id
    ]
    alerts = [
        AlertData(row=row, email_text=_email_text(db.alert_message(store, int(row["id"]))))
        for row in db.report_alert_rows(store, theatre_id=theatre_id, until=now, limit=ALERT_PAGES)
    ]
    return ReportData(
        now=now,
        theatres=theatres,
        latest_alerts=[a.row for a in alerts[:LATEST_ALERTS]],
        alerts=alerts,
        feeds=db.feed_health_rows(store),
        levels=tuple(config.scoring.levels),
        theatre_names={t.theatre_id: t.name for t in theatres},
        indicator_ids=tuple(config.rules.indicators),
    )


def _theatre(
    store: db.Store, theatre_id: str, name: str, kind: str, *, now: datetime
) -> TheatreData:
    point = store.score_at(theatre_id, now)
    year = db.history_rows(
        store,
        theatre_id=theatre_id,
        since=now - timedelta(days=THEATRE_DAYS),
        until=now,
        every="1d",
    )
    record = db.history_rows(
        store, theatre_id=theatre_id, since=datetime(1970, 1, 1, tzinfo=UTC), until=now, every="1w"
    )
    recent_start = (now - timedelta(days=INDEX_DAYS)).strftime("%Y-%m-%d")
    recent = [row for row in year if str(row["at"]) >= recent_start]
    stories: list[Story] = []
    indicators: dict[str, float] = {}
    count, total = 0, 0.0
    if point is not None:
        rows, count, total = db.explain_rows(store, int(point["id"]))
        by_story: dict[int, Story] = {}
        for row in rows:
            story = by_story.get(row["story_id"])
            if story is None:
                story = by_story[row["story_id"]] = Story(
                    story_id=int(row["story_id"]),
                    title=row["title"] or "",
                    url=row["url"],
                    outlet=row["outlet"] or "",
                    published_at=row["published_at"],
                    sources=int(row["sources"] or 1),
                    points=0.0,
                )
            story.evidence.append(
                Evidence(
                    indicator_id=row["indicator_id"],
                    points=float(row["points"]),
                    confidence=row["confidence"],
                    sentence=row["evidence"] or "",
                )
            )
            indicators[row["indicator_id"]] = indicators.get(row["indicator_id"], 0.0) + float(
                row["points"]
            )
        for article in db.story_article_rows(store, list(by_story)):
            by_story[article["story_id"]].articles.append(
                Source(
                    outlet=article["outlet"] or "",
                    title=article["title"] or "",
                    url=article["url"],
                    published_at=article["published_at"],
                )
            )
        stories = sorted(
            (
                Story(**{**_fields(s), "points": sum(e.points for e in s.evidence)})
                for s in by_story.values()
            ),
            key=lambda s: (-abs(s.points), s.story_id),
        )
    return TheatreData(
        theatre_id=theatre_id,
        name=name,
        kind=kind,
        point=point,
        recent=recent,
        year=year,
        record=record,
        alerts=db.report_alert_rows(store, theatre_id=theatre_id, until=now, limit=THEATRE_ALERTS),
        stories=stories,
        indicators=sorted(indicators.items(), key=lambda item: (-abs(item[1]), item[0])),
        contributions=count,
        contribution_total=total,
    )


def _fields(story: Story) -> dict[str, Any]:
    return {name: getattr(story, name) for name in Story.__dataclass_fields__}


def _email_text(raw: bytes | None) -> str | None:
    """The plain-text part of a stored email (what the recipient read first)."""
    if not raw:
        return None
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(message, EmailMessage):
        return None
    body = message.get_body(preferencelist=("plain",))
    if body is None:
        return None
    content = body.get_content()
    return content if isinstance(content, str) else None
