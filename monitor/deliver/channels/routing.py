"""Which alerts go to which route, and when (pure: no clock, no I/O).

- An alert's route kind: "digest" for the daily digest, "feed" for feed trouble
  (feed_down, feed_recovered), "urgent" for a theatre's urgent alerts (level_up, surge,
  critical, resolved). A non-urgent theatre alert (level_down) goes to no route by
  itself; it is an item of the next digest. A "test" alert goes to every route.
- `theatres` filters theatre alerts and a digest's items; `min_level` compares the higher
  of the alert's level and the level it came from, so the "resolved" that ends a "high"
  goes where the "high" went. "critical" alerts pass any `min_level` (they are critical).
- Quiet hours per route: the route's own, none (`[]`), or the watch list's (applied by the
  pipeline through `alerts.send_after`; `deliver` does not import `score`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monitor.models import AlertDecision, AlertSettings, Route, RouteKind

URGENT_KINDS = frozenset({"level_up", "surge", "critical", "resolved"})
FEED_KINDS = frozenset({"feed_down", "feed_recovered"})
FIRING_KINDS = ("level_up", "surge", "critical")  # what a later "resolved" ends


def route_kind(decision: AlertDecision) -> RouteKind | None:
    if decision.kind == "digest":
        return "digest"
    if decision.kind in FEED_KINDS:
        return "feed"
    if decision.kind in URGENT_KINDS and decision.urgent:
        return "urgent"
    return None


def is_routed(route: Route, decision: AlertDecision, *, level_ranks: dict[str, int]) -> bool:
    """Whether `decision` goes to `route` (a digest: whether the route takes digests; its
    items are filtered by `digest_items`)."""
    if decision.kind == "test":
        return True
    kind = route_kind(decision)
    if kind is None or kind not in route.kinds:
        return False
    if kind != "urgent":
        return True
    if route.theatres and decision.theatre_id not in route.theatres:
        return False
    if route.min_level is None or decision.kind == "critical":
        return True
    wanted = level_ranks.get(route.min_level)
    if wanted is None:
        return True  # checked at load; a level removed since must not silence the route
    reached = max(
        (level_ranks.get(level or "", -1) for level in (decision.level, decision.previous_level)),
        default=-1,
    )
    return reached >= wanted


def digest_items(route: Route, items: Sequence[tuple[str | None, str]]) -> list[str]:
    """A digest's items for `route`: (theatre id or None, line) pairs; the route's theatre
    filter applies to theatre items, feed items are kept."""
    return [
        line
        for theatre_id, line in items
        if theatre_id is None or not route.theatres or theatre_id in route.theatres
    ]


def route_alert_settings(route: Route, settings: AlertSettings) -> AlertSettings:
    """The watch list's alert settings with the route's quiet hours (if it has its own);
    `alerts.send_after` with these says when an alert may go to the route."""
    if route.quiet_hours is None:
        return settings
    return replace(settings, quiet_hours=route.quiet_hours or None)
