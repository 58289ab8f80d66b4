"""The schema: append-only migrations, the views, and the schema version.

A new schema change is a new function at the END of `MIGRATIONS`, never an edit of an old
one: a database records the versions it has applied (`schema_migrations`).

Its length only grows: migrations are never edited or removed, since a database anywhere
may still need each of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.models import EVENT_CONFIDENCE
from monitor.score.stories import (
    fingerprint_text,
    title_fingerprint,
)

if TYPE_CHECKING:
    import sqlite_utils


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


def _migration_6_retention_evidence_index(db: sqlite_utils.Database) -> None:
    """Retention (issue 15) asks of each old match and article whether a stored score point
    holds it as evidence: `score_contributions` by match, which its primary key (score
    first) cannot answer without reading every contribution."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_score_contributions_match_id "
        "ON score_contributions (match_id)"
    )


def _migration_7_channel_outbox(db: sqlite_utils.Database) -> None:
    """Issue 13: one row per (alert, route) for the non-email channels (Apprise, webhook,
    Alertmanager), written in the alert's transaction like its email in `outbox` (whose
    rows are untouched: email keeps its table, its views and its one row per alert).
    `payload` is the versioned JSON the channels render from; `route` is the route's name
    and `channel` its type, as they were when the row was written."""
    db.execute(
        """
        CREATE TABLE channel_outbox (
            id INTEGER PRIMARY KEY,
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            route TEXT NOT NULL,
            channel TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before TEXT,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            UNIQUE (alert_id, route)
        )
        """
    )
    db.execute(
        "CREATE INDEX idx_channel_outbox_due ON channel_outbox (route, status, next_attempt_at)"
    )


def _migration_8_story_signs(db: sqlite_utils.Database) -> None:
    """The cross-language join's candidates through an index (issue 17): one row per story,
    warning sign (theatre, indicator) it has an event match of, and language of the
    article that has it, keyed by the story's publication time; kept by triggers on
    `matches` (an insert, a raised confidence, a match moved to another story by a join).
    `Store._event_candidates` walks it outward from a new story's time, skipping rows of
    the new story's language before any look-up, and stops at the nearest few, instead of
    reading every match of the sign in the window. It checks each row against `matches`
    and `articles` again, so a row left behind (a withdrawn match, a joined story) costs
    a look, never a decision. The threshold is EVENT_CONFIDENCE as of this migration: a
    lower one needs a migration that posts the matches it adds."""
    db.execute(
        """
        CREATE TABLE story_signs (
            theatre_id TEXT NOT NULL,
            indicator_id TEXT NOT NULL,
            published_at TEXT NOT NULL,
            story_id INTEGER NOT NULL REFERENCES stories(id),
            language TEXT NOT NULL,
            PRIMARY KEY (theatre_id, indicator_id, published_at, story_id, language)
        ) WITHOUT ROWID
        """
    )
    # The walk's "no article in the new story's language", without reading article rows.
    db.execute("CREATE INDEX idx_articles_story_id_language ON articles (story_id, language)")
    # Not INSERT OR IGNORE: inside a trigger the statement that fired it (an upsert of
    # `store_matches`) imposes its own conflict policy.
    post = """
        INSERT INTO story_signs (theatre_id, indicator_id, published_at, story_id, language)
        SELECT new.theatre_id, new.indicator_id, s.published_at, s.id, coalesce(a.language, '')
        FROM stories s JOIN articles a ON a.id = new.article_id
        WHERE s.id = new.story_id AND s.published_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM story_signs g WHERE g.theatre_id = new.theatre_id
                          AND g.indicator_id = new.indicator_id
                          AND g.published_at = s.published_at AND g.story_id = s.id
                          AND g.language = coalesce(a.language, ''));
    """
    when = f"new.confidence >= {EVENT_CONFIDENCE!r} AND new.story_id IS NOT NULL"
    db.execute(
        f"CREATE TRIGGER story_signs_after_match_insert AFTER INSERT ON matches "
        f"WHEN {when} BEGIN {post} END"
    )
    db.execute(
        "CREATE TRIGGER story_signs_after_match_update "
        f"AFTER UPDATE OF confidence, story_id ON matches WHEN {when} BEGIN {post} END"
    )
    db.execute(
        """
        INSERT OR IGNORE INTO story_signs
            (theatre_id, indicator_id, published_at, story_id, language)
        SELECT DISTINCT m.theatre_id, m.indicator_id, s.published_at, s.id,
               coalesce(a.language, '')
        FROM matches m JOIN stories s ON s.id = m.story_id JOIN articles a ON a.id = m.article_id
        WHERE m.confidence >= ? AND s.published_at IS NOT NULL
        """,
        [EVENT_CONFIDENCE],
    )


def _migration_9_story_titles_by_day(db: sqlite_utils.Database) -> None:
    """Story grouping in memory (issue 17): a writer loads the stored titles of the days its
    new articles fall in (`story_window.TitleWindow`) and indexes their stems itself, so it
    reads `story_titles` by language and day, and the stem tables of migration 5 (an index
    on disk that cost two rows per stem of every new story) are no longer written or read."""
    db.execute(
        "CREATE INDEX idx_story_titles_language_published_at "
        "ON story_titles (language, published_at)"
    )
    db.execute("DROP TABLE story_stems")
    db.execute("DROP TABLE story_stem_counts")


# `score_days`: a day's summary of a theatre's score points, kept by triggers.
_SCORE_DAY_KEY = "theatre_id = {t} AND day = substr({at}, 1, 10)"


def _recompute_score_day(t: str, at: str, *, when: str = "1") -> str:
    """Statements that rebuild the `score_days` row of theatre `t`'s day of `at` (SQL
    expressions) from its points when the row meets `when` (or is missing), and remove it
    when the day has no point left."""
    key = _SCORE_DAY_KEY.format(t=t, at=at)
    return f"""
        DELETE FROM score_days WHERE {key} AND ({when});
        INSERT INTO score_days (theatre_id, day, peak, stories, points, last_at, last_level)
        SELECT theatre_id, substr(at, 1, 10), max(score), max(stories), count(*), max(at), ''
        FROM scores WHERE theatre_id = {t} AND substr(at, 1, 10) = substr({at}, 1, 10)
          AND NOT EXISTS (SELECT 1 FROM score_days WHERE {key})
        GROUP BY theatre_id, substr(at, 1, 10);
        UPDATE score_days SET last_level = (SELECT s.level FROM scores s
            WHERE s.theatre_id = score_days.theatre_id AND s.at = score_days.last_at)
        WHERE {key} AND last_level = '';
    """


def _migration_10_score_days(db: sqlite_utils.Database) -> None:
    """`score_days`: each theatre's day of score points in one row (its peak, its most
    stories, its number of points, its last point and that point's level), kept by
    triggers on `scores`. `monitor history --every 1d` reads a year of five theatres as
    1,830 rows instead of grouping 175,000 points (bench/query.py); only the days its
    window cuts are read point by point. Rebuilt here from the points stored."""
    db.execute(
        """
        CREATE TABLE score_days (
            theatre_id TEXT NOT NULL,
            day TEXT NOT NULL,         -- substr(at, 1, 10)
            peak REAL NOT NULL,        -- max(score)
            stories INTEGER,           -- max(stories)
            points INTEGER NOT NULL,   -- count(*)
            last_at TEXT NOT NULL,     -- max(at)
            last_level TEXT NOT NULL,  -- the level at last_at
            PRIMARY KEY (theatre_id, day)
        ) WITHOUT ROWID
        """
    )
    # A new point: folded in (the scorer adds one per theatre every 15 minutes).
    db.execute(
        """
        CREATE TRIGGER score_days_after_insert AFTER INSERT ON scores BEGIN
          INSERT INTO score_days (theatre_id, day, peak, stories, points, last_at, last_level)
          VALUES (new.theatre_id, substr(new.at, 1, 10), new.score, new.stories, 1, new.at,
                  new.level)
          ON CONFLICT (theatre_id, day) DO UPDATE SET
            peak = max(peak, excluded.peak),
            stories = CASE WHEN stories IS NULL THEN excluded.stories
                           WHEN excluded.stories IS NULL THEN stories
                           ELSE max(stories, excluded.stories) END,
            points = points + 1,
            last_level = CASE WHEN excluded.last_at >= last_at
                              THEN excluded.last_level ELSE last_level END,
            last_at = max(last_at, excluded.last_at);
        END
        """
    )
    # A removed point (retention thins old days, keeping each day's peak and last point):
    # one fewer; and if it was the day's peak, most stories or last point, the day is
    # summed up again. One trigger, in this order: the count goes first, and leaves the
    # extremes the test reads as they were.
    db.execute(
        "CREATE TRIGGER score_days_after_delete AFTER DELETE ON scores BEGIN "
        "UPDATE score_days SET points = points - 1 "
        f"WHERE {_SCORE_DAY_KEY.format(t='old.theatre_id', at='old.at')}; "
        + _recompute_score_day(
            "old.theatre_id",
            "old.at",
            when="old.score >= peak OR old.stories >= stories OR old.at >= last_at",
        )
        + " END"
    )
    db.execute(
        "CREATE TRIGGER score_days_after_update "
        "AFTER UPDATE OF theatre_id, at, score, level, stories ON scores BEGIN "
        f"{_recompute_score_day('old.theatre_id', 'old.at')}"
        f"{_recompute_score_day('new.theatre_id', 'new.at')} END"
    )
    db.execute(
        """
        INSERT INTO score_days (theatre_id, day, peak, stories, points, last_at, last_level)
        SELECT theatre_id, substr(at, 1, 10), max(score), max(stories), count(*), max(at), ''
        FROM scores GROUP BY theatre_id, substr(at, 1, 10)
        """
    )
    db.execute(
        """
        UPDATE score_days SET last_level = (SELECT s.level FROM scores s
            WHERE s.theatre_id = score_days.theatre_id AND s.at = score_days.last_at)
        """
    )


def _migration_11_drop_articles_story_index(db: sqlite_utils.Database) -> None:
    """Drop `idx_articles_story_id` (issue 17): `idx_articles_story_id_language` (migration
    8) begins with the same column, so it serves every look-up by story, and the writer
    no longer keeps two indexes of it for each article it stores."""
    db.execute("DROP INDEX IF EXISTS idx_articles_story_id")


def _migration_12_fts_without_insert_trigger(db: sqlite_utils.Database) -> None:
    """Keep `articles_fts` in step without an insert trigger (issue 17): the writer indexes
    each article it inserts (`ArticleStore.store_entries`). FTS5 writes its pending terms
    out to new segments at every statement that reaches it through a trigger (the
    statement's savepoint), so each stored article cost a segment and its merges: about
    four block writes an article, against one per thousand terms inserted directly. The
    update trigger now fires only when the title or the summary changes, so a
    cross-language join that moves articles to another story no longer re-indexes them.
    Whoever inserts into `articles` by hand indexes the rows too (or runs FTS5's
    'rebuild')."""
    db.execute("DROP TRIGGER IF EXISTS articles_ai")
    db.execute("DROP TRIGGER IF EXISTS articles_au")
    db.execute(
        """
        CREATE TRIGGER articles_au AFTER UPDATE OF title, summary ON articles BEGIN
          INSERT INTO articles_fts (articles_fts, rowid, title, summary)
            VALUES ('delete', old.rowid, old.title, old.summary);
          INSERT INTO articles_fts (rowid, title, summary)
            VALUES (new.rowid, new.title, new.summary);
        END
        """
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1_initial,
    _migration_2_query_views,
    _migration_3_alert_watermarks,
    _migration_4_alert_log_delivery,
    _migration_5_story_title_index,
    _migration_6_retention_evidence_index,
    _migration_7_channel_outbox,
    _migration_8_story_signs,
    _migration_9_story_titles_by_day,
    _migration_10_score_days,
    _migration_11_drop_articles_story_index,
    _migration_12_fts_without_insert_trigger,
)


SCHEMA_VERSION = len(MIGRATIONS)
