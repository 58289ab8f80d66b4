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
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.errors import DatabaseError
from monitor.models import (
    EVENT_CONFIDENCE,
    AlertDecision,
    AlertState,
    Contribution,
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
from monitor.score.stories import (
    CROSS_LANGUAGE_WINDOW_HOURS,
    EventStory,
    StoryTitle,
    choose_event_story,
    choose_story,
    fingerprint_text,
    is_same_fingerprint,
    names_in,
    parse_fingerprint,
    probe_stems,
    title_fingerprint,
)

if TYPE_CHECKING:
    import sqlite_utils

    from monitor.detect.rules import RuleSet

BUSY_TIMEOUT_MS = 10_000
# Evidence kept per score point: the largest contributions, and none too small to matter.
# Storing every decayed match of the window for every 15-minute point would cost ~14 GiB
# a year at 100,000 matches (bench/query.py); this keeps it near 1% of that, and
# `scores.stories` still counts every contributing story.
MAX_STORED_CONTRIBUTIONS = 30
MIN_STORED_POINTS = 0.01
STORY_WINDOW_DAYS = 3
# Stories of one sign in another language that a new event story is compared with, the
# nearest in time first: in a burst (hundreds of reports of one clash within a day and a
# half) the join looks at this many, so each new story costs a bounded time.
CROSS_LANGUAGE_CANDIDATES = 64
NAMES_CACHE_MAX = 50_000  # article texts whose names the cross-language join remembers
STEM_COUNT_CACHE = 200_000  # (language, stem) counts a connection remembers (~20 MB at most)


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
    db.table("articles").enable_fts(
        ["title", "summary"], create_triggers=True, tokenize="unicode61"
    )
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


FEED_HEALTH_SQL = """
    SELECT id, name, url,
           CASE WHEN configured = 0 THEN 'not configured'
                WHEN disabled THEN 'gone'
                WHEN consecutive_failures > 0 THEN 'failing'
                WHEN coalesce(polls, 0) = 0 THEN 'never polled'
                ELSE 'ok' END AS health,
           consecutive_failures, failing_since, last_success_at, last_polled_at,
           last_status, last_http_status,
           CASE WHEN last_error_kind IS NOT NULL
                THEN last_error_kind || ': ' || coalesce(last_error_message, '') END AS last_error,
           last_error_at, next_check_at, polls,
           round(1.0 * not_modified_polls / nullif(polls, 0), 2) AS share_304, entries_seen
    FROM feeds
"""


def _migration_2_query_views(db: sqlite_utils.Database) -> None:
    """Views for people reading the file (sqlite3, Datasette) and indexes for `monitor`'s
    read commands (measured in bench/query.py)."""
    # `monitor history --every 1d`: group a theatre's points by day in index order (and
    # read them from the index alone) instead of sorting a year of points.
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_scores_theatre_id_day "
        "ON scores (theatre_id, substr(at, 1, 10), at, score, stories)"
    )
    # `monitor articles --theatre/--indicator`: the counted matches' article ids straight
    # from an index (no row look-ups to check the confidence).
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_matches_theatre_id_indicator_id_confidence "
        "ON matches (theatre_id, indicator_id, confidence, article_id)"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_matches_indicator_id_confidence "
        "ON matches (indicator_id, confidence, article_id)"
    )
    db.create_view("feed_health", FEED_HEALTH_SQL, replace=True)
    db.create_view(
        "theatre_levels",
        """
        SELECT l.theatre_id, l.at AS score_at, round(l.score, 1) AS score, l.level,
               round(l.change_24h, 1) AS change_24h, l.stories,
               a.level AS alert_level, a.level_since,
               (SELECT max(created_at) FROM alerts al WHERE al.theatre_id = l.theatre_id)
                 AS last_alert_at
        FROM latest_scores l LEFT JOIN alert_state a ON a.theatre_id = l.theatre_id
        """,
        replace=True,
    )
    db.create_view(
        "article_indicators",
        """
        SELECT m.id AS match_id, m.theatre_id, m.indicator_id, round(m.confidence, 2) AS confidence,
               m.confidence >= 0.5 AS counted, m.occurred_at, m.evidence, m.qualifiers,
               a.id AS article_id, a.published_at, a.outlet, a.title, a.url, a.language,
               m.story_id
        FROM matches m JOIN articles a ON a.id = m.article_id
        """,
        replace=True,
    )


def _migration_3_alert_watermarks(db: sqlite_utils.Database) -> None:
    """What is new to the alert decisions is decided by counters, never by clock times.

    - `matches.revision`: a database-wide counter, set when a match is stored and again
      when it first becomes an event (its confidence crosses EVENT_CONFIDENCE) or its
      evidence changes as an event. Writers hold the write lock (`BEGIN IMMEDIATE`), so
      revisions are handed out in commit order.
    - `alert_state.match_revision`: the highest revision the theatre's last scoring saw,
      written in the same transaction as its score point. The next scoring treats as new
      exactly the matches above it, however the poll and score jobs interleave.
    - `alerted_signs`: every (theatre, story, indicator) that went out as a critical
      sign, kept for good, so no later outlet of the same story alerts it again.
    - `meta.digest_last_alert_id`: the last alert a digest covered.
    """
    db.execute("ALTER TABLE matches ADD COLUMN revision INTEGER")
    db.execute("UPDATE matches SET revision = id")
    db.execute("CREATE INDEX IF NOT EXISTS idx_matches_revision ON matches (revision)")
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_matches_theatre_id_revision ON matches (theatre_id, revision)"
    )
    db.execute("ALTER TABLE alert_state ADD COLUMN match_revision INTEGER")
    # Existing deployments: what the last score point could have seen is no longer new
    # (the old rule: created no later than the last score point's time).
    db.execute(
        """
        UPDATE alert_state SET match_revision = coalesce((
            SELECT max(m.revision) FROM matches m
            WHERE m.theatre_id = alert_state.theatre_id
              AND m.created_at < (SELECT max(s.at) FROM scores s
                                  WHERE s.theatre_id = alert_state.theatre_id)), 0)
        """
    )
    db.table("alerted_signs").create(
        {
            "theatre_id": str,
            "story_id": int,
            "indicator_id": str,
            "alert_id": int,
            "alerted_at": str,
        },
        pk=("theatre_id", "story_id", "indicator_id"),
        foreign_keys=[("alert_id", "alerts", "id"), ("story_id", "stories", "id")],
        not_null=["alerted_at"],
    )
    # Whatever earlier alerts carried as evidence (critical emails and the level-up or
    # surge emails that a critical sign rode on) is remembered as alerted.
    db.execute(
        """
        INSERT OR IGNORE INTO alerted_signs (theatre_id, story_id, indicator_id, alert_id,
                                             alerted_at)
        SELECT m.theatre_id, m.story_id, m.indicator_id, al.id, al.created_at
        FROM alerts al, json_each(coalesce(al.match_ids, '[]')) j
        JOIN matches m ON m.id = j.value
        WHERE al.theatre_id = m.theatre_id
        ORDER BY al.id
        """
    )
    db.execute(
        """
        INSERT OR REPLACE INTO meta (key, value)
        SELECT 'digest_last_alert_id', coalesce((
            SELECT max(id) FROM alerts
            WHERE created_at <= (SELECT value FROM meta WHERE key = 'digest_last_slot')), 0)
        WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'digest_last_slot')
        """
    )


def _migration_4_alert_log_delivery(db: sqlite_utils.Database) -> None:
    """`alert_log.delivery` says what `monitor alerts` says: an alert with no email of its
    own is `digest` (held for the daily digest) or `none` (urgent, but no email was
    recorded), never NULL. Adds `urgent` and `dedup_key` for people reading the view."""
    db.create_view(
        "alert_log",
        """
        SELECT al.id, al.created_at, al.kind, al.theatre_id, al.level, al.score, al.reason,
               coalesce(o.status, CASE WHEN al.urgent THEN 'none' ELSE 'digest' END)
                 AS delivery,
               o.attempts, o.sent_at, o.last_error, o.subject, al.urgent, al.dedup_key
        FROM alerts al LEFT JOIN outbox o ON o.alert_id = al.id
        """,
        replace=True,
    )


def _migration_5_story_title_index(db: sqlite_utils.Database) -> None:
    """Story grouping through an index (issue 17): each story's title fingerprint stored
    once (`story_titles`), an inverted index of its stems (`story_stems`, covering the
    window query), and how many titles hold each stem (`story_stem_counts`), so a new
    article looks up only its rarest stems instead of re-stemming every story of the
    last days. Existing stories are indexed here."""
    db.execute(
        """
        CREATE TABLE story_titles (
            id INTEGER PRIMARY KEY,
            story_id INTEGER NOT NULL REFERENCES stories(id),
            language TEXT,
            published_at TEXT,
            fingerprint TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_story_titles_story_id ON story_titles (story_id)")
    db.execute(
        """
        CREATE TABLE story_stems (
            language TEXT NOT NULL,
            stem TEXT NOT NULL,
            published_at TEXT NOT NULL,
            title_id INTEGER NOT NULL REFERENCES story_titles(id),
            PRIMARY KEY (language, stem, published_at, title_id)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        """
        CREATE TABLE story_stem_counts (
            language TEXT NOT NULL,
            stem TEXT NOT NULL,
            titles INTEGER NOT NULL,
            PRIMARY KEY (language, stem)
        ) WITHOUT ROWID
        """
    )
    # A story that joined another across languages (`Store.join_across_languages`) keeps
    # its row, empty, pointing at the story that holds its articles now.
    db.execute("ALTER TABLE stories ADD COLUMN merged_into INTEGER REFERENCES stories(id)")
    # The candidates of that join: one theatre's event matches of one sign in a few days.
    db.execute(
        "CREATE INDEX idx_matches_theatre_id_indicator_id_occurred_at "
        "ON matches (theatre_id, indicator_id, occurred_at, confidence, story_id)"
    )
    # ... and each candidate's signs (the events of one story).
    db.execute(
        "CREATE INDEX idx_matches_story_id_confidence "
        "ON matches (story_id, confidence, theatre_id, indicator_id)"
    )
    rows = db.execute(
        "SELECT id, title, language, published_at FROM stories ORDER BY id"
    ).fetchall()
    for story_id, title, language, published_at in rows:
        fingerprint = title_fingerprint(title or "", language or "")
        _index_story_title(db.conn, story_id, fingerprint, language, published_at)


def _index_story_title(
    conn: sqlite3.Connection,
    story_id: int,
    fingerprint: frozenset[str],
    language: str | None,
    published_at: str | None,
) -> None:
    """Store a story's title fingerprint and post its stems (not for an empty one, which
    matches nothing, nor without a language or date, which the window query never finds)."""
    cursor = conn.execute(
        "INSERT INTO story_titles (story_id, language, published_at, fingerprint) "
        "VALUES (?, ?, ?, ?)",
        (story_id, language, published_at, fingerprint_text(fingerprint)),
    )
    if not fingerprint or language is None or published_at is None:
        return
    title_id = int(cursor.lastrowid or 0)
    conn.executemany(
        "INSERT INTO story_stems (language, stem, published_at, title_id) VALUES (?, ?, ?, ?)",
        [(language, stem, published_at, title_id) for stem in fingerprint],
    )
    conn.executemany(
        "INSERT INTO story_stem_counts (language, stem, titles) VALUES (?, ?, 1) "
        "ON CONFLICT (language, stem) DO UPDATE SET titles = titles + 1",
        [(language, stem) for stem in fingerprint],
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1_initial,
    _migration_2_query_views,
    _migration_3_alert_watermarks,
    _migration_4_alert_log_delivery,
    _migration_5_story_title_index,
)
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
        self.path = str(path)
        self.readonly = readonly
        self._stem_counts: dict[tuple[str, str], int] = {}
        # The names each article text holds for a theatre (`stories.names_in`), for the
        # cross-language join: every candidate story's texts are read again for each new
        # event story, and finding names is the costly part. Keyed by the rule set's
        # identity (a reload starts afresh); bounded.
        self._names_cache: dict[tuple[str, str], frozenset[str]] = {}
        self._names_rules: object = None

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, migrate: bool = True) -> Store:
        store = cls(connect(path, readonly=readonly), path=path, readonly=readonly)
        if not readonly and migrate:
            store.migrate()
        elif readonly:
            store.check_schema()
        return store

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils on the same connection, for migrations. Imported on first use:
        it loads numpy where numpy is installed (about 0.1-0.3 s), and the read paths
        (every CLI query) use plain sqlite3."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------

    def schema_version(self) -> int:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
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
        from monitor.fetch.parser import canonical_url

        canonical = canonical_url(entry.url) if entry.url else None
        if canonical:
            row = self.conn.execute(
                "SELECT coalesce(merged_into, id) FROM stories WHERE canonical_url = ? "
                "ORDER BY id LIMIT 1",
                (canonical,),
            ).fetchone()
            if row is not None:
                return int(row[0])
        fingerprint = title_fingerprint(entry.title, entry.language)
        found = self._indexed_story(fingerprint, entry.language, entry.published_at)
        if found is not None:
            return found
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
        story_id = int(cursor.lastrowid or 0)
        _index_story_title(
            self.conn, story_id, fingerprint, entry.language, to_iso(entry.published_at)
        )
        for stem in fingerprint:
            key = (entry.language, stem)
            if key in self._stem_counts:
                self._stem_counts[key] += 1
        return story_id

    def _stem_frequency(self, language: str, stems: frozenset[str]) -> dict[str, int]:
        """How many story titles hold each stem, remembered by this connection (only to
        pick the rarest stems: a count that is off costs speed, never a decision)."""
        missing = sorted(stem for stem in stems if (language, stem) not in self._stem_counts)
        if missing:
            if len(self._stem_counts) > STEM_COUNT_CACHE:
                self._stem_counts.clear()
            marks = ", ".join("?" * len(missing))
            found = dict(
                self.conn.execute(
                    "SELECT stem, titles FROM story_stem_counts "
                    f"WHERE language = ? AND stem IN ({marks})",
                    (language, *missing),
                ).fetchall()
            )
            for stem in missing:
                self._stem_counts[(language, stem)] = int(found.get(stem, 0))
        return {stem: self._stem_counts.get((language, stem), 0) for stem in stems}

    def _indexed_story(
        self, fingerprint: frozenset[str], language: str, published_at: datetime
    ) -> int | None:
        """The story a title joins (`stories.choose_story`), among the stored titles of its
        language in the window that hold enough of its `probe_stems`: a few index look-ups,
        however many stories the window holds."""
        if not fingerprint:
            return None
        frequency = self._stem_frequency(language, fingerprint)
        probe = probe_stems(fingerprint, frequency)
        marks = ", ".join("?" * len(probe.stems))
        low = to_iso(published_at - timedelta(days=STORY_WINDOW_DAYS))
        high = to_iso(published_at + timedelta(days=STORY_WINDOW_DAYS))
        # The fingerprint test first (most candidates fail it), then `choose_story`.
        titles = [
            StoryTitle(int(story_id), from_iso(published), stored)
            for story_id, published, text in self.conn.execute(
                f"""
                SELECT t.story_id, t.published_at, t.fingerprint FROM story_titles t
                WHERE t.id IN (SELECT title_id FROM story_stems WHERE language = ?
                               AND stem IN ({marks}) AND published_at BETWEEN ? AND ?
                               GROUP BY title_id HAVING count(*) >= ?)
                """,
                (language, *probe.stems, low, high, probe.min_hits),
            )
            if is_same_fingerprint(fingerprint, stored := parse_fingerprint(text))
        ]
        return choose_story(fingerprint, published_at, titles, window_days=STORY_WINDOW_DAYS)

    def join_across_languages(
        self, articles: Sequence[StoredArticle], rules: RuleSet, *, now: datetime
    ) -> dict[int, int]:
        """After matching: each story these articles started in this poll (one language,
        first seen `now`) joins the story of the same event in another language, if
        there is one (`stories.choose_event_story`). Its articles and matches move to
        that story, whose sources then count the outlets of both; its own row stays,
        empty, with `merged_into` set. Call in the poll's transaction, before scoring.
        Returns {joined story: story joined}."""
        joined: dict[int, int] = {}
        for story_id in sorted({a.story_id for a in articles}):
            new = self._new_event_story(story_id, rules, now=now)
            if new is None:
                continue
            target = choose_event_story(new, self._event_candidates(new, rules))
            if target is None:
                continue
            for table in ("articles", "matches", "story_titles"):
                self.conn.execute(
                    f"UPDATE {table} SET story_id = ? WHERE story_id = ?", (target, story_id)
                )
            self.conn.execute(
                "UPDATE stories SET merged_into = ?, sources = 0 WHERE id = ?", (target, story_id)
            )
            self._refresh_story_sources(target)
            joined[story_id] = target
        return joined

    def _new_event_story(
        self, story_id: int, rules: RuleSet, *, now: datetime
    ) -> EventStory | None:
        """A story started `now`, in one language, with event matches; else None."""
        row = self.conn.execute(
            "SELECT first_seen_at, published_at, merged_into FROM stories WHERE id = ?",
            (story_id,),
        ).fetchone()
        if row is None or row[0] != to_iso(now) or row[2] is not None or row[1] is None:
            return None
        story = self._event_story(story_id, from_iso(row[1]), rules)
        if len(story.languages) != 1 or not story.events:
            return None
        return story

    def _event_candidates(self, new: EventStory, rules: RuleSet) -> list[EventStory]:
        """Stories with an event match of one of `new`'s signs in the time window, in no
        language of `new`'s (what `shared_event_names` refuses anyway is ruled out in SQL,
        before any story's names are read); at most CROSS_LANGUAGE_CANDIDATES of them,
        the nearest in time, so a burst of one sign costs each new story a bounded look."""
        span = timedelta(hours=CROSS_LANGUAGE_WINDOW_HOURS)
        # occurred_at is the earlier of publication and first sight: a day of slack
        low = to_iso(new.published_at - span - timedelta(days=1))
        high = to_iso(new.published_at + span)
        [language] = new.languages  # a new event story is in one language
        published = to_iso(new.published_at)
        found: dict[int, tuple[float, str]] = {}
        for theatre_id, indicator_id in sorted(new.events):
            for story_id, story_published, distance in self.conn.execute(
                """
                SELECT s.id, s.published_at,
                       abs(julianday(s.published_at) - julianday(?)) AS distance
                FROM stories s
                WHERE s.id IN (SELECT story_id FROM matches WHERE theatre_id = ?
                               AND indicator_id = ? AND occurred_at BETWEEN ? AND ?
                               AND confidence >= ?)
                  AND s.id != ? AND s.merged_into IS NULL
                  AND s.published_at BETWEEN ? AND ?
                  AND NOT EXISTS (SELECT 1 FROM articles a
                                  WHERE a.story_id = s.id AND a.language = ?)
                ORDER BY distance, s.id LIMIT ?
                """,
                (
                    published,
                    theatre_id,
                    indicator_id,
                    low,
                    high,
                    EVENT_CONFIDENCE,
                    new.story_id,
                    to_iso(new.published_at - span),
                    to_iso(new.published_at + span),
                    language,
                    CROSS_LANGUAGE_CANDIDATES,
                ),
            ):
                found[int(story_id)] = (float(distance), str(story_published))
        nearest = sorted(found.items(), key=lambda item: (item[1][0], item[0]))
        return [
            self._event_story(story_id, from_iso(story_published), rules)
            for story_id, (_, story_published) in nearest[:CROSS_LANGUAGE_CANDIDATES]
        ]

    def _event_story(self, story_id: int, published_at: datetime, rules: RuleSet) -> EventStory:
        texts = self.conn.execute(
            "SELECT language, title, summary FROM articles WHERE story_id = ?", (story_id,)
        ).fetchall()
        events = frozenset(
            (str(theatre), str(indicator))
            for theatre, indicator in self.conn.execute(
                "SELECT DISTINCT theatre_id, indicator_id FROM matches "
                "WHERE story_id = ? AND confidence >= ?",
                (story_id, EVENT_CONFIDENCE),
            )
        )
        names = {
            theatre: frozenset().union(
                *(
                    self._names_in(f"{title}\n{summary or ''}", theatre, rules)
                    for _, title, summary in texts
                )
            )
            for theatre in {theatre for theatre, _ in events}
        }
        return EventStory(
            story_id=story_id,
            languages=frozenset(str(language) for language, _, _ in texts),
            published_at=published_at,
            events=events,
            names=names,
        )

    def _names_in(self, text: str, theatre: str, rules: RuleSet) -> frozenset[str]:
        if self._names_rules is not rules or len(self._names_cache) >= NAMES_CACHE_MAX:
            self._names_cache.clear()
            self._names_rules = rules
        key = (theatre, text)
        found = self._names_cache.get(key)
        if found is None:
            found = self._names_cache[key] = frozenset(names_in(text, theatre, rules))
        return found

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
                    evidence, terms, qualifiers, occurred_at, created_at, revision)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                        (SELECT coalesce(max(revision), 0) + 1 FROM matches))
                ON CONFLICT(article_id, indicator_id, theatre_id) DO UPDATE SET
                    confidence = excluded.confidence, evidence = excluded.evidence,
                    terms = excluded.terms, qualifiers = excluded.qualifiers,
                    -- An edited article: the match is new again to the alert decisions
                    -- when it first becomes an event, or its evidence changes as one.
                    revision = CASE
                        WHEN excluded.confidence >= ?
                             AND (matches.confidence < ? OR matches.evidence IS NOT excluded.evidence)
                        THEN excluded.revision ELSE matches.revision END
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
                    EVENT_CONFIDENCE,
                    EVENT_CONFIDENCE,
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
        where = "m.theatre_id = ? AND m.occurred_at BETWEEN ? AND ? AND m.confidence > 0"
        params: list[Any] = [theatre_id, to_iso(since), to_iso(until)]
        if created_before is not None:
            where += " AND m.created_at <= ?"
            params.append(to_iso(created_before))
        return self._scored(where, params, indicators)

    def _scored(
        self,
        where: str,
        params: Sequence[Any],
        indicators: Mapping[str, Indicator],
        *,
        order: str = "m.id",
    ) -> list[ScoredMatch]:
        sql = f"""
            SELECT m.id, m.story_id, m.article_id, m.indicator_id, m.theatre_id, m.confidence,
                   m.occurred_at, m.evidence, a.title, a.outlet, a.url,
                   st.sources, st.source_weight
            FROM matches m
            JOIN articles a ON a.id = m.article_id
            JOIN stories st ON st.id = m.story_id
            WHERE {where} ORDER BY {order}
        """
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

    def new_event_matches(
        self,
        theatre_id: str,
        *,
        after_revision: int,
        since: datetime,
        indicators: Mapping[str, Indicator],
    ) -> list[ScoredMatch]:
        """A theatre's event matches stored (or become events) after `after_revision`,
        that occurred at or after `since`, joined with their story; oldest revision first.

        No upper time bound and no creation-time test: a poll that started before the
        scoring and committed after it is still new to the next one.
        """
        return self._scored(
            "m.theatre_id = ? AND m.revision > ? AND m.occurred_at >= ? AND m.confidence >= ?",
            [theatre_id, after_revision, to_iso(since), EVENT_CONFIDENCE],
            indicators,
            order="m.revision",
        )

    def match_revision(self) -> int:
        """The highest match revision handed out so far (0 for none)."""
        row = self.conn.execute("SELECT max(revision) FROM matches").fetchone()
        return int(row[0] or 0)

    def alerted_signs(self, theatre_id: str, story_ids: Sequence[int]) -> set[tuple[int, str]]:
        """Which (story, indicator) pairs of these stories went out as critical signs."""
        found: set[tuple[int, str]] = set()
        ids = sorted(set(story_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found.update(
                (int(story_id), str(indicator_id))
                for story_id, indicator_id in self.conn.execute(
                    "SELECT story_id, indicator_id FROM alerted_signs WHERE theatre_id = ? "
                    f"AND story_id IN ({', '.join('?' * len(chunk))})",
                    [theatre_id, *chunk],
                )
            )
        return found

    def remember_alerted_signs(
        self,
        theatre_id: str,
        signs: Sequence[tuple[int, str]],
        *,
        alert_id: int | None,
        now: datetime,
    ) -> None:
        """Keep for good that these (story, indicator) pairs went out (inside a transaction)."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO alerted_signs (theatre_id, story_id, indicator_id, alert_id, "
            "alerted_at) VALUES (?, ?, ?, ?, ?)",
            [(theatre_id, story, indicator, alert_id, to_iso(now)) for story, indicator in signs],
        )

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
                for c in stored_contributions(point)
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


def stored_contributions(point: ScorePoint) -> list[Contribution]:
    """The contributions of `point` worth keeping as its evidence, largest first."""
    ranked = sorted(point.contributions, key=lambda c: (-abs(c.points), c.match_id))
    return [c for c in ranked if abs(c.points) >= MIN_STORED_POINTS][:MAX_STORED_CONTRIBUTIONS]


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
        configured_url=row["configured_url"],
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

# Period -> (the SQL expression that names a point's period, the suffix that makes the
# name a timestamp). The day expression is also indexed (migration 2), so a year of
# daily history is grouped in index order, without sorting 35,000 points.
HISTORY_BUCKETS = {
    "1h": ("substr(at, 1, 13)", ":00:00Z"),
    "1d": ("substr(at, 1, 10)", "T00:00:00Z"),
    # Weeks start on Monday: step back 6 days, then forward to the next Monday (a Monday
    # stays in its own week).
    "1w": ("date(substr(at, 1, 10), '-6 days', 'weekday 1')", "T00:00:00Z"),
}


def history_rows(
    store: Store,
    *,
    theatre_id: str | None,
    since: datetime,
    until: datetime,
    every: str | None = None,
) -> list[dict[str, Any]]:
    """Score points in [since, until]; with `every`, one row per period (its peak score,
    the level of its last point, its number of points), so a year of 15-minute points
    reads as 365 days."""
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
    bucket, suffix = HISTORY_BUCKETS[every]
    return store.query(
        f"""
        WITH g AS (
          SELECT theatre_id, {bucket} AS bucket, max(score) AS score, max(stories) AS stories,
                 count(*) AS points, max(at) AS last_at
          FROM scores WHERE {where} GROUP BY theatre_id, {bucket}
        )
        SELECT g.theatre_id, g.bucket || '{suffix}' AS at, g.score, s.level, g.stories, g.points
        FROM g JOIN scores s ON s.theatre_id = g.theatre_id AND s.at = g.last_at
        ORDER BY g.theatre_id, g.bucket
        """,
        params,
    )


def indicator_ids(store: Store) -> tuple[str, ...]:
    """Every indicator id the database has matches for (read from an index)."""
    return tuple(
        str(row[0])
        for row in store.conn.execute("SELECT DISTINCT indicator_id FROM matches ORDER BY 1")
    )


def theatre_ids(store: Store) -> tuple[str, ...]:
    """Every theatre id the database has scores, alerts or matches for (a skip scan of
    each table's theatre index: one index step per theatre, not per row)."""
    found: set[str] = set()
    for table in ("scores", "alerts", "matches"):
        found.update(
            str(row[0])
            for row in store.conn.execute(
                f"""
                WITH RECURSIVE t(id) AS (
                  SELECT min(theatre_id) FROM {table}
                  UNION ALL
                  SELECT (SELECT min(theatre_id) FROM {table} WHERE theatre_id > t.id)
                  FROM t WHERE t.id IS NOT NULL
                )
                SELECT id FROM t WHERE id IS NOT NULL
                """
            )
        )
    return tuple(sorted(found))


def has_theatre(store: Store, theatre_id: str) -> bool:
    """Whether the database has any score, alert or match for this theatre."""
    return any(
        store.conn.execute(
            f"SELECT 1 FROM {table} WHERE theatre_id = ? LIMIT 1", (theatre_id,)
        ).fetchone()
        for table in ("scores", "alerts", "matches")
    )


def alert_rows(
    store: Store,
    *,
    theatre_id: str | None,
    since: datetime | None,
    status: str | None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Alerts with their delivery, newest first (`monitor alerts`, chart markers)."""
    clauses: list[str] = []
    params: list[Any] = []
    if theatre_id is not None:
        clauses.append("al.theatre_id = ?")
        params.append(theatre_id)
    if since is not None:
        clauses.append("al.created_at >= ?")
        params.append(to_iso(since))
    if until is not None:
        clauses.append("al.created_at <= ?")
        params.append(to_iso(until))
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


# A search or filter finds its articles one of two ways, whichever reads fewer rows.
# "Candidates first" takes the candidate ids (from the full-text index and/or the
# matches table; with both, the full-text ones that are also match ones), looks each
# article up and sorts them by date. "Newest first" walks the articles' date index from
# the newest down and keeps those among the candidates, stopping at `limit`. A rare word
# has few candidates (the first way wins); a common one fills `limit` after a short walk
# (the second way wins), as does a short date range. Candidates first costs about
# ARTICLE_LOOKUP_COST × candidates (a row look-up and a sort per candidate) against one
# index step per article walked.
ARTICLE_LOOKUP_COST = 3.0


def article_rows(
    store: Store,
    *,
    theatre_id: str | None,
    indicator_id: str | None,
    since: datetime | None,
    search: str | None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Stored articles, newest first: full-text `search` over title and summary (each word
    must occur in any form with its stem, as the matcher stems; `word*` matches a prefix),
    and/or those with a counted match for a theatre or indicator. With a search, `snippet`
    shows the words found in context."""
    from monitor.models import EVENT_CONFIDENCE

    # Each source: SQL giving candidate article ids (a WHERE clause last), the name of its
    # id column, and its parameters.
    sources: list[tuple[str, str, list[Any]]] = []
    query = None
    if search:
        # imported here: the stemmers cost a search 40-80 ms to load, other listings nothing
        from monitor.detect.stem_search import stemmed_fts_query

        query = stemmed_fts_query(search, lambda prefix: fts_index_terms(store, prefix))
        if not query:
            return []
        sources.append(
            ("SELECT rowid AS id FROM articles_fts WHERE articles_fts MATCH ?", "rowid", [query])
        )
    if theatre_id is not None or indicator_id is not None:
        conditions: list[str] = ["confidence >= ?"]
        params: list[Any] = [EVENT_CONFIDENCE]
        if theatre_id is not None:
            conditions.insert(0, "theatre_id = ?")
            params.insert(0, theatre_id)
        if indicator_id is not None:
            conditions.insert(0, "indicator_id = ?")
            params.insert(0, indicator_id)
        sources.append(
            (
                f"SELECT article_id AS id FROM matches WHERE {' AND '.join(conditions)}",
                "article_id",
                params,
            )
        )
    in_range: list[str] = ["1"]
    range_params: list[Any] = []
    if since is not None:
        in_range.append("a.published_at >= ?")
        range_params.append(to_iso(since))
    if until is not None:
        in_range.append("a.published_at <= ?")
        range_params.append(to_iso(until))
    where = " AND ".join(in_range)
    order = "ORDER BY a.published_at DESC, a.id DESC LIMIT ?"

    if not sources:
        sql = f"SELECT a.id FROM articles a WHERE {where} {order}"
        params = [*range_params, limit]
    else:
        sizes = [
            int(store.conn.execute(f"SELECT count(*) FROM ({sql})", p).fetchone()[0])
            for sql, _, p in sources
        ]
        (total,) = store.conn.execute("SELECT coalesce(max(id), 0) FROM articles").fetchone()
        # Articles that are candidates of every source, if the sources were independent.
        candidates = float(total)
        for size in sizes:
            candidates *= size / max(total, 1)
        if candidates == 0:
            return []
        lookups = ARTICLE_LOOKUP_COST * candidates
        # Candidates spread over the whole table: a walk meets `limit` of them after
        # about total × limit / candidates articles, or stops at the end of the range.
        newest_first = total * limit / candidates < lookups
        if not newest_first and len(in_range) > 1:
            (walk,) = store.conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM articles a WHERE {where} LIMIT ?)",
                [*range_params, int(lookups) + 1],
            ).fetchone()
            newest_first = walk <= lookups
        # The candidates: the first source (the full-text one, when there is one: reading
        # its matches is cheap), kept when in each other source.
        (first, first_id, candidate_params), others = sources[0], sources[1:]
        candidate_sql = first + "".join(f" AND +{first_id} IN ({sql})" for sql, _, _ in others)
        candidate_params = [*candidate_params, *(v for _, _, p in others for v in p)]
        if newest_first:  # walk the date index from the newest, keep candidates
            sql = (
                f"SELECT a.id FROM articles a WHERE {where} AND +a.id IN ({candidate_sql}) {order}"
            )
            params = [*range_params, *candidate_params, limit]
        else:  # candidates first: look each candidate up, sort by date
            sql = (
                f"SELECT a.id FROM ({candidate_sql}) c CROSS JOIN articles a ON a.id = c.id "
                f"WHERE {where} {order}"
            )
            params = [*candidate_params, *range_params, limit]
    ids = [int(row[0]) for row in store.conn.execute(sql, params)]
    return _article_details(store, ids, query)


def _article_details(store: Store, ids: Sequence[int], query: str | None) -> list[dict[str, Any]]:
    """The articles `ids` in that order; with a full-text query, a snippet of each."""
    if not ids:
        return []
    marks = ",".join("?" for _ in ids)
    rows = store.query(
        f"SELECT id, published_at, outlet, title, url, language FROM articles WHERE id IN ({marks})",
        list(ids),
    )
    snippets: dict[int, str] = {}
    if query:
        # `+rowid`: one pass over the query's matches, keeping these rows. A plain
        # `rowid IN (...)` makes FTS5 evaluate the query once per id, which costs a
        # prefix query (`границ*`) a term scan each time.
        snippets = {
            int(rowid): str(text)
            for rowid, text in store.conn.execute(
                f"SELECT rowid, snippet(articles_fts, -1, '[', ']', '…', 12) FROM articles_fts "
                f"WHERE articles_fts MATCH ? AND +rowid IN ({marks})",
                [query, *ids],
            )
        }
    by_id = {row["id"]: {**row, "snippet": snippets.get(row["id"])} for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def article_match_rows(store: Store, article_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The counted matches (detections) of these articles, strongest first."""
    from monitor.models import EVENT_CONFIDENCE

    if not article_ids:
        return []
    marks = ",".join("?" for _ in article_ids)
    return store.query(
        f"""
        SELECT article_id, theatre_id, indicator_id, confidence, evidence FROM matches
        WHERE article_id IN ({marks}) AND confidence >= ?
        ORDER BY article_id, confidence DESC, theatre_id, indicator_id
        """,
        [*article_ids, EVENT_CONFIDENCE],
    )


def fts_index_terms(store: Store, prefix: str) -> list[str]:
    """The words of the articles' full-text index that begin with `prefix` (a range scan
    of its sorted vocabulary, through an fts5vocab table in the connection's temp schema,
    which a read-only connection may create)."""
    if not prefix:
        return []
    store.conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.articles_fts_terms "
        "USING fts5vocab(main, articles_fts, row)"
    )
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return [
        str(term)
        for (term,) in store.conn.execute(
            "SELECT term FROM temp.articles_fts_terms WHERE term >= ? AND term < ?", (prefix, end)
        )
    ]


def explain_rows(
    store: Store, score_id: int, *, limit: int | None = None
) -> tuple[list[dict[str, Any]], int, float]:
    """The contributions behind one score point, largest first (the first `limit`, or all),
    with the number of contributions and their sum. The largest are chosen before the
    joins: a point can have a thousand contributions, most of them decayed to nothing."""
    count, total = store.conn.execute(
        "SELECT count(*), coalesce(sum(points), 0) FROM score_contributions WHERE score_id = ?",
        (score_id,),
    ).fetchone()
    rows = store.query(
        """
        WITH top AS (
          SELECT match_id, story_id, indicator_id, points FROM score_contributions
          WHERE score_id = ? ORDER BY abs(points) DESC, match_id LIMIT ?
        )
        SELECT top.points, top.indicator_id, top.story_id, top.match_id, m.evidence,
               m.confidence, m.qualifiers, a.title, a.outlet, a.url, a.published_at, st.sources
        FROM top
        JOIN matches m ON m.id = top.match_id
        JOIN articles a ON a.id = m.article_id
        JOIN stories st ON st.id = top.story_id
        ORDER BY abs(top.points) DESC, top.match_id
        """,
        [score_id, -1 if limit is None else limit],
    )
    return rows, int(count), float(total)


def top_story_rows(
    store: Store, *, theatre_id: str, since: datetime, until: datetime, limit: int = 5
) -> list[dict[str, Any]]:
    """The stories that added most to a theatre's score in [since, until]: each with its
    largest contribution and the score point where it peaked (SQLite takes the bare
    columns from the row holding the max)."""
    return store.query(
        """
        SELECT c.story_id, max(c.points) AS points, s.at, s.score, c.indicator_id,
               st.title, st.published_at, st.sources
        FROM scores s
        JOIN score_contributions c ON c.score_id = s.id
        JOIN stories st ON st.id = c.story_id
        WHERE s.theatre_id = ? AND s.at BETWEEN ? AND ? AND c.points > 0
        GROUP BY c.story_id ORDER BY points DESC, c.story_id LIMIT ?
        """,
        [theatre_id, to_iso(since), to_iso(until), limit],
    )


STATUS_CYCLE_JOBS = ("poll", "score", "once")


def last_run_rows(store: Store) -> list[dict[str, Any]]:
    """The latest recorded run of each job (the daemon writes one per poll, score and
    outbox round; `run --once` writes `once`)."""
    return store.query(
        """
        SELECT r.job, r.started_at, r.finished_at, r.ok, r.summary, r.error FROM runs r
        WHERE r.id IN (
          SELECT (SELECT r2.id FROM runs r2 WHERE r2.job = j.job
                  ORDER BY r2.finished_at DESC, r2.id DESC LIMIT 1)
          FROM (SELECT DISTINCT job FROM runs) j
        )
        ORDER BY r.finished_at DESC, r.job
        """
    )


def feed_health_rows(store: Store) -> list[dict[str, Any]]:
    """One row per configured feed, as the `feed_health` view shows it (read from the
    table, so a database the daemon has not migrated yet answers too)."""
    return store.query(
        f"SELECT * FROM ({FEED_HEALTH_SQL}) WHERE health != 'not configured' ORDER BY id"
    )


def article_activity(store: Store) -> dict[str, str | None]:
    """When the newest article was stored (`last_article_at`; the highest id, so no scan),
    and the start of the oldest poll round on record (`first_cycle_at`: how long polling
    has gone on when no article was ever stored)."""
    last = store.conn.execute(
        "SELECT first_seen_at FROM articles ORDER BY id DESC LIMIT 1"
    ).fetchone()
    (first_cycle,) = store.conn.execute(
        "SELECT min(started_at) FROM runs WHERE job IN ('poll', 'once')"
    ).fetchone()
    return {"last_article_at": last[0] if last else None, "first_cycle_at": first_cycle}


def outbox_health(
    store: Store, *, now: datetime, overdue_after: timedelta, dead_window: timedelta
) -> dict[str, Any]:
    """Counts by status, pending messages overdue by more than `overdue_after` (a message
    held on purpose, e.g. for quiet hours, counts from its `not_before`), and messages that
    died within `dead_window`."""
    counts = {
        str(status): int(count)
        for status, count in store.conn.execute(
            "SELECT status, count(*) FROM outbox GROUP BY status"
        )
    }
    overdue, oldest = store.conn.execute(
        "SELECT count(*), min(coalesce(not_before, created_at)) FROM outbox "
        "WHERE status = 'pending' AND coalesce(not_before, created_at) < ?",
        (to_iso(now - overdue_after),),
    ).fetchone()
    recent_dead = store.conn.execute(
        "SELECT count(*) FROM outbox WHERE status = 'dead' AND created_at >= ?",
        (to_iso(now - dead_window),),
    ).fetchone()[0]
    return {
        "pending": counts.get("pending", 0),
        "sent": counts.get("sent", 0),
        "dead": counts.get("dead", 0),
        "overdue_pending": int(overdue),
        "oldest_overdue_since": oldest,
        "recent_dead": int(recent_dead),
    }


# -- the read-only connection (called by `connect`) --------------------------


def _connect_readonly(target: Path) -> sqlite3.Connection:
    """Open `target` with `mode=ro`; fall back to `immutable=1` only when that is safe.

    A reader of a WAL database needs the `-shm` file. While a writer has the file open it
    exists; when nobody has, SQLite must create it, which a user without write access to
    the directory cannot ("attempt to write a readonly database", or "unable to open").
    No `-wal` file beside the database (or an empty one: a read-only connection of the
    service user leaves one behind) means that every committed change is in the main
    file and no writer is live (the last connection to close removes the file), so
    `immutable=1` (no locks, no `-shm`) reads it correctly. A writer that starts during a
    query is the one remaining risk: its changes reach the main file only at a checkpoint
    (after ~1000 pages, or when it closes), so a query of milliseconds would have to
    straddle that moment. A `-wal` with content is never skipped.
    """
    uri = target.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        _probe(conn)
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if not _is_permission_error(exc):
            raise
        wal = _wal_path(target)
        if wal.exists() and wal.stat().st_size > 0:
            raise DatabaseError(
                f"{target}: cannot read the database: {exc}. Its -wal file holds changes that "
                f"only a writer can merge (the daemon was stopped uncleanly?): start the daemon, "
                f"or run the query as the service user"
            ) from exc
    conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    try:
        _probe(conn)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()


def _is_permission_error(exc: sqlite3.Error) -> bool:
    """SQLITE_READONLY or SQLITE_CANTOPEN (and their extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
    return "readonly" in str(exc) or "unable to open" in str(exc)


def _wal_path(target: Path) -> Path:
    return target.with_name(target.name + "-wal")


def metrics_figures(store: Store) -> dict[str, Any]:
    """The counts behind /metrics: feeds, polls, errors by kind, matches, scores, outbox."""
    feeds = store.query(
        "SELECT count(*) AS feeds, coalesce(sum(polls), 0) AS polls, "
        "coalesce(sum(not_modified_polls), 0) AS not_modified, "
        "coalesce(sum(entries_seen), 0) AS entries, "
        "coalesce(sum(consecutive_failures > 0), 0) AS failing FROM feeds WHERE configured = 1"
    )[0]
    errors = {
        str(row["kind"]): int(row["n"])
        for row in store.query(
            "SELECT last_error_kind AS kind, count(*) AS n FROM feeds "
            "WHERE configured = 1 AND consecutive_failures > 0 AND last_error_kind IS NOT NULL "
            "GROUP BY last_error_kind"
        )
    }
    matches = store.query(
        "SELECT count(*) AS n, coalesce(sum(confidence >= 0.5), 0) AS events FROM matches"
    )[0]
    scores = {
        str(row["theatre_id"]): float(row["score"])
        for row in store.query("SELECT theatre_id, score FROM latest_scores")
    }
    outbox = store.query(
        "SELECT status, count(*) AS n, coalesce(sum(attempts), 0) AS attempts FROM outbox GROUP BY status"
    )
    return {
        "feeds": feeds,
        "errors_by_kind": errors,
        "articles": store.query("SELECT count(*) AS n FROM articles")[0]["n"],
        "matches": matches,
        "scores": scores,
        "outbox": {str(r["status"]): (int(r["n"]), int(r["attempts"])) for r in outbox},
    }


# ---------------------------------------------------------------------------
# Read queries for the static report (`monitor report`, monitor.report)


def newest_score_time(store: Store) -> datetime | None:
    """The time of the newest score point of any theatre (the report's default "now")."""
    (at,) = store.conn.execute("SELECT max(at) FROM scores").fetchone()
    return None if at is None else from_iso(str(at))


def report_alert_rows(
    store: Store,
    *,
    theatre_id: str | None = None,
    until: datetime,
    since: datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Alerts created at or before `until` (and at or after `since`), newest first, with
    their id (the report links one page per alert) and their delivery as `monitor alerts`
    shows it."""
    clauses = ["al.created_at <= ?"]
    params: list[Any] = [to_iso(until)]
    if since is not None:
        clauses.append("al.created_at >= ?")
        params.append(to_iso(since))
    if theatre_id is not None:
        clauses.append("al.theatre_id = ?")
        params.append(theatre_id)
    params.append(limit)
    return store.query(
        f"""
        SELECT al.id, al.created_at, al.kind, al.theatre_id, al.feed_id, al.level,
               al.previous_level, al.score, al.change_24h, al.reason, al.urgent,
               coalesce(o.status, CASE WHEN al.urgent THEN 'none' ELSE 'digest' END) AS delivery,
               o.subject, o.sent_at
        FROM alerts al LEFT JOIN outbox o ON o.alert_id = al.id
        WHERE {" AND ".join(clauses)} ORDER BY al.created_at DESC, al.id DESC LIMIT ?
        """,
        params,
    )


def alert_message(store: Store, alert_id: int) -> bytes | None:
    """The email recorded for an alert (the whole message), or None (no email of its own)."""
    row = store.conn.execute(
        "SELECT message FROM outbox WHERE alert_id = ?", (alert_id,)
    ).fetchone()
    return None if row is None or not row[0] else bytes(row[0])


def story_article_rows(store: Store, story_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Every article (outlet) of these stories, oldest first: the sources behind a story."""
    if not story_ids:
        return []
    marks = ",".join("?" for _ in story_ids)
    return store.query(
        f"""
        SELECT story_id, id AS article_id, outlet, title, url, published_at, language
        FROM articles WHERE story_id IN ({marks})
        ORDER BY story_id, coalesce(published_at, first_seen_at), id
        """,
        list(story_ids),
    )
