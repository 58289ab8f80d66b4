"""Recording an alert's channel rows: for each route that takes it, one `channel_outbox`
row with its payload, inside the caller's transaction (the alert's own)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.deliver import channel_store, notify
from monitor.deliver.channels import routing
from monitor.deliver.channels.payload import build_payload
from monitor.models import AlertDecision, AlertSettings, Level, Route

if TYPE_CHECKING:
    from monitor.db import Store

log = logging.getLogger(__name__)


def level_ranks(levels: Sequence[Level]) -> dict[str, int]:
    """Level name → rank, lowest first (the order `alerts` uses)."""
    ordered = sorted(levels, key=lambda level: (level.enter, level.exit, level.name))
    return {level.name: rank for rank, level in enumerate(ordered)}


def enqueue_for_routes(
    store: Store,
    routes: Sequence[Route],
    decision: AlertDecision,
    *,
    alert_id: int,
    now: datetime,
    settings: AlertSettings,
    levels: Sequence[Level],
    compose: Callable[[], notify.AlertEmail],
    feed_id: str | None = None,
    items: Sequence[tuple[str | None, str]] = (),
) -> int:
    """Write the rows; return how many. `compose` is called once, and only if a route
    takes the alert; `items` are a digest's (theatre id, line) pairs, filtered per route."""
    ranks = level_ranks(levels)
    chosen = [r for r in routes if routing.is_routed(r, decision, level_ranks=ranks)]
    if not chosen:
        return 0
    content: notify.AlertEmail | None = None
    render_error: str | None = None
    try:
        content = compose()
    except Exception as exc:  # a render failure must not lose the alert or stop scoring
        render_error = f"render_error: {exc}"
        log.error(
            "channel payload failed alert=%s key=%s error=%s", alert_id, decision.dedup_key, exc
        )
    written = 0
    for route in chosen:
        payload: dict[str, object] = {"key": decision.dedup_key, "kind": decision.kind}
        dead_reason = render_error
        if content is not None:
            routed = content
            if decision.kind == "digest":
                lines = routing.digest_items(route, items)
                if not lines:
                    continue  # nothing in this digest for this route
                routed = replace(content, lines=tuple(lines))
            try:
                payload = build_payload(
                    routed,
                    feed_id=feed_id,
                    resolves=channel_store.earlier_firing(
                        store, route.name, decision, feed_id=feed_id
                    ),
                )
            except Exception as exc:
                dead_reason = f"render_error: {exc}"
        not_before = routing.send_after(route, decision, now=now, settings=settings)
        if channel_store.enqueue(
            store,
            alert_id,
            route=route.name,
            channel=route.channel,
            payload=payload,
            now=now,
            not_before=not_before if not_before > now else None,
            dead_reason=dead_reason,
        ):
            written += 1
    return written
