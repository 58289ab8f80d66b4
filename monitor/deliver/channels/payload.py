"""The versioned JSON payload of an alert (webhook format 1), built once when the alert is
recorded and stored in its channel outbox rows; every channel renders from it.

Everything that came from a feed is cleaned as for email (`content.clean_line`, links only
`http`/`https`). The format is documented in README ("JSON webhook"); add fields freely,
but renaming or removing one needs a new `version`.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.deliver import content as notify
from monitor.deliver.email_message import render_plain
from monitor.models import to_iso

PAYLOAD_VERSION = 1


def build_payload(
    alert: notify.AlertEmail,
    *,
    feed_id: str | None = None,
    resolves: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The payload for `alert`; `resolves` names earlier alerts (of the same route) it ends."""
    decision = alert.decision
    title, text = render_plain(alert)
    stories = []
    for lines in notify.top_stories(alert):
        first = lines[0]
        evidence = dict.fromkeys(notify.clean_line(line.evidence, 400) for line in lines)
        stories.append(
            {
                "title": notify.clean_line(first.title, 200) or "(untitled)",
                "outlet": notify.clean_line(first.outlet, 80),
                "published_at": to_iso(first.published_at),
                "url": notify.safe_url(first.url),
                "indicators": [line.indicator_id for line in lines],
                "points": round(sum(_finite(line.points) for line in lines), 2),
                "evidence": [sentence for sentence in evidence if sentence],
                "critical": any(
                    line.match_id is not None and line.match_id in decision.match_ids
                    for line in lines
                ),
            }
        )
    feed = None
    if alert.feed is not None:
        feed = {
            "id": feed_id,
            "name": notify.clean_line(alert.feed.name, 80),
            "url": notify.safe_url(alert.feed.url),
            "error": notify.clean_line(alert.feed.error, 500),
            "failing_since": to_iso(alert.feed.failing_since) if alert.feed.failing_since else None,
        }
    return {
        "version": PAYLOAD_VERSION,
        "key": decision.dedup_key,
        "kind": decision.kind,
        "urgent": decision.urgent,
        "created_at": to_iso(decision.created_at),
        "theatre": (
            {"id": decision.theatre_id, "name": alert.theatre_name or decision.theatre_id}
            if decision.theatre_id
            else None
        ),
        "level": decision.level,
        "previous_level": decision.previous_level,
        "index": _round(decision.index),
        "change_24h": _round(decision.change_24h),
        "reason": notify.clean_line(
            notify.name_indicators(decision.reason, alert.indicator_ids), 400
        ),
        "title": title,
        "text": text,
        "stories": stories,
        "feed": feed,
        "items": [notify.clean_line(line, 400) for line in alert.lines if line.strip()],
        "explain": notify.clean_line(alert.command_hint, 300) or None,
        "report_url": notify.safe_url(alert.report_link),
        "resolves": list(resolves or []),
    }


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 1)
