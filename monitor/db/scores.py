"""Score points and their contributions: the evidence behind every point of the score."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.models import (
    Contribution,
    ScorePoint,
    from_iso,
    to_iso,
)

if TYPE_CHECKING:
    pass

from monitor.db.base import StoreBase, _round

# Evidence kept per score point: the largest contributions, and none too small to matter.
# Storing every decayed match of the window for every 15-minute point would cost ~14 GiB
# a year at 100,000 matches (bench/query.py); this keeps it near 1% of that, and
# `scores.stories` still counts every contributing story.
MAX_STORED_CONTRIBUTIONS = 30


MIN_STORED_POINTS = 0.01


def stored_contributions(point: ScorePoint) -> list[Contribution]:
    """The contributions of `point` worth keeping as its evidence, largest first."""
    ranked = sorted(point.contributions, key=lambda c: (-abs(c.points), c.match_id))
    return [c for c in ranked if abs(c.points) >= MIN_STORED_POINTS][:MAX_STORED_CONTRIBUTIONS]


class ScoreStore(StoreBase):
    """Score points and their contributions: the evidence behind every point of the score."""

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

    def score_at(self, theatre_id: str, at: datetime | None) -> dict[str, Any] | None:
        if at is None:
            return self.last_score(theatre_id)
        rows = self._rows(
            "SELECT * FROM scores WHERE theatre_id = ? AND at <= ? ORDER BY at DESC LIMIT 1",
            [theatre_id, to_iso(at)],
        )
        return rows[0] if rows else None
