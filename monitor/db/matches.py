"""Matches: the signs found in each article, the revision counter alerts watch, and the
signs already alerted (the durable memory behind "never repeated").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.models import (
    EVENT_CONFIDENCE,
    Indicator,
    Match,
    ScoredMatch,
    from_iso,
    to_iso,
)

if TYPE_CHECKING:
    from monitor.db.articles import StoredArticle

    pass

from monitor.db.base import StoreBase


class MatchStore(StoreBase):
    """Matches: the signs found in each article, the revision counter alerts watch, and the"""

    def store_matches(
        self, article: StoredArticle, matches: Sequence[Match], *, now: datetime
    ) -> list[int]:
        """Record an article's matches; earlier matches it no longer has are withdrawn."""
        occurred = min(article.published_at, article.first_seen_at)
        ids: list[int] = []
        keys: set[tuple[str, str]] = set()
        # Inserted in this transaction and not matched yet: nothing stored to update or
        # withdraw, so each row's id is the one its INSERT made.
        new = article.article_id in self._unmatched_articles
        self._unmatched_articles.discard(article.article_id)
        # The story's event signs may change: what the join remembers of it is stale, and
        # an event match adds the story to its sign (as `story_signs`' trigger does).
        self._event_stories.pop(article.story_id, None)
        events = sorted(
            {(m.theatre_id, m.indicator_id) for m in matches if m.confidence >= EVENT_CONFIDENCE}
        )
        if events:
            published = self._story_published(article.story_id)
            if published is not None:
                _, signs = self._windows()
                for sign in events:
                    signs.add(sign, published, article.story_id)
        for match in matches:
            key = (match.indicator_id, match.theatre_id)
            cursor = self.conn.execute(
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
            if new and key not in keys:
                ids.append(int(cursor.lastrowid or 0))  # inserted: no row had its key
            else:  # updated in place: the row id is not the last inserted one
                row = self.conn.execute(
                    "SELECT id FROM matches WHERE article_id = ? AND indicator_id = ? "
                    "AND theatre_id = ?",
                    (article.article_id, match.indicator_id, match.theatre_id),
                ).fetchone()
                ids.append(int(row[0]))
            keys.add(key)
        if new:
            return ids  # no earlier matches to withdraw
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
