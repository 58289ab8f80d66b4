"""Which channel rows an alert makes: for each route that takes it, the payload and the
time it may go (no I/O; the pipeline writes the rows in the alert's transaction)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from monitor.deliver.channels import routing
from monitor.deliver.channels.payload import build_payload
from monitor.deliver.content import AlertEmail
from monitor.models import AlertDecision, Level, Route

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlannedRow:
    route: Route
    payload: dict[str, Any]
    not_before: datetime | None
    dead_reason: str | None = None  # the payload could not be built: stored dead


def level_ranks(levels: Sequence[Level]) -> dict[str, int]:
    """Level name → rank, lowest first (the order `alerts` uses)."""
    ordered = sorted(levels, key=lambda level: (level.enter, level.exit, level.name))
    return {level.name: rank for rank, level in enumerate(ordered)}


def plan_rows(
    routes: Sequence[Route],
    decision: AlertDecision,
    *,
    now: datetime,
    levels: Sequence[Level],
    compose: Callable[[], AlertEmail],
    earlier_firing: Callable[[Route], list[dict[str, Any]]],
    send_after: Callable[[Route], datetime],
    feed_id: str | None = None,
    items: Sequence[tuple[str | None, str]] = (),
) -> list[PlannedRow]:
    """`compose` is called once, and only if a route takes the alert; `earlier_firing`
    names the alerts a route's "resolved" ends; `send_after` says when the alert may go to
    a route (its quiet hours); `items` are a digest's (theatre id, line) pairs, filtered
    per route."""
    ranks = level_ranks(levels)
    chosen = [r for r in routes if routing.is_routed(r, decision, level_ranks=ranks)]
    if not chosen:
        return []
    content: AlertEmail | None = None
    render_error: str | None = None
    try:
        content = compose()
    except Exception as exc:  # a render failure must not lose the alert or stop scoring
        render_error = f"render_error: {exc}"
        log.error("channel payload failed key=%s error=%s", decision.dedup_key, exc)
    planned = []
    for route in chosen:
        payload: dict[str, Any] = {"key": decision.dedup_key, "kind": decision.kind}
        dead_reason = render_error
        if content is not None:
            routed = content
            if decision.kind == "digest":
                lines = routing.digest_items(route, items)
                if not lines:
                    continue  # nothing in this digest for this route
                routed = replace(content, lines=tuple(lines))
            try:
                payload = build_payload(routed, feed_id=feed_id, resolves=earlier_firing(route))
            except Exception as exc:
                dead_reason = f"render_error: {exc}"
        not_before = send_after(route)
        planned.append(
            PlannedRow(
                route=route,
                payload=payload,
                not_before=not_before if not_before > now else None,
                dead_reason=dead_reason,
            )
        )
    return planned
