"""The state database: schema, migrations and every query. The only module that writes SQL.

One SQLite file through sqlite-utils, in WAL mode with `synchronous=FULL` (an alert
that was committed survives a crash or a kill -9), a busy timeout, and `BEGIN IMMEDIATE`
for every read-modify-write transaction. Migrations are append-only: a new schema change
is a new function at the end of `MIGRATIONS`, never an edit of an old one.

Readers (the CLI) open the file read-only (`mode=ro`), so they can neither block the
daemon for long nor change anything.

Times are stored as fixed-width UTC text (`2024-09-14T08:30:00Z`), so text order is time
order and the file is readable in the sqlite3 shell or Datasette.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from monitor.errors import DatabaseError
from monitor.models import (
    AlertDecision,
    AlertState,
    Entry,
    Feed,
    FeedState,
    FetchResult,
    Indicator,
    Match,
    ParseResult,
    ScoredMatch,
    ScorePoint,
    from_iso,
    to_iso,
)
from monitor.stories import is_same_story

BUSY_TIMEOUT_MS = 10_000
STORY_WINDOW_DAYS = 3


def _opt_iso(value: datetime | None) -> str | None:
    return None if value is None else to_iso(value)


def _opt_dt(value: str | None) -> datetime | None:
    return None if not value else from_iso(value)


# ---------------------------------------------------------------------------
# Migrations (append-only)


def _migration_1_initial(db: sqlite_utils.Database) -> None:
    db.table("feeds").create(
        {
            "id": str,
            "name": str,
            "configured_url": str,
            "url": str,
            "configured": int,
            "source_weight": float,
            "etag": str,
            "last_modified": str,
            "next_check_at": str,
            "consecutive_failures": int,
            "failing_since": str,
            "disabled": int,
            "down_notified": int,
            "last_status": str,
            "last_http_status": int,
            "last_polled_at": str,
            "last_success_at": str,
            "last_error_at": str,
            "last_error_kind": str,
            "last_error_message": str,
            "polls": int,
            "not_modified_polls": int,
            "entries_seen": int,
        },
        pk="id",
        not_null=["url", "configured_url"],
        defaults={
            "configured": 1,
            "source_weight": 1.0,
            "consecutive_failures": 0,
            "disabled": 0,
            "down_notified": 0,
            "polls": 0,
            "not_modified_polls": 0,
            "entries_seen": 0,
        },
    )
    db.table("stories").create(
        {
            "id": int,
            "first_seen_at": str,
            "published_at": str,
            "title": str,
            "language": str,
            "canonical_url": str,
            "sources": int,
            "source_weight": float,
        },
        pk="id",
        not_null=["first_seen_at", "title"],
        defaults={"sources": 1, "source_weight": 1.0},
    )
    db.table("stories").create_index(["canonical_url"])
    db.table("stories").create_index(["published_at"])
    db.table("articles").create(
        {
            "id": int,
            "feed_id": str,
            "entry_id": str,
            "story_id": int,
            "outlet": str,
            "url": str,
            "title": str,
            "summary": str,
            "language": str,
            "published_at": str,
            "first_seen_at": str,
            "updated_at": str,
            "content_hash": str,
        },
        pk="id",
        foreign_keys=[("feed_id", "feeds", "id"), ("story_id", "stories", "id")],
        not_null=["feed_id", "entry_id", "title", "first_seen_at"],
    )
    db.table("articles").create_index(["feed_id", "entry_id"], unique=True)
    db.table("articles").create_index(["story_id"])
    db.table("articles").create_index(["published_at"])
    db.table("articles").enable_fts(["title", "summary"], create_triggers=True, tokenize="unicode61")
    db.table("matches").create(
        {
            "id": int,
            "article_id": int,
            "story_id": int,
            "indicator_id": str,
            "theatre_id": str,
            "confidence": float,
            "evidence": str,
            "terms": str,
            "qualifiers": str,
            "occurred_at": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("article_id", "articles", "id"), ("story_id", "stories", "id")],
        not_null=["article_id", "story_id", "indicator_id", "theatre_id", "occurred_at"],
    )
    db.table("matches").create_index(["article_id", "indicator_id", "theatre_id"], unique=True)
    db.table("matches").create_index(["theatre_id", "occurred_at"])
    db.table("matches").create_index(["indicator_id", "occurred_at"])
    db.table("scores").create(
        {
            "id": int,
            "theatre_id": str,
            "at": str,
            "score": float,
            "level": str,
            "raw": float,
            "change_24h": float,
            "change_7d": float,
            "baseline": float,
            "surge": float,
            "stories": int,
            "methodology_version": str,
        },
        pk="id",
        not_null=["theatre_id", "at", "score", "level", "methodology_version"],
    )
    db.table("scores").create_index(["theatre_id", "at"], unique=True)
    db.table("score_contributions").create(
        {"score_id": int, "match_id": int, "story_id": int, "indicator_id": str, "points": float},
        pk=("score_id", "match_id"),
        foreign_keys=[
            ("score_id", "scores", "id"),
            ("match_id", "matches", "id"),
            ("story_id", "stories", "id"),
        ],
    )
    db.table("alert_state").create(
        {"theatre_id": str, "level": str, "level_since": str, "last_sent": str},
        pk="theatre_id",
    )
    db.table("alerts").create(
        {
            "id": int,
            "dedup_key": str,
            "kind": str,
            "theatre_id": str,
            "feed_id": str,
            "created_at": str,
            "urgent": int,
            "level": str,
            "previous_level": str,
            "score": float,
            "change_24h": float,
            "reason": str,
            "match_ids": str,
            "score_id": int,
        },
        pk="id",
        foreign_keys=[("score_id", "scores", "id")],
        not_null=["dedup_key", "kind", "created_at"],
    )
    db.table("alerts").create_index(["dedup_key"], unique=True)
    db.table("alerts").create_index(["theatre_id", "created_at"])
    db.table("alerts").create_index(["created_at"])
    db.table("outbox").create(
        {
            "id": int,
            "alert_id": int,
            "message_id": str,
            "recipients": str,
            "subject": str,
            "message": bytes,
            "status": str,
            "attempts": int,
            "not_before": str,
            "next_attempt_at": str,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
        },
        pk="id",
        foreign_keys=[("alert_id", "alerts", "id")],
        not_null=["alert_id", "message_id", "status", "created_at"],
        defaults={"status": "pending", "attempts": 0},
    )
    db.table("outbox").create_index(["alert_id"], unique=True)
    db.table("outbox").create_index(["status", "next_attempt_at"])
    db.table("runs").create(
        {
            "id": int,
            "job": str,
            "started_at": str,
            "finished_at": str,
            "ok": int,
            "summary": str,
            "error": str,
        },
        pk="id",
    )
    db.table("runs").create_index(["job", "finished_at"])
    db.table("meta").create({"key": str, "value": str}, pk="key")
    _create_views(db)


def _create_views(db: sqlite_utils.Database) -> None:
    db.create_view(
        "daily_scores",
        """
        SELECT theatre_id, substr(at, 1, 10) AS day, count(*) AS points,
               round(min(score), 1) AS min_score, round(avg(score), 1) AS avg_score,
               round(max(score), 1) AS max_score,
               (SELECT s2.level FROM scores s2 WHERE s2.theatre_id = s.theatre_id
                  AND substr(s2.at, 1, 10) = substr(s.at, 1, 10)
                ORDER BY s2.at DESC LIMIT 1) AS last_level
        FROM scores s GROUP BY theatre_id, substr(at, 1, 10)
        """,
        replace=True,
    )
    db.create_view(
        "latest_scores",
        """
        SELECT s.* FROM scores s
        JOIN (SELECT theatre_id, max(at) AS at FROM scores GROUP BY theatre_id) last
          ON last.theatre_id = s.theatre_id AND last.at = s.at
        """,
        replace=True,
    )
    db.create_view(
        "evidence",
        """
        SELECT c.score_id, s.theatre_id, s.at AS score_at, c.points, m.indicator_id,
               m.confidence, m.evidence, a.title, a.outlet, a.url, a.published_at,
               st.sources
        FROM score_contributions c
        JOIN scores s ON s.id = c.score_id
        JOIN matches m ON m.id = c.match_id
        JOIN articles a ON a.id = m.article_id
        JOIN stories st ON st.id = c.story_id
        """,
        replace=True,
    )
    db.create_view(
        "alert_log",
        """
        SELECT al.id, al.created_at, al.kind, al.theatre_id, al.level, al.score, al.reason,
               o.status AS delivery, o.attempts, o.sent_at, o.last_error, o.subject
        FROM alerts al LEFT JOIN outbox o ON o.alert_id = al.id
        """,
        replace=True,
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_migration_1_initial,)
SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------------------
# Records returned by queries


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article that is new, or whose text changed, and so needs matching."""

    article_id: int
    story_id: int
    feed_id: str
    title: str
    summary: str
    language: str
    published_at: datetime
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert_id: int
    message_id: str
    recipients: tuple[str, ...]
    subject: str
    message: bytes
    attempts: int


# ---------------------------------------------------------------------------
# Opening


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the file with our settings. Read-only connections cannot write anything."""
    target = Path(path)
    try:
        if readonly:
            if not target.exists():
                raise DatabaseError(
                    f"{target}: no database here yet (run `monitor run` or `monitor demo` first)"
                )
            conn = _connect_readonly(target)
        else:
            if target.parent and not target.parent.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(target), isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.Error as exc:
        raise DatabaseError(f"{target}: cannot open the database: {exc}") from exc
    except OSError as exc:
        raise DatabaseError(f"{target}: cannot open the database: {exc.strerror}") from exc


class Store:
    """The daemon's (and the CLI's) handle on the database."""

    def __init__(self, conn: sqlite3.Connection, *, path: str | Path = "", readonly: bool = False):
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.path = str(path)
        self.readonly = readonly

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, migrate: bool = True) -> Store:
        store = cls(connect(path, readonly=readonly), path=path, readonly=readonly)
        if not readonly and migrate:
            store.migrate()
        elif readonly:
            store.check_schema()
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------

    def schema_version(self) -> int:
        if not self.db.table("schema_migrations").exists():
            return 0
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def check_schema(self) -> None:
        version = self.schema_version()
        if version == 0:
            raise DatabaseError(f"{self.path}: not a monitor database (no schema)")
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.path}: schema version {version} is newer than this monitor "
                f"understands ({SCHEMA_VERSION}); upgrade monitor"
            )

    def migrate(self) -> int:
        """Apply the migrations this file lacks, each in its own transaction."""
        try:
            with self.transaction():
                if not self.db.table("schema_migrations").exists():
                    self.db.table("schema_migrations").create(
                        {"version": int, "applied_at": str}, pk="version"
                    )
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                self.check_schema()
            for version in range(current + 1, SCHEMA_VERSION + 1):
                with self.transaction():
                    MIGRATIONS[version - 1](self.db)
                    self.db.table("schema_migrations").insert(
                        {"version": version, "applied_at": to_iso(datetime.now().astimezone())}
                    )
            return SCHEMA_VERSION
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.path}: cannot migrate the database: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE`: take the write lock up front, so no later upgrade can fail."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def ping(self) -> bool:
        try:
            self.conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    # -- meta ----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- feeds ---------------------------------------------------------------

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
        """Persist the outcome of one poll (call inside the poll's transaction)."""
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
            UPDATE feeds SET url = ?, etag = ?, last_modified = ?, next_check_at = ?,
                consecutive_failures = ?, failing_since = ?, disabled = ?,
                last_status = ?, last_http_status = ?, last_polled_at = ?,
                last_success_at = CASE WHEN ? THEN last_success_at ELSE ? END,
                last_error_at = CASE WHEN ? OR ? = 'warning' THEN ? ELSE last_error_at END,
                last_error_kind = CASE WHEN ? OR ? = 'warning' THEN ? ELSE last_error_kind END,
                last_error_message = CASE WHEN ? OR ? = 'warning' THEN ? ELSE last_error_message END,
                polls = polls + 1,
                not_modified_polls = not_modified_polls + ?,
                entries_seen = entries_seen + ?
            WHERE id = ?
            """,
            (
                new_state.url,
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

    # -- articles and stories --------------------------------------------------

    def store_entries(
        self, feed: Feed, entries: Sequence[Entry], *, now: datetime
    ) -> list[StoredArticle]:
        """Insert unseen entries (and update changed ones); return those that need matching.

        An entry is known by (feed, entry_id). A new one joins an existing story when it
        has the same canonical URL, or a near-identical title in the same language within
        a few days; otherwise it starts a story. Call inside a transaction.
        """
        fresh: list[StoredArticle] = []
        for entry in entries:
            row = self.conn.execute(
                "SELECT id, story_id, content_hash, first_seen_at FROM articles "
                "WHERE feed_id = ? AND entry_id = ?",
                (feed.id, entry.entry_id),
            ).fetchone()
            if row is not None:
                article_id, story_id, content_hash, first_seen = row
                if content_hash == entry.content_hash:
                    continue
                self.conn.execute(
                    "UPDATE articles SET title = ?, summary = ?, url = ?, language = ?, "
                    "updated_at = ?, content_hash = ? WHERE id = ?",
                    (
                        entry.title,
                        entry.summary,
                        entry.url,
                        entry.language,
                        to_iso(now),
                        entry.content_hash,
                        article_id,
                    ),
                )
                fresh.append(_stored(article_id, story_id, feed.id, entry, from_iso(first_seen)))
                continue
            story_id = self._story_for(feed, entry, now=now)
            cursor = self.conn.execute(
                "INSERT INTO articles (feed_id, entry_id, story_id, outlet, url, title, summary, "
                "language, published_at, first_seen_at, updated_at, content_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    feed.id,
                    entry.entry_id,
                    story_id,
                    feed.name,
                    entry.url,
                    entry.title,
                    entry.summary,
                    entry.language,
                    to_iso(entry.published_at),
                    to_iso(now),
                    to_iso(now),
                    entry.content_hash,
                ),
            )
            article_id = int(cursor.lastrowid or 0)
            self._refresh_story_sources(story_id)
            fresh.append(_stored(article_id, story_id, feed.id, entry, now))
        return fresh

    def _story_for(self, feed: Feed, entry: Entry, *, now: datetime) -> int:
        from monitor.parser import canonical_url

        canonical = canonical_url(entry.url) if entry.url else None
        if canonical:
            row = self.conn.execute(
                "SELECT id FROM stories WHERE canonical_url = ? ORDER BY id LIMIT 1", (canonical,)
            ).fetchone()
            if row is not None:
                return int(row[0])
        low = to_iso(entry.published_at - timedelta(days=STORY_WINDOW_DAYS))
        high = to_iso(entry.published_at + timedelta(days=STORY_WINDOW_DAYS))
        for story_id, title, language, published in self.conn.execute(
            "SELECT id, title, language, published_at FROM stories "
            "WHERE published_at BETWEEN ? AND ? AND language = ? ORDER BY published_at DESC",
            (low, high, entry.language),
        ):
            if is_same_story(
                entry.title,
                entry.language,
                entry.published_at,
                title,
                language,
                from_iso(published),
                window_days=STORY_WINDOW_DAYS,
            ):
                return int(story_id)
        cursor = self.conn.execute(
            "INSERT INTO stories (first_seen_at, published_at, title, language, canonical_url, "
            "sources, source_weight) VALUES (?, ?, ?, ?, ?, 1, ?)",
            (
                to_iso(now),
                to_iso(entry.published_at),
                entry.title,
                entry.language,
                canonical,
                feed.source_weight,
            ),
        )
        return int(cursor.lastrowid or 0)

    def _refresh_story_sources(self, story_id: int) -> None:
        self.conn.execute(
            """
            UPDATE stories SET
              sources = (SELECT count(DISTINCT coalesce(a.outlet, a.feed_id)) FROM articles a
                         WHERE a.story_id = stories.id),
              source_weight = (SELECT max(f.source_weight) FROM articles a
                               JOIN feeds f ON f.id = a.feed_id WHERE a.story_id = stories.id)
            WHERE id = ?
            """,
            (story_id,),
        )

    # -- matches ---------------------------------------------------------------

    def store_matches(
        self, article: StoredArticle, matches: Sequence[Match], *, now: datetime
    ) -> list[int]:
        """Record an article's matches; earlier matches it no longer has are withdrawn."""
        occurred = min(article.published_at, article.first_seen_at)
        ids: list[int] = []
        keys = set()
        for match in matches:
            keys.add((match.indicator_id, match.theatre_id))
            self.conn.execute(
                """
                INSERT INTO matches (article_id, story_id, indicator_id, theatre_id, confidence,
                    evidence, terms, qualifiers, occurred_at, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(article_id, indicator_id, theatre_id) DO UPDATE SET
                    confidence = excluded.confidence, evidence = excluded.evidence,
                    terms = excluded.terms, qualifiers = excluded.qualifiers
                """,
                (
                    article.article_id,
                    article.story_id,
                    match.indicator_id,
                    match.theatre_id,
                    match.confidence,
                    match.evidence,
                    json.dumps(list(match.terms), ensure_ascii=False),
                    json.dumps(list(match.qualifiers), ensure_ascii=False),
                    to_iso(occurred),
                    to_iso(now),
                ),
            )
            row = self.conn.execute(
                "SELECT id FROM matches WHERE article_id = ? AND indicator_id = ? AND theatre_id = ?",
                (article.article_id, match.indicator_id, match.theatre_id),
            ).fetchone()
            ids.append(int(row[0]))
        for match_id, indicator_id, theatre_id in self.conn.execute(
            "SELECT id, indicator_id, theatre_id FROM matches WHERE article_id = ?",
            (article.article_id,),
        ).fetchall():
            if (indicator_id, theatre_id) not in keys:
                self.conn.execute(
                    "UPDATE matches SET confidence = 0, qualifiers = ? WHERE id = ?",
                    (json.dumps(["withdrawn: no longer in the updated article"]), match_id),
                )
        return ids

    def scored_matches(
        self,
        theatre_id: str,
        *,
        since: datetime,
        until: datetime,
        indicators: Mapping[str, Indicator],
        created_before: datetime | None = None,
    ) -> list[ScoredMatch]:
        """Matches of a theatre that occurred in [since, until], joined with their story."""
        sql = """
            SELECT m.id, m.story_id, m.article_id, m.indicator_id, m.theatre_id, m.confidence,
                   m.occurred_at, m.evidence, a.title, a.outlet, a.url,
                   st.sources, st.source_weight
            FROM matches m
            JOIN articles a ON a.id = m.article_id
            JOIN stories st ON st.id = m.story_id
            WHERE m.theatre_id = ? AND m.occurred_at BETWEEN ? AND ? AND m.confidence > 0
        """
        params: list[Any] = [theatre_id, to_iso(since), to_iso(until)]
        if created_before is not None:
            sql += " AND m.created_at <= ?"
            params.append(to_iso(created_before))
        result: list[ScoredMatch] = []
        for row in self.conn.execute(sql, params):
            indicator = indicators.get(row[3])
            if indicator is None:
                continue  # an indicator removed from the configuration no longer counts
            result.append(
                ScoredMatch(
                    match_id=row[0],
                    story_id=row[1],
                    article_id=row[2],
                    indicator_id=row[3],
                    theatre_id=row[4],
                    weight=indicator.weight,
                    confidence=row[5],
                    source_weight=row[12] if row[12] is not None else 1.0,
                    sources=row[11] or 1,
                    occurred_at=from_iso(row[6]),
                    half_life_hours=indicator.half_life_hours,
                    title=row[8],
                    outlet=row[9] or "",
                    url=row[10],
                    evidence=row[7] or "",
                )
            )
        return result

    def matches_created_between(
        self, theatre_id: str, *, after: datetime | None, until: datetime
    ) -> set[int]:
        sql = "SELECT id FROM matches WHERE theatre_id = ? AND created_at <= ?"
        params: list[Any] = [theatre_id, to_iso(until)]
        if after is not None:
            sql += " AND created_at > ?"
            params.append(to_iso(after))
        return {int(row[0]) for row in self.conn.execute(sql, params)}

    # -- scores --------------------------------------------------------------

    def last_score(self, theatre_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT * FROM scores WHERE theatre_id = ? ORDER BY at DESC LIMIT 1", [theatre_id]
        )
        return rows[0] if rows else None

    def score_series(
        self, theatre_id: str, *, since: datetime, until: datetime
    ) -> list[tuple[datetime, float]]:
        return [
            (from_iso(at), float(score))
            for at, score in self.conn.execute(
                "SELECT at, score FROM scores WHERE theatre_id = ? AND at BETWEEN ? AND ? "
                "ORDER BY at",
                (theatre_id, to_iso(since), to_iso(until)),
            )
        ]

    def insert_score(self, point: ScorePoint) -> int:
        """Store a score point and the contributions that explain it (inside a transaction)."""
        stories = len({c.story_id for c in point.contributions})
        cursor = self.conn.execute(
            "INSERT INTO scores (theatre_id, at, score, level, raw, change_24h, change_7d, "
            "baseline, surge, stories, methodology_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(theatre_id, at) DO NOTHING",
            (
                point.theatre_id,
                to_iso(point.at),
                round(point.index, 3),
                point.level,
                round(point.raw, 4),
                _round(point.change_24h),
                _round(point.change_7d),
                _round(point.baseline),
                _round(point.surge),
                stories,
                point.methodology_version,
            ),
        )
        if cursor.rowcount == 0:
            row = self.conn.execute(
                "SELECT id FROM scores WHERE theatre_id = ? AND at = ?",
                (point.theatre_id, to_iso(point.at)),
            ).fetchone()
            return int(row[0])
        score_id = int(cursor.lastrowid or 0)
        self.conn.executemany(
            "INSERT INTO score_contributions (score_id, match_id, story_id, indicator_id, points) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (score_id, c.match_id, c.story_id, c.indicator_id, round(c.points, 4))
                for c in point.contributions
            ],
        )
        return score_id

    # -- alert state, alerts, outbox -------------------------------------------

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

    def save_alert_state(self, state: AlertState) -> None:
        self.conn.execute(
            "INSERT INTO alert_state (theatre_id, level, level_since, last_sent) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(theatre_id) DO UPDATE SET level = excluded.level, "
            "level_since = excluded.level_since, last_sent = excluded.last_sent",
            (
                state.theatre_id,
                state.level,
                to_iso(state.level_since),
                json.dumps([[key, to_iso(at)] for key, at in state.last_sent]),
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

    def last_alert_at(self, kind: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT max(created_at) FROM alerts WHERE kind = ?", (kind,)
        ).fetchone()
        return _opt_dt(row[0])

    def alerts_since(self, since: datetime, *, until: datetime) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT * FROM alerts WHERE created_at > ? AND created_at <= ? ORDER BY created_at",
            [to_iso(since), to_iso(until)],
        )

    def held_alerts(self, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Non-urgent alerts of the period (for the digest)."""
        return self._rows(
            "SELECT * FROM alerts WHERE urgent = 0 AND kind != 'digest' "
            "AND created_at > ? AND created_at <= ? ORDER BY created_at",
            [to_iso(since), to_iso(until)],
        )

    # -- evidence for emails and `explain` --------------------------------------

    def contributions(self, score_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
        sql = """
            SELECT c.points, c.indicator_id, c.story_id, c.match_id, m.evidence, m.confidence,
                   m.qualifiers, a.title, a.outlet, a.url, a.published_at, st.sources
            FROM score_contributions c
            JOIN matches m ON m.id = c.match_id
            JOIN articles a ON a.id = m.article_id
            JOIN stories st ON st.id = c.story_id
            WHERE c.score_id = ? ORDER BY abs(c.points) DESC, c.match_id
        """
        params: list[Any] = [score_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._rows(sql, params)

    def match_details(self, match_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not match_ids:
            return []
        marks = ",".join("?" for _ in match_ids)
        return self._rows(
            f"""
            SELECT m.id AS match_id, m.indicator_id, m.evidence, m.confidence, a.title, a.outlet,
                   a.url, a.published_at, st.sources
            FROM matches m JOIN articles a ON a.id = m.article_id
            JOIN stories st ON st.id = m.story_id
            WHERE m.id IN ({marks}) ORDER BY m.id
            """,
            list(match_ids),
        )

    def score_at(self, theatre_id: str, at: datetime | None) -> dict[str, Any] | None:
        if at is None:
            return self.last_score(theatre_id)
        rows = self._rows(
            "SELECT * FROM scores WHERE theatre_id = ? AND at <= ? ORDER BY at DESC LIMIT 1",
            [theatre_id, to_iso(at)],
        )
        return rows[0] if rows else None

    # -- runs (job log for `monitor status`) ------------------------------------

    def record_run(
        self,
        job: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        ok: bool,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO runs (job, started_at, finished_at, ok, summary, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job,
                    to_iso(started_at),
                    to_iso(finished_at),
                    int(ok),
                    json.dumps(dict(summary or {}), ensure_ascii=False, default=str),
                    error,
                ),
            )

    def prune_runs(self, *, keep_per_job: int = 1000) -> int:
        with self.transaction():
            cursor = self.conn.execute(
                """
                DELETE FROM runs WHERE id IN (
                  SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY job ORDER BY id DESC) AS n FROM runs
                  ) WHERE n > ?
                )
                """,
                (keep_per_job,),
            )
            return cursor.rowcount

    def last_runs(self) -> list[dict[str, Any]]:
        return self._rows(
            """
            SELECT r.* FROM runs r JOIN (SELECT job, max(id) AS id FROM runs GROUP BY job) l
            ON l.id = r.id ORDER BY r.job
            """
        )

    # -- helpers -------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query (used by the query layer; SQL still lives in this module)."""
        return self._rows(sql, params)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


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
    )


def _stored(
    article_id: int, story_id: int, feed_id: str, entry: Entry, first_seen: datetime
) -> StoredArticle:
    return StoredArticle(
        article_id=article_id,
        story_id=story_id,
        feed_id=feed_id,
        title=entry.title,
        summary=entry.summary,
        language=entry.language,
        published_at=entry.published_at,
        first_seen_at=first_seen,
    )


# ---------------------------------------------------------------------------
# Read queries for the CLI (`monitor history`, `alerts`, `articles`, `status`)

HISTORY_BUCKETS = {
    "1h": "substr(at, 1, 13) || ':00:00Z'",
    "1d": "substr(at, 1, 10) || 'T00:00:00Z'",
    # Weeks start on Monday: step back 6 days, then forward to the next Monday (a Monday
    # stays in its own week).
    "1w": "date(substr(at, 1, 10), '-6 days', 'weekday 1') || 'T00:00:00Z'",
}


def history_rows(
    store: Store,
    *,
    theatre_id: str | None,
    since: datetime,
    until: datetime,
    every: str | None = None,
) -> list[dict[str, Any]]:
    """Score points in [since, until]; with `every`, one row per bucket (its peak score and
    the level at the bucket's end), so a year of 15-minute points reads as 365 days."""
    where = "at BETWEEN ? AND ?"
    params: list[Any] = [to_iso(since), to_iso(until)]
    if theatre_id is not None:
        where += " AND theatre_id = ?"
        params.append(theatre_id)
    if every is None:
        return store.query(
            f"SELECT theatre_id, at, score, level, change_24h, change_7d, baseline, surge, stories, "
            f"methodology_version FROM scores WHERE {where} ORDER BY theatre_id, at",
            params,
        )
    bucket = HISTORY_BUCKETS[every]
    return store.query(
        f"""
        WITH b AS (
          SELECT theatre_id, {bucket} AS bucket, at, score, level, stories,
                 row_number() OVER (PARTITION BY theatre_id, {bucket} ORDER BY at DESC) AS n
          FROM scores WHERE {where}
        )
        SELECT theatre_id, bucket AS at, max(score) AS score,
               max(CASE WHEN n = 1 THEN level END) AS level,
               max(stories) AS stories, count(*) AS points
        FROM b GROUP BY theatre_id, bucket ORDER BY theatre_id, bucket
        """,
        params,
    )


def alert_rows(
    store: Store,
    *,
    theatre_id: str | None,
    since: datetime | None,
    status: str | None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if theatre_id is not None:
        clauses.append("al.theatre_id = ?")
        params.append(theatre_id)
    if since is not None:
        clauses.append("al.created_at >= ?")
        params.append(to_iso(since))
    if status is not None:
        clauses.append("coalesce(o.status, 'digest') = ?")
        params.append(status)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    return store.query(
        f"""
        SELECT al.created_at, al.kind, al.theatre_id, al.level, al.score, al.reason,
               coalesce(o.status, CASE WHEN al.urgent THEN 'none' ELSE 'digest' END) AS delivery,
               o.attempts, o.sent_at, o.last_error, o.subject, al.dedup_key
        FROM alerts al LEFT JOIN outbox o ON o.alert_id = al.id
        {where} ORDER BY al.created_at DESC, al.id DESC LIMIT ?
        """,
        params,
    )


def article_rows(
    store: Store,
    *,
    theatre_id: str | None,
    indicator_id: str | None,
    since: datetime | None,
    search: str | None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    joins = ""
    if search:
        joins = "JOIN articles_fts f ON f.rowid = a.id"
        clauses.append("articles_fts MATCH ?")
        params.append(fts_query(search))
    if since is not None:
        clauses.append("a.published_at >= ?")
        params.append(to_iso(since))
    if theatre_id is not None or indicator_id is not None:
        sub = ["mm.article_id = a.id", "mm.confidence >= 0.5"]
        if theatre_id is not None:
            sub.append("mm.theatre_id = ?")
            params.append(theatre_id)
        if indicator_id is not None:
            sub.append("mm.indicator_id = ?")
            params.append(indicator_id)
        clauses.append(f"EXISTS (SELECT 1 FROM matches mm WHERE {' AND '.join(sub)})")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    return store.query(
        f"""
        SELECT a.id, a.published_at, a.outlet, a.title, a.url, a.language,
               (SELECT group_concat(m.theatre_id || ':' || m.indicator_id, ' ')
                  FROM matches m WHERE m.article_id = a.id AND m.confidence >= 0.5) AS indicators
        FROM articles a {joins} {where}
        ORDER BY a.published_at DESC, a.id DESC LIMIT ?
        """,
        params,
    )


def fts_query(text: str) -> str:
    """Quote each word so user text is searched for, never parsed as FTS syntax."""
    words = [w.replace('"', "") for w in text.split()]
    return " ".join(f'"{w}"' for w in words if w)
