"""Delivering a route's due rows, one at a time, each marked right after the channel's
answer (the rows come from, and are marked in, a `RowStore`: `db.channels.ChannelRows`).

- A route is drained by one thread with its own database connection; routes never wait
  for each other (`deliver_routes`; the daemon runs one task per route).
- `Retry` (timeout, connection error, 429, 5xx): the row is tried again after its
  Retry-After or the outbox backoff (`smtp.retry_delay_seconds`), and the route's round
  ends there: a receiver that is down costs one attempt per round, not one per row.
- `Dead` (another 4xx, a URL Apprise refuses): one ERROR line; the route goes on.
- Once `stop` asks, no new row starts; the one in flight finishes within its timeout
  (or is abandoned at the stop deadline, still pending).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from monitor.deliver.channels.base import Channel, Dead, Delivered, Outcome, Retry
from monitor.deliver.smtp import DeliveryStop, retry_delay_seconds
from monitor.models import ChannelItem, Route

log = logging.getLogger(__name__)


class RowStore(Protocol):
    def due(self, route: str, *, now: datetime, limit: int) -> list[ChannelItem]: ...

    def mark_sent(self, item_id: int, *, now: datetime) -> None: ...

    def mark_retry(self, item_id: int, *, error: str, next_attempt_at: datetime) -> None: ...

    def mark_dead(self, item_id: int, *, error: str) -> None: ...


@dataclass
class RouteSummary:
    sent: int = 0
    retried: int = 0
    dead: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "dead": self.dead}


def open_channel(route: Route) -> Channel:
    """The channel a route names (ValueError with one line when it cannot be opened)."""
    if route.channel == "webhook":
        from monitor.deliver.channels.webhook import WebhookChannel

        return WebhookChannel(route.url, timeout_seconds=route.timeout_seconds, token=route.token)
    if route.channel == "alertmanager":
        from monitor.deliver.channels.alertmanager import AlertmanagerChannel

        return AlertmanagerChannel(
            route.url,
            timeout_seconds=route.timeout_seconds,
            hold_hours=route.hold_hours,
            token=route.token,
        )
    from monitor.deliver.channels import apprise_channel

    if not apprise_channel.available():
        raise ValueError(apprise_channel.MISSING)
    return apprise_channel.AppriseChannel(route.url, timeout_seconds=route.timeout_seconds)


def send_safely(channel: Channel, payload: dict[str, Any]) -> Outcome:
    """`channel.send`, with an unexpected exception (a bug, a library's surprise) retried."""
    try:
        return channel.send(payload)
    except Exception as exc:
        return Retry(f"unexpected {type(exc).__name__}: {exc}"[:300])


def deliver_route(
    rows: RowStore,
    route: Route,
    *,
    now: datetime,
    stop: DeliveryStop | None = None,
    rng: random.Random | None = None,
    limit: int = 50,
    channel: Channel | None = None,
) -> RouteSummary:
    """Send `route`'s due rows (see the module docstring)."""
    summary = RouteSummary()
    items = rows.due(route.name, now=now, limit=limit)
    if not items:
        return summary
    own = channel is None
    try:
        if channel is None:
            channel = open_channel(route)
    except ValueError as exc:  # e.g. Apprise uninstalled since the row was written
        for item in items:
            _record(rows, route, item, Dead(str(exc)), now=now, rng=rng, summary=summary)
        return summary
    try:
        for item in items:
            if stop is not None and stop.is_stopping():
                break
            outcome = send_safely(channel, item.payload)
            _record(rows, route, item, outcome, now=now, rng=rng, summary=summary)
            if isinstance(outcome, Retry):
                break
    finally:
        if own:
            channel.close()
    return summary


def _record(
    rows: RowStore,
    route: Route,
    item: ChannelItem,
    outcome: Outcome,
    *,
    now: datetime,
    rng: random.Random | None,
    summary: RouteSummary,
) -> None:
    key = item.payload.get("key", "")
    if isinstance(outcome, Delivered):
        rows.mark_sent(item.id, now=now)
        summary.sent += 1
        log.info("channel delivered route=%s key=%s", route.name, key)
    elif isinstance(outcome, Retry):
        delay = outcome.after_seconds
        if delay is None:
            delay = retry_delay_seconds(item.attempts + 1, rng=rng)
        rows.mark_retry(
            item.id, error=outcome.error, next_attempt_at=now + timedelta(seconds=delay)
        )
        summary.retried += 1
        log.warning(
            "channel delivery deferred route=%s key=%s attempts=%d retry_in=%.0fs error=%s",
            route.name,
            key,
            item.attempts + 1,
            delay,
            outcome.error,
        )
    else:
        rows.mark_dead(item.id, error=outcome.reason)
        summary.dead += 1
        log.error(
            "channel delivery failed permanently route=%s key=%s error=%s "
            "(see `monitor alerts` and `monitor status`)",
            route.name,
            key,
            outcome.reason,
        )


def deliver_routes(
    open_rows: Callable[[], AbstractContextManager[RowStore]],
    routes: Sequence[Route],
    *,
    now: datetime,
    stop: DeliveryStop | None = None,
    rng: random.Random | None = None,
) -> dict[str, RouteSummary]:
    """Every route at once, one thread (and `open_rows()` connection) each; returns when
    all are done (`run --once`)."""
    results: dict[str, RouteSummary] = {}

    def run(route: Route) -> None:
        try:
            with open_rows() as rows:
                results[route.name] = deliver_route(rows, route, now=now, stop=stop, rng=rng)
        except Exception:
            log.exception("channel delivery round failed route=%s", route.name)

    threads = [
        threading.Thread(target=run, args=(route,), name=f"channel-{route.name}", daemon=True)
        for route in routes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
