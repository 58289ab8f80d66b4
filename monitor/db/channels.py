"""The channel outbox (`channel_outbox`, one row per alert and route; issue 13).

Functions take a store (`StoreBase`); `ChannelRows` binds them to one store for the
delivery loop (`deliver.channels.dispatch`). The table is created by the
`_migration_7_channel_outbox` migration in `schema`. Writes made while recording an alert run inside the caller's
transaction; marking a row sent, retried or dead is a transaction of its own, committed
right after the channel's answer (a kill between the answer and the commit repeats that
one row, with the same key, at the next start).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.db.base import StoreBase
from monitor.models import AlertDecision, ChannelItem, to_iso

Store = StoreBase


def enqueue(
    store: Store,
    alert_id: int,
    *,
    route: str,
    channel: str,
    payload: dict[str, Any],
    now: datetime,
    not_before: datetime | None = None,
    dead_reason: str | None = None,
) -> int | None:
    """One row for (alert, route); None if that row exists already."""
    cursor = store.conn.execute(
        "INSERT INTO channel_outbox (alert_id, route, channel, payload, status, attempts, "
        "not_before, next_attempt_at, last_error, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?) "
        "ON CONFLICT(alert_id, route) DO NOTHING",
        (
            alert_id,
            route,
            channel,
            json.dumps(payload, ensure_ascii=False, sort_keys=True),
            "dead" if dead_reason else "pending",
            to_iso(not_before) if not_before else None,
            to_iso(not_before or now),
            dead_reason,
            to_iso(now),
        ),
    )
    return int(cursor.lastrowid or 0) if cursor.rowcount else None


def earlier_firing(
    store: Store, route: str, decision: AlertDecision, *, feed_id: str | None = None
) -> list[dict[str, Any]]:
    """The alerts a "resolved" (or "feed_recovered") ends on `route`: those of the same
    theatre (feed) recorded for the route since its last resolved (recovered) one."""
    firing: tuple[str, ...]
    if decision.kind == "resolved" and decision.theatre_id:
        column, value, firing, ending = "theatre_id", decision.theatre_id, _FIRING, "resolved"
    elif decision.kind == "feed_recovered" and feed_id:
        column, value, firing, ending = "feed_id", feed_id, ("feed_down",), "feed_recovered"
    else:
        return []
    marks = ",".join("?" for _ in firing)
    rows = store.conn.execute(
        f"""
        SELECT al.dedup_key, al.kind, al.level, al.theatre_id, al.feed_id, al.created_at
        FROM channel_outbox c JOIN alerts al ON al.id = c.alert_id
        WHERE c.route = ? AND al.{column} = ? AND al.kind IN ({marks})
          AND al.id > coalesce((
            SELECT max(a2.id) FROM channel_outbox c2 JOIN alerts a2 ON a2.id = c2.alert_id
            WHERE c2.route = ? AND a2.{column} = ? AND a2.kind = ?), 0)
        ORDER BY al.id
        """,
        (route, value, *firing, route, value, ending),
    ).fetchall()
    return [
        {
            "key": r[0],
            "kind": r[1],
            "level": r[2],
            "theatre": r[3],
            "feed": r[4],
            "created_at": r[5],
        }
        for r in rows
    ]


_FIRING = ("level_up", "surge", "critical")


def due(store: Store, route: str, *, now: datetime, limit: int = 50) -> list[ChannelItem]:
    rows = store.conn.execute(
        "SELECT id, alert_id, route, channel, payload, attempts FROM channel_outbox "
        "WHERE route = ? AND status = 'pending' AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, id LIMIT ?",
        (route, to_iso(now), limit),
    ).fetchall()
    return [
        ChannelItem(
            id=r[0],
            alert_id=r[1],
            route=r[2],
            channel=r[3],
            payload=json.loads(r[4]),
            attempts=r[5],
        )
        for r in rows
    ]


def next_due(store: Store, route: str) -> str | None:
    """When the route's next pending row is due (ISO text), or None."""
    (at,) = store.conn.execute(
        "SELECT min(next_attempt_at) FROM channel_outbox WHERE route = ? AND status = 'pending'",
        (route,),
    ).fetchone()
    return None if at is None else str(at)


def mark_sent(store: Store, item_id: int, *, now: datetime) -> None:
    with store.transaction():
        store.conn.execute(
            "UPDATE channel_outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, "
            "last_error = NULL WHERE id = ? AND status = 'pending'",
            (to_iso(now), item_id),
        )


def mark_retry(store: Store, item_id: int, *, error: str, next_attempt_at: datetime) -> None:
    with store.transaction():
        store.conn.execute(
            "UPDATE channel_outbox SET attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ? WHERE id = ? AND status = 'pending'",
            (error[:500], to_iso(next_attempt_at), item_id),
        )


def mark_dead(store: Store, item_id: int, *, error: str) -> None:
    with store.transaction():
        store.conn.execute(
            "UPDATE channel_outbox SET status = 'dead', attempts = attempts + 1, last_error = ? "
            "WHERE id = ? AND status = 'pending'",
            (error[:500], item_id),
        )


def route_counts(store: Store) -> dict[str, dict[str, int]]:
    """{route: {status: rows}} (`monitor status`)."""
    counts: dict[str, dict[str, int]] = {}
    if not has_table(store):
        return counts
    for route, status, n in store.conn.execute(
        "SELECT route, status, count(*) FROM channel_outbox GROUP BY route, status ORDER BY route"
    ):
        counts.setdefault(str(route), {})[str(status)] = int(n)
    return counts


def route_last_errors(store: Store) -> dict[str, str]:
    """The last error of each route's newest failed row (`monitor status`)."""
    if not has_table(store):
        return {}
    return {
        str(route): str(error)
        for route, error in store.conn.execute(
            "SELECT route, last_error FROM channel_outbox c WHERE last_error IS NOT NULL AND id = "
            "(SELECT max(id) FROM channel_outbox c2 WHERE c2.route = c.route "
            "AND c2.last_error IS NOT NULL)"
        )
    }


def deliveries(store: Store, alert_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each alert's channel rows: route, channel, status, attempts, sent_at, last_error."""
    if not alert_ids or not has_table(store):
        return {}
    found: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(alert_ids), 500):
        chunk = list(alert_ids[start : start + 500])
        marks = ",".join("?" for _ in chunk)
        for row in store.query(
            f"SELECT alert_id, route, channel, status, attempts, sent_at, last_error "
            f"FROM channel_outbox WHERE alert_id IN ({marks}) ORDER BY route",
            chunk,
        ):
            found.setdefault(int(row.pop("alert_id")), []).append(row)
    return found


def has_table(store: Store) -> bool:
    """False on a database older than the channel migration (a read-only CLI open)."""
    return (
        store.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'channel_outbox'"
        ).fetchone()
        is not None
    )


def route_health(
    store: Store, *, now: datetime, overdue_after: timedelta, dead_window: timedelta
) -> dict[str, dict[str, Any]]:
    """Per route: rows by status, pending rows overdue (counted from their not-before
    time), rows dead within `dead_window`, and the newest error (`monitor status`)."""
    if not has_table(store):
        return {}
    health: dict[str, dict[str, Any]] = {}
    for route, counts in route_counts(store).items():
        health[route] = {
            "pending": counts.get("pending", 0),
            "sent": counts.get("sent", 0),
            "dead": counts.get("dead", 0),
            "overdue_pending": 0,
            "recent_dead": 0,
            "last_error": None,
        }
    for route, overdue in store.conn.execute(
        "SELECT route, count(*) FROM channel_outbox WHERE status = 'pending' "
        "AND coalesce(not_before, created_at) < ? GROUP BY route",
        (to_iso(now - overdue_after),),
    ):
        health[str(route)]["overdue_pending"] = int(overdue)
    for route, dead in store.conn.execute(
        "SELECT route, count(*) FROM channel_outbox WHERE status = 'dead' AND created_at >= ? "
        "GROUP BY route",
        (to_iso(now - dead_window),),
    ):
        health[str(route)]["recent_dead"] = int(dead)
    for route, error in route_last_errors(store).items():
        health[route]["last_error"] = error
    return health


def deliveries_by_key(store: Store, keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`deliveries`, keyed by the alerts' dedup keys (`monitor alerts`)."""
    if not keys or not has_table(store):
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        marks = ",".join("?" for _ in chunk)
        for row in store.query(
            f"SELECT al.dedup_key, c.route, c.channel, c.status, c.attempts, c.sent_at, "
            f"c.last_error FROM channel_outbox c JOIN alerts al ON al.id = c.alert_id "
            f"WHERE al.dedup_key IN ({marks}) ORDER BY c.route",
            chunk,
        ):
            found.setdefault(str(row.pop("dedup_key")), []).append(row)
    return found


class ChannelRows:
    """One store's channel rows, as the delivery loop uses them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def due(self, route: str, *, now: datetime, limit: int) -> list[ChannelItem]:
        return due(self.store, route, now=now, limit=limit)

    def mark_sent(self, item_id: int, *, now: datetime) -> None:
        mark_sent(self.store, item_id, now=now)

    def mark_retry(self, item_id: int, *, error: str, next_attempt_at: datetime) -> None:
        mark_retry(self.store, item_id, error=error, next_attempt_at=next_attempt_at)

    def mark_dead(self, item_id: int, *, error: str) -> None:
        mark_dead(self.store, item_id, error=error)
