"""Feeds and their poll state: what is due, what the last poll left (ETag, failures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.models import (
    Feed,
    FeedState,
    FetchResult,
    ParseResult,
    to_iso,
)

if TYPE_CHECKING:
    pass

from monitor.db.base import StoreBase, _opt_dt, _opt_iso


def _feed_state(row: Mapping[str, Any]) -> FeedState:
    return FeedState(
        feed_id=row["id"],
        url=row["url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        next_check_at=_opt_dt(row["next_check_at"]),
        consecutive_failures=row["consecutive_failures"] or 0,
        failing_since=_opt_dt(row["failing_since"]),
        disabled=bool(row["disabled"]),
        configured_url=row["configured_url"],
    )


class FeedStore(StoreBase):
    """Feeds and their poll state: what is due, what the last poll left (ETag, failures)."""

    def sync_feeds(self, feeds: Sequence[Feed], *, now: datetime) -> None:
        """Make the feeds table match the configuration (new feeds are due at once)."""
        with self.transaction():
            self.conn.execute("UPDATE feeds SET configured = 0")
            for feed in feeds:
                row = self.conn.execute(
                    "SELECT configured_url FROM feeds WHERE id = ?", (feed.id,)
                ).fetchone()
                if row is None:
                    self.conn.execute(
                        "INSERT INTO feeds (id, name, configured_url, url, configured, "
                        "source_weight, next_check_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                        (feed.id, feed.name, feed.url, feed.url, feed.source_weight, to_iso(now)),
                    )
                elif row[0] != feed.url:
                    # The user changed the address: start afresh on the new one.
                    self.conn.execute(
                        "UPDATE feeds SET name = ?, configured_url = ?, url = ?, configured = 1, "
                        "source_weight = ?, etag = NULL, last_modified = NULL, disabled = 0, "
                        "consecutive_failures = 0, failing_since = NULL, next_check_at = ? "
                        "WHERE id = ?",
                        (feed.name, feed.url, feed.url, feed.source_weight, to_iso(now), feed.id),
                    )
                else:
                    self.conn.execute(
                        "UPDATE feeds SET name = ?, configured = 1, source_weight = ? WHERE id = ?",
                        (feed.name, feed.source_weight, feed.id),
                    )

    def due_feeds(self, *, now: datetime, limit: int | None = None) -> list[FeedState]:
        sql = (
            "SELECT * FROM feeds WHERE configured = 1 AND disabled = 0 "
            "AND (next_check_at IS NULL OR next_check_at <= ?) ORDER BY next_check_at, id"
        )
        params: list[Any] = [to_iso(now)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_feed_state(row) for row in self._rows(sql, params)]

    def make_due(self, feed_id: str, *, now: datetime) -> None:
        """Bring a feed's next check forward to `now` (the demo's clock, `monitor poll-now`)."""
        with self.transaction():
            self.conn.execute(
                "UPDATE feeds SET next_check_at = ? WHERE id = ? AND disabled = 0",
                (to_iso(now), feed_id),
            )

    def feed_state(self, feed_id: str) -> FeedState | None:
        rows = self._rows("SELECT * FROM feeds WHERE id = ?", [feed_id])
        return _feed_state(rows[0]) if rows else None

    def next_feed_check(self) -> datetime | None:
        row = self.conn.execute(
            "SELECT min(next_check_at) FROM feeds WHERE configured = 1 AND disabled = 0"
        ).fetchone()
        return _opt_dt(row[0])

    def record_poll(
        self,
        new_state: FeedState,
        result: FetchResult,
        parsed: ParseResult | None,
        *,
        entries_seen: int,
    ) -> None:
        """Persist the outcome of one poll (call inside the poll's transaction).

        `last_error_*` hold the last failure, or this poll's warning: a clean poll (200
        without a warning, or 304) clears a warning the previous poll left, so the feed
        shows what this poll found, while a past failure stays on record.
        (`last_status` in the statement is the previous poll's: SQLite reads the old row.)

        The stored URL changes only for a permanent redirect, and only while the configured
        URL is the one the poll started from: a reload (SIGHUP) that corrects the address
        while this fetch is in flight has already set the feed up afresh (`sync_feeds`), and
        the old address's answer must not overwrite that, then or after a restart.
        """
        if new_state.configured_url is not None:
            row = self.conn.execute(
                "SELECT configured_url FROM feeds WHERE id = ?", (new_state.feed_id,)
            ).fetchone()
            if row is not None and row[0] != new_state.configured_url:
                self.conn.execute(
                    "UPDATE feeds SET polls = polls + 1, entries_seen = entries_seen + ? "
                    "WHERE id = ?",
                    (entries_seen, new_state.feed_id),
                )
                return
        moved_to = (
            result.permanent_url
            if result.permanent_url and new_state.url == result.permanent_url
            else None
        )
        error_kind = result.error_kind
        error_message = result.error_message
        status: str = result.outcome
        if parsed is not None and parsed.status == "error":
            status, error_kind, error_message = "error", parsed.error_kind, parsed.message
        elif parsed is not None and parsed.status == "warning":
            status = "warning"
            error_kind, error_message = parsed.error_kind, parsed.message
        failed = status in ("error", "gone")
        at = to_iso(result.fetched_at)
        self.conn.execute(
            """
            UPDATE feeds SET url = coalesce(?, url), etag = ?, last_modified = ?, next_check_at = ?,
                consecutive_failures = ?, failing_since = ?, disabled = ?,
                last_status = ?, last_http_status = ?, last_polled_at = ?,
                last_success_at = CASE WHEN ? THEN last_success_at ELSE ? END,
                last_error_at = CASE WHEN ? OR ? = 'warning' THEN ?
                    WHEN last_status = 'warning' THEN NULL ELSE last_error_at END,
                last_error_kind = CASE WHEN ? OR ? = 'warning' THEN ?
                    WHEN last_status = 'warning' THEN NULL ELSE last_error_kind END,
                last_error_message = CASE WHEN ? OR ? = 'warning' THEN ?
                    WHEN last_status = 'warning' THEN NULL ELSE last_error_message END,
                polls = polls + 1,
                not_modified_polls = not_modified_polls + ?,
                entries_seen = entries_seen + ?
            WHERE id = ?
            """,
            (
                moved_to,
                new_state.etag,
                new_state.last_modified,
                _opt_iso(new_state.next_check_at),
                new_state.consecutive_failures,
                _opt_iso(new_state.failing_since),
                int(new_state.disabled),
                status,
                result.http_status,
                at,
                failed,
                at,
                failed,
                status,
                at,
                failed,
                status,
                error_kind,
                failed,
                status,
                error_message,
                int(result.outcome == "not_modified"),
                entries_seen,
                new_state.feed_id,
            ),
        )

    def feed_last_error(self, feed_id: str) -> str:
        row = self.conn.execute(
            "SELECT last_error_kind, last_error_message FROM feeds WHERE id = ?", (feed_id,)
        ).fetchone()
        if row is None or not row[0]:
            return ""
        return f"{row[0]}: {row[1] or ''}".strip()

    def feed_down_notified(self, feed_id: str) -> bool:
        row = self.conn.execute(
            "SELECT down_notified FROM feeds WHERE id = ?", (feed_id,)
        ).fetchone()
        return bool(row and row[0])

    def set_feed_down_notified(self, feed_id: str, notified: bool) -> None:
        self.conn.execute(
            "UPDATE feeds SET down_notified = ? WHERE id = ?", (int(notified), feed_id)
        )

    def feeds_report(self) -> list[dict[str, Any]]:
        return self._rows(
            """
            SELECT id, name, url, configured, disabled, last_status, last_http_status,
                   last_success_at, last_error_at, last_error_kind, last_error_message,
                   consecutive_failures, failing_since, next_check_at, polls,
                   not_modified_polls, entries_seen, down_notified
            FROM feeds ORDER BY configured DESC, id
            """
        )
