"""`score_days`: each theatre's day of score points summarised, kept by triggers on `scores`.

`monitor history --every 1d` reads whole days from it (issue 17), so it must always say
what grouping the points says: after points are added (in any order), removed (one by
one, in batches, by retention's downsampling) and changed, and after the migration that
builds it from points already stored. And the daily history must read the same from it as
from the points, for any window.
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import db
from monitor.db.connection import connect
from monitor.db.retention import prune, retention_plan
from monitor.db.schema import MIGRATIONS
from monitor.models import RetentionSettings, ScorePoint, to_iso

START = datetime(2024, 3, 1, tzinfo=UTC)
THEATRES = ("am-az", "kg-tj", "kz-ru")
LEVELS = ("low", "elevated", "high", "critical")

# What the summaries must hold: the points grouped by theatre and day.
GROUPED = """
    WITH g AS (
      SELECT theatre_id, substr(at, 1, 10) AS day, max(score) AS peak, max(stories) AS stories,
             count(*) AS points, max(at) AS last_at
      FROM scores GROUP BY theatre_id, substr(at, 1, 10)
    )
    SELECT g.*, s.level FROM g JOIN scores s ON s.theatre_id = g.theatre_id AND s.at = g.last_at
    ORDER BY 1, 2
"""
SUMMARIES = """
    SELECT theatre_id, day, peak, stories, points, last_at, last_level
    FROM score_days ORDER BY 1, 2
"""
# The daily history as it was computed before the summaries: every point grouped.
DAILY_REFERENCE = """
    WITH g AS (
      SELECT theatre_id, substr(at, 1, 10) AS bucket, max(score) AS score,
             max(stories) AS stories, count(*) AS points, max(at) AS last_at
      FROM scores WHERE at BETWEEN ? AND ? GROUP BY theatre_id, substr(at, 1, 10)
    )
    SELECT g.theatre_id, g.bucket || 'T00:00:00Z' AS at, g.score, s.level, g.stories, g.points
    FROM g JOIN scores s ON s.theatre_id = g.theatre_id AND s.at = g.last_at
    ORDER BY g.theatre_id, g.bucket
"""


def rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(sql, params)]


def random_points(rng: random.Random, days: int) -> tuple[list[ScorePoint], list[int | None]]:
    """Points on a jittered 15-minute-ish grid, with some days missing and some stories
    unknown (NULL), shuffled: the summaries may not depend on the order of arrival."""
    points = []
    for theatre in THEATRES:
        for day in range(days):
            if rng.random() < 0.15:
                continue
            for slot in rng.sample(range(96), rng.randint(1, 12)):
                at = START + timedelta(days=day, minutes=15 * slot)
                score = round(rng.uniform(0, 100), 3)
                stories = None if rng.random() < 0.1 else rng.randint(0, 9)
                points.append((theatre, at, score, stories))
    rng.shuffle(points)
    return [
        ScorePoint(theatre, at, score / 2, score, rng.choice(LEVELS), "1")
        for theatre, at, score, _ in points
    ], [stories for *_, stories in points]


def insert_points(store: db.Store, rng: random.Random, days: int) -> None:
    points, stories = random_points(rng, days)
    with store.transaction():
        for point, count in zip(points, stories, strict=True):
            score_id = store.insert_score(point)
            store.conn.execute("UPDATE scores SET stories = ? WHERE id = ?", (count, score_id))


def some_ids(store: db.Store, rng: random.Random) -> list[int]:
    """The points' ids in an order drawn from the test's seeded `rng` (never SQLite's
    unseeded random(): a run must be the same run every time)."""
    ids = [row[0] for row in store.conn.execute("SELECT id FROM scores ORDER BY id")]
    rng.shuffle(ids)
    return ids


def assert_in_step(store: db.Store) -> None:
    grouped = rows(store.conn, GROUPED)
    assert grouped  # the checks below compare something
    assert rows(store.conn, SUMMARIES) == grouped


def test_the_summaries_follow_points_added_removed_and_changed(tmp_path: Path) -> None:
    rng = random.Random(17)
    with db.Store.open(tmp_path / "d.db") as store:
        insert_points(store, rng, days=20)
        assert_in_step(store)
        # a point added again is no new point (the scorer's ON CONFLICT DO NOTHING)
        theatre, at = store.conn.execute("SELECT theatre_id, at FROM scores LIMIT 1").fetchone()
        with store.transaction():
            store.insert_score(
                ScorePoint(theatre, datetime.fromisoformat(at), 0.0, 99.0, "low", "1")
            )
        assert_in_step(store)
        # removed one by one: ordinary points, peaks, last points, whole days
        ids = some_ids(store, rng)
        for score_id in ids[: len(ids) // 4]:
            with store.transaction():
                store.conn.execute("DELETE FROM scores WHERE id = ?", (score_id,))
        assert_in_step(store)
        # ... and in one statement, a day's peak and last point among them
        with store.transaction():
            store.conn.execute(
                "DELETE FROM scores WHERE id IN (SELECT id FROM scores ORDER BY score DESC LIMIT 40)"
            )
            store.conn.execute(
                "DELETE FROM scores WHERE theatre_id = 'kg-tj' AND substr(at, 1, 10) = ?",
                (to_iso(START + timedelta(days=3))[:10],),
            )
        assert_in_step(store)
        # changed: score, level, stories, time (to another day) and theatre
        with store.transaction():
            for score_id in some_ids(store, rng)[:60]:
                store.conn.execute(
                    "UPDATE scores SET score = ?, level = ?, stories = ? WHERE id = ?",
                    (rng.uniform(0, 100), rng.choice(LEVELS), rng.choice((None, 3, 12)), score_id),
                )
            store.conn.execute(
                "UPDATE scores SET at = strftime('%Y-%m-%dT%H:%M:%SZ', at, '+1 day', '+7 minutes') "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(some_ids(store, rng)[:20]),),
            )
            store.conn.execute(
                "UPDATE scores SET theatre_id = 'ge-ru' WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(some_ids(store, rng)[:20]),),
            )
        assert_in_step(store)


def test_the_summaries_follow_retention_downsampling(tmp_path: Path) -> None:
    rng = random.Random(3)
    with db.Store.open(tmp_path / "r.db") as store:
        insert_points(store, rng, days=60)
        plan = retention_plan(
            RetentionSettings(score_full_days=20, score_hourly_days=40),
            now=START + timedelta(days=60),
            baseline_days=7,
        )
        before = store.conn.execute("SELECT count(*) FROM scores").fetchone()[0]
        prune(store, plan, pause_seconds=0)
        after = store.conn.execute("SELECT count(*) FROM scores").fetchone()[0]
        assert after < before  # retention removed points (so this checks something)
        assert_in_step(store)


def test_the_migration_summarises_the_points_already_stored(tmp_path: Path) -> None:
    [migration] = [m for m in MIGRATIONS if m.__name__.endswith("_score_days")]
    position = MIGRATIONS.index(migration)
    path = tmp_path / "old.db"
    store = db.Store(connect(path))
    for earlier in MIGRATIONS[:position]:
        earlier(store.db)
    points, stories = random_points(random.Random(5), days=10)
    store.conn.executemany(
        "INSERT INTO scores (theatre_id, at, score, level, stories, methodology_version) "
        "VALUES (?, ?, ?, ?, ?, '1')",
        [
            (p.theatre_id, to_iso(p.at), p.index, p.level, s)
            for p, s in zip(points, stories, strict=True)
        ],
    )
    migration(store.db)
    assert_in_step(store)
    store.close()


@pytest.mark.parametrize("seed", range(6))
def test_daily_history_reads_the_same_from_summaries_as_from_points(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    with db.Store.open(tmp_path / "h.db") as store:
        insert_points(store, rng, days=15)
        for _ in range(25):
            # windows that cut days anywhere, span one day or none, or reach past the data
            since = START + timedelta(minutes=rng.randrange(-3 * 1440, 16 * 1440))
            until = since + timedelta(
                minutes=rng.choice((0, 7, 60, 1440, rng.randrange(40 * 1440)))
            )
            theatre = rng.choice((None, *THEATRES))
            got = db.history_rows(store, theatre_id=theatre, since=since, until=until, every="1d")
            expected = [
                dict(
                    zip(
                        ("theatre_id", "at", "score", "level", "stories", "points"),
                        row,
                        strict=True,
                    )
                )
                for row in rows(store.conn, DAILY_REFERENCE, (to_iso(since), to_iso(until)))
                if theatre is None or row[0] == theatre
            ]
            assert got == expected, (since, until, theatre)
