"""Prometheus Alertmanager: post alerts to its v2 API (`POST /api/v2/alerts`).

Silences, inhibition, grouping and routing are then Alertmanager's. Labels: `alertname`
(MonitorEscalation, MonitorFeedDown, MonitorDigest, MonitorTest), `theatre` or `feed`,
`kind`, `level`; annotations: summary, description (the reason), stories (one line each,
with the evidence), explain, report URL, the alert key.

Alertmanager expects a client to re-send a firing alert; monitor sends each alert once,
so a firing alert carries `endsAt` = start + the route's `hold_hours` (default 24 h, the
repeat interval). A "resolved" (a theatre calmed) posts the alerts it ends (the payload's
`resolves`: the same labels) with `endsAt` in the past; "feed_recovered" ends "feed_down".

Alertmanager takes an end only if it lies in its own past: an `endsAt` in its future does
not shorten the firing alert's later `endsAt` (`types.Alert.Merge`), so the alert would
stay up for the rest of `hold_hours`. So the end is the earlier of the alert's time and
the time of sending, less `END_CLOCK_MARGIN` for clocks that differ between hosts (never
before the firing alert's start, which Alertmanager refuses).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.deliver.channels.base import Delivered, Outcome
from monitor.deliver.channels.http import HttpPoster
from monitor.models import from_iso, to_iso

API_PATH = "/api/v2/alerts"
END_CLOCK_MARGIN = timedelta(minutes=5)
_NAMES = {"feed_down": "MonitorFeedDown", "digest": "MonitorDigest", "test": "MonitorTest"}


def alerts_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def labels_for(
    kind: str, *, theatre: str | None, feed: str | None, level: str | None
) -> dict[str, str]:
    labels = {"alertname": _NAMES.get(kind, "MonitorEscalation"), "kind": kind}
    if theatre:
        labels["theatre"] = theatre
    if feed:
        labels["feed"] = feed
    if level:
        labels["level"] = level
    return labels


def am_alerts(
    payload: dict[str, Any], *, hold_hours: float, sent_at: datetime
) -> list[dict[str, Any]]:
    """The Alertmanager alerts one payload becomes (an empty list: nothing to post);
    `sent_at` is the time of sending (the end of an ended alert is before it)."""
    kind = str(payload["kind"])
    at = from_iso(str(payload["created_at"]))
    if kind in ("resolved", "feed_recovered"):
        end = min(at, sent_at) - END_CLOCK_MARGIN
        ended_alerts = []
        for ended in payload.get("resolves", []):
            started = from_iso(ended["created_at"]) if ended.get("created_at") else end
            ended_alerts.append(
                {
                    "labels": labels_for(
                        str(ended["kind"]),
                        theatre=ended.get("theatre"),
                        feed=ended.get("feed"),
                        level=ended.get("level"),
                    ),
                    "startsAt": to_iso(started),
                    "endsAt": to_iso(max(end, started)),
                }
            )
        return ended_alerts
    theatre = (payload.get("theatre") or {}).get("id")
    feed = (payload.get("feed") or {}).get("id") if payload.get("feed") else None
    hold = timedelta(minutes=5) if kind == "test" else timedelta(hours=hold_hours)
    stories = [
        f"{s['title']} ({s['outlet']}): {' / '.join(s['evidence'])}"
        + (f" {s['url']}" if s.get("url") else "")
        for s in payload.get("stories", [])
    ]
    annotations = {
        "summary": str(payload.get("title", "")),
        "description": str(payload.get("reason", "")),
        "key": str(payload.get("key", "")),
    }
    if stories:
        annotations["stories"] = "\n".join(stories)
    if payload.get("items"):
        annotations["items"] = "\n".join(payload["items"])
    if payload.get("explain"):
        annotations["explain"] = str(payload["explain"])
    alert: dict[str, Any] = {
        "labels": labels_for(kind, theatre=theatre, feed=feed, level=payload.get("level")),
        "annotations": annotations,
        "startsAt": to_iso(at),
        "endsAt": to_iso(at + hold),
    }
    if payload.get("report_url"):
        alert["generatorURL"] = payload["report_url"]
    return [alert]


class AlertmanagerChannel:
    def __init__(
        self, url: str, *, timeout_seconds: float, hold_hours: float, token: str | None = None
    ) -> None:
        self.url = alerts_url(url)
        self.hold_hours = hold_hours
        self._poster = HttpPoster(timeout_seconds=timeout_seconds, token=token)

    def send(self, payload: dict[str, Any]) -> Outcome:
        body = am_alerts(payload, hold_hours=self.hold_hours, sent_at=datetime.now(UTC))
        if not body:
            return Delivered("nothing firing on this route to end")
        return self._poster.post_json(self.url, body)

    def close(self) -> None:
        self._poster.close()
