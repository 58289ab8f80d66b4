"""Read-only report queries for the CLI, the report site, metrics and status.

Each takes an open `Store` (usually read-only) and returns plain rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.models import (
    EVENT_CONFIDENCE,
    from_iso,
    to_iso,
)

if TYPE_CHECKING:
    from monitor.db import Store

from monitor.db.schema import FEED_HEALTH_SQL

# Period -> (the SQL expression that names a point's period, the suffix that makes the
# name a timestamp, the SQL expression of the first instant after the period). The day
# expression is also indexed (migration 2), so a year of daily history is grouped in
# index order, without sorting 35,000 points.
HISTORY_BUCKETS = {
    # an hour and a day are prefixes of the ISO text: the period's points sort from
    # the prefix up to the prefix followed by "~" (after every digit, "T", ":" and "Z")
    "1h": ("substr(at, 1, 13)", ":00:00Z", "g.bucket || '~'"),
    "1d": ("substr(at, 1, 10)", "T00:00:00Z", "g.bucket || '~'"),
    # Weeks start on Monday: step back 6 days, then forward to the next Monday (a Monday
    # stays in its own week).
    "1w": (
        "date(substr(at, 1, 10), '-6 days', 'weekday 1')",
        "T00:00:00Z",
        "date(g.bucket, '+7 days')",
    ),
}
# The columns of a raw history row.
HISTORY_COLUMNS = (
    "theatre_id",
    "at",
    "score",
    "level",
    "change_24h",
    "change_7d",
    "baseline",
    "surge",
    "stories",
    "methodology_version",
)


def _distinct(store: Store, table: str, column: str) -> list[str]:
    """The distinct values of an indexed column, sorted, by a skip scan of its index: one
    index step per value, not per row."""
    return [
        str(row[0])
        for row in store.conn.execute(
            f"""
            WITH RECURSIVE t(id) AS (
              SELECT min({column}) FROM {table}
              UNION ALL
              SELECT (SELECT min({column}) FROM {table} WHERE {column} > t.id)
              FROM t WHERE t.id IS NOT NULL
            )
            SELECT id FROM t WHERE id IS NOT NULL
            """
        )
    ]


def score_theatre_ids(store: Store) -> list[str]:
    """The theatres that have score points, sorted (`_distinct`)."""
    return _distinct(store, "scores", "theatre_id")


def history_rows(
    store: Store,
    *,
    theatre_id: str | None,
    since: datetime,
    until: datetime,
    every: str | None = None,
    columns: Sequence[str] = HISTORY_COLUMNS,
) -> list[dict[str, Any]]:
    """Score points in [since, until], ordered by theatre and time; with `every`, one row
    per period (its peak score, the level of its last point, its number of points), so a
    year of 15-minute points reads as 365 days. `columns` picks a raw row's columns (of
    HISTORY_COLUMNS; a caller that shows a few reads only those).

    Each theatre is read on its own, through its index range: one query over every
    theatre would walk the whole index (a year of every theatre) to find a month.
    """
    theatres = [theatre_id] if theatre_id is not None else score_theatre_ids(store)
    rows: list[dict[str, Any]] = []
    for theatre in theatres:
        rows.extend(_theatre_history(store, theatre, since=since, until=until, every=every,
                                     columns=columns))  # fmt: skip
    return rows


def _theatre_history(
    store: Store,
    theatre_id: str,
    *,
    since: datetime,
    until: datetime,
    every: str | None,
    columns: Sequence[str],
) -> list[dict[str, Any]]:
    start, end = to_iso(since), to_iso(until)
    if every is None:
        unknown = set(columns) - set(HISTORY_COLUMNS)
        if unknown:
            raise ValueError(f"not a history column: {', '.join(sorted(unknown))}")
        return store.query(
            f"SELECT {', '.join(columns)} FROM scores "
            "WHERE theatre_id = ? AND at BETWEEN ? AND ? ORDER BY at",
            [theatre_id, start, end],
        )
    first_day, last_day = start[:10], end[:10]
    if every == "1d" and _has_score_days(store):
        # Whole days from their summaries (the score_days migration); the first and the last day,
        # which the window may cut, from their points.
        whole = store.query(
            "SELECT ?1 AS theatre_id, day || 'T00:00:00Z' AS at, peak AS score, "
            "last_level AS level, stories, points FROM score_days "
            "WHERE theatre_id = ?1 AND day > ?2 AND day < ?3 ORDER BY day",
            [theatre_id, first_day, last_day],
        )
        cut = _grouped_history(store, theatre_id, start, end, every, "IN (?4, ?5)")
        return sorted([*cut, *whole], key=lambda row: str(row["at"]))
    return _grouped_history(store, theatre_id, start, end, every, "BETWEEN ?4 AND ?5")


def _has_score_days(store: Store) -> bool:
    """Whether the database has the day summaries (a file not yet migrated, opened
    read-only, may not)."""
    return (
        store.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'score_days'"
        ).fetchone()
        is not None
    )


def _grouped_history(
    store: Store, theatre_id: str, start: str, end: str, every: str, days: str
) -> list[dict[str, Any]]:
    """One row per period of the theatre's points in [start, end] whose day (?4 the
    window's first, ?5 its last) is `days`."""
    bucket, suffix, bucket_end = HISTORY_BUCKETS[every]
    # The level at a period's end: its last point (at or before `until`), found by one
    # index step rather than by carrying max(at) through the grouping, which costs more
    # than the grouping itself. The day condition lets the day index start at `since`.
    return store.query(
        f"""
        WITH g AS (
          SELECT {bucket} AS bucket, max(score) AS score, max(stories) AS stories,
                 count(*) AS points
          FROM scores
          WHERE theatre_id = ?1 AND at BETWEEN ?2 AND ?3 AND substr(at, 1, 10) {days}
          GROUP BY {bucket}
        )
        SELECT ?1 AS theatre_id, g.bucket || '{suffix}' AS at, g.score,
               (SELECT s.level FROM scores s
                WHERE s.theatre_id = ?1 AND s.at >= g.bucket AND s.at < {bucket_end}
                  AND s.at <= ?3
                ORDER BY s.at DESC LIMIT 1) AS level,
               g.stories, g.points
        FROM g ORDER BY g.bucket
        """,
        [theatre_id, start, end, start[:10], end[:10]],
    )


def indicator_ids(store: Store) -> tuple[str, ...]:
    """Every indicator id the database has matches for, sorted (`_distinct`)."""
    return tuple(_distinct(store, "matches", "indicator_id"))


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

    # Each source: SQL giving candidate article ids (a WHERE clause last), the name of its
    # id column, and its parameters.
    sources: list[tuple[str, str, list[Any]]] = []
    query = None
    if search:
        # imported here: the stemmers cost a search 40-80 ms to load, other listings nothing
        from monitor.db.vocabulary import fts_index_terms
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
