"""Alert state, alerts and the email outbox (one row per message, retried until sent or dead)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.models import (
    AlertDecision,
    AlertState,
    from_iso,
    to_iso,
)

if TYPE_CHECKING:
    pass

from monitor.db.base import StoreBase, _opt_iso, _round


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert_id: int
    message_id: str
    recipients: tuple[str, ...]
    subject: str
    message: bytes
    attempts: int


class AlertStore(StoreBase):
    """Alert state, alerts and the email outbox (one row per message, retried until sent or dead)."""

    def alert_state(self, theatre_id: str) -> AlertState | None:
        row = self.conn.execute(
            "SELECT level, level_since, last_sent FROM alert_state WHERE theatre_id = ?",
            (theatre_id,),
        ).fetchone()
        if row is None:
            return None
        last_sent = tuple((key, from_iso(at)) for key, at in json.loads(row[2] or "[]"))
        return AlertState(
            theatre_id=theatre_id, level=row[0], level_since=from_iso(row[1]), last_sent=last_sent
        )

    def alert_match_revision(self, theatre_id: str) -> int:
        """The highest match revision the theatre's last scoring took into account."""
        row = self.conn.execute(
            "SELECT match_revision FROM alert_state WHERE theatre_id = ?", (theatre_id,)
        ).fetchone()
        return int(row[0] or 0) if row is not None else 0

    def save_alert_state(self, state: AlertState, *, match_revision: int | None = None) -> None:
        """Store a theatre's alert state and, when given, the match revision it has seen."""
        self.conn.execute(
            "INSERT INTO alert_state (theatre_id, level, level_since, last_sent, match_revision) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(theatre_id) DO UPDATE SET level = excluded.level, "
            "level_since = excluded.level_since, last_sent = excluded.last_sent, "
            "match_revision = coalesce(excluded.match_revision, alert_state.match_revision)",
            (
                state.theatre_id,
                state.level,
                to_iso(state.level_since),
                json.dumps([[key, to_iso(at)] for key, at in state.last_sent]),
                match_revision,
            ),
        )

    def insert_alert(
        self, decision: AlertDecision, *, score_id: int | None = None, feed_id: str | None = None
    ) -> int | None:
        """Record an alert once: a dedup key already present returns None."""
        cursor = self.conn.execute(
            "INSERT INTO alerts (dedup_key, kind, theatre_id, feed_id, created_at, urgent, level, "
            "previous_level, score, change_24h, reason, match_ids, score_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(dedup_key) DO NOTHING",
            (
                decision.dedup_key,
                decision.kind,
                decision.theatre_id,
                feed_id,
                to_iso(decision.created_at),
                int(decision.urgent),
                decision.level,
                decision.previous_level,
                _round(decision.index),
                _round(decision.change_24h),
                decision.reason,
                json.dumps(list(decision.match_ids)),
                score_id,
            ),
        )
        if cursor.rowcount == 0:
            return None
        return int(cursor.lastrowid or 0)

    def enqueue(
        self,
        alert_id: int,
        *,
        message_id: str,
        recipients: Sequence[str],
        subject: str,
        message: bytes,
        now: datetime,
        not_before: datetime | None = None,
        dead_reason: str | None = None,
    ) -> int:
        status = "dead" if dead_reason else "pending"
        cursor = self.conn.execute(
            "INSERT INTO outbox (alert_id, message_id, recipients, subject, message, status, "
            "attempts, not_before, next_attempt_at, last_error, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            (
                alert_id,
                message_id,
                json.dumps(list(recipients)),
                subject,
                message,
                status,
                _opt_iso(not_before),
                to_iso(not_before or now),
                dead_reason,
                to_iso(now),
            ),
        )
        return int(cursor.lastrowid or 0)

    def due_outbox(self, *, now: datetime, limit: int = 50) -> list[OutboxItem]:
        rows = self.conn.execute(
            "SELECT id, alert_id, message_id, recipients, subject, message, attempts FROM outbox "
            "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
            (to_iso(now), limit),
        ).fetchall()
        return [
            OutboxItem(
                id=row[0],
                alert_id=row[1],
                message_id=row[2],
                recipients=tuple(json.loads(row[3] or "[]")),
                subject=row[4] or "",
                message=bytes(row[5] or b""),
                attempts=row[6],
            )
            for row in rows
        ]

    def mark_sent(self, outbox_id: int, *, now: datetime) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, "
                "last_error = NULL WHERE id = ?",
                (to_iso(now), outbox_id),
            )

    def mark_retry(self, outbox_id: int, *, error: str, next_attempt_at: datetime) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE id = ?",
                (error, to_iso(next_attempt_at), outbox_id),
            )

    def mark_dead(self, outbox_id: int, *, error: str) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ? "
                "WHERE id = ?",
                (error, outbox_id),
            )

    def outbox_counts(self) -> dict[str, int]:
        return {
            str(status): int(count)
            for status, count in self.conn.execute(
                "SELECT status, count(*) FROM outbox GROUP BY status"
            )
        }

    def held_alerts(self, *, after_id: int) -> list[dict[str, Any]]:
        """Non-urgent alerts recorded after alert `after_id` (for the digest), oldest first."""
        return self._rows(
            "SELECT * FROM alerts WHERE urgent = 0 AND kind != 'digest' AND id > ? ORDER BY id",
            [after_id],
        )

    def last_alert_id(self) -> int:
        row = self.conn.execute("SELECT max(id) FROM alerts").fetchone()
        return int(row[0] or 0)
