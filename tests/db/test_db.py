"""The state database: migrations, idempotent storage, stories, outbox, read-only access."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.errors import DatabaseError
from monitor.models import (
    AlertDecision,
    Contribution,
    Entry,
    Feed,
    FeedState,
    FetchResult,
    Indicator,
    Match,
    ScorePoint,
)

NOW = datetime(2022, 9, 16, 12, 0, tzinfo=UTC)
FEED_A = Feed(id="a", url="https://a.example/rss", name="Outlet A", source_weight=1.0)
FEED_B = Feed(id="b", url="https://b.example/rss", name="Outlet B", source_weight=0.5)
INDICATORS = {"border_clash": Indicator("border_clash", "", 25.0, "critical")}


def entry(
    entry_id: str, title: str, *, url: str | None = None, hours: float = 0, summary: str = "Text."
) -> Entry:
    return Entry(
        entry_id=entry_id,
        feed_id="a",
        url=url,
        title=title,
        summary=summary,
        published_at=NOW - timedelta(hours=hours),
        language="en",
        content_hash=str(hash((title, summary))),
    )


@pytest.fixture
def store(tmp_path: Path) -> db.Store:
    s = db.Store.open(tmp_path / "m.db")
    s.sync_feeds([FEED_A, FEED_B], now=NOW)
    yield s
    s.close()


def test_fresh_database_gets_every_migration_and_wal(tmp_path: Path) -> None:
    with db.Store.open(tmp_path / "fresh.db") as s:
        assert s.schema_version() == db.SCHEMA_VERSION
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = set(s.db.table_names())
        assert {"feeds", "articles", "stories", "matches", "scores", "alerts", "outbox"} <= tables
        assert {"daily_scores", "latest_scores", "evidence", "alert_log"} <= set(s.db.view_names())
        assert s.integrity_check() == "ok"


def test_existing_database_is_migrated_once_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with db.Store.open(path) as s:
        s.sync_feeds([FEED_A], now=NOW)
    with db.Store.open(path) as s:
        assert s.schema_version() == db.SCHEMA_VERSION
        assert (
            s.conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
            == db.SCHEMA_VERSION
        )
        assert s.feed_state("a") is not None


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with db.Store.open(path) as s:
        s.conn.execute("INSERT INTO schema_migrations VALUES (999, 'x')")
    with pytest.raises(DatabaseError, match="newer than this monitor understands"):
        db.Store.open(path)


def test_entries_are_stored_once_and_updates_are_reported(store: db.Store) -> None:
    with store.transaction():
        first = store.store_entries(FEED_A, [entry("1", "Shots fired at the border")], now=NOW)
        again = store.store_entries(FEED_A, [entry("1", "Shots fired at the border")], now=NOW)
    assert len(first) == 1 and again == []
    with store.transaction():
        changed = store.store_entries(
            FEED_A, [entry("1", "Shots fired at the border", summary="Updated text.")], now=NOW
        )
    assert [a.article_id for a in changed] == [first[0].article_id]
    assert store.conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 1


def test_same_story_from_two_outlets_is_one_story_with_two_sources(store: db.Store) -> None:
    with store.transaction():
        [a] = store.store_entries(
            FEED_A, [entry("1", "Kyrgyz and Tajik guards exchange fire on border")], now=NOW
        )
        [b] = store.store_entries(
            FEED_B,
            [entry("x", "Kyrgyz and Tajik guards exchange fire on the border", hours=2)],
            now=NOW,
        )
        [c] = store.store_entries(
            FEED_B, [entry("y", "Armenia freezes CSTO participation")], now=NOW
        )
    assert a.story_id == b.story_id != c.story_id
    sources = dict(store.conn.execute("SELECT id, sources FROM stories").fetchall())
    assert sources[a.story_id] == 2 and sources[c.story_id] == 1


def test_same_canonical_url_joins_the_story(store: db.Store) -> None:
    with store.transaction():
        [a] = store.store_entries(
            FEED_A, [entry("1", "Headline one", url="https://n.example/x?utm_source=a")], now=NOW
        )
        [b] = store.store_entries(
            FEED_B, [entry("2", "Completely other words", url="https://N.example/x#frag")], now=NOW
        )
    assert a.story_id == b.story_id


def test_matches_are_upserted_and_withdrawn_when_gone(store: db.Store) -> None:
    with store.transaction():
        [article] = store.store_entries(FEED_A, [entry("1", "Clash")], now=NOW)
        store.store_matches(
            article, [Match("border_clash", "kg-tj", 0.9, "Shots.", ("shot",))], now=NOW
        )
        store.store_matches(
            article, [Match("border_clash", "kg-tj", 0.8, "Shots!", ("shot",))], now=NOW
        )
    found = store.scored_matches(
        "kg-tj", since=NOW - timedelta(days=1), until=NOW, indicators=INDICATORS
    )
    assert [(m.confidence, m.evidence, m.weight) for m in found] == [(0.8, "Shots!", 25.0)]
    with store.transaction():
        store.store_matches(article, [], now=NOW)
    assert (
        store.scored_matches(
            "kg-tj", since=NOW - timedelta(days=1), until=NOW, indicators=INDICATORS
        )
        == []
    )


def test_matches_of_a_new_article_return_the_ids_they_are_stored_under(
    store: db.Store,
) -> None:
    """A new article's matches are inserted without looking each one up again: the ids
    returned are still the stored rows', a key given twice included (its second match
    updates the first row)."""
    with store.transaction():
        [first, second] = store.store_entries(
            FEED_A, [entry("1", "Clash"), entry("2", "Arms deal")], now=NOW
        )
        ids = store.store_matches(
            first,
            [
                Match("border_clash", "kg-tj", 0.9, "Shots.", ("shot",)),
                Match("arms_delivery", "kg-tj", 0.6, "Drones.", ("drone",)),
                Match("border_clash", "kg-tj", 0.7, "Shots again.", ("shot",)),
            ],
            now=NOW,
        )
        [other] = store.store_matches(
            second, [Match("arms_delivery", "kg-tj", 0.8, "Deal.", ("deal",))], now=NOW
        )
    stored = {
        (article_id, indicator_id): match_id
        for match_id, article_id, indicator_id in store.conn.execute(
            "SELECT id, article_id, indicator_id FROM matches"
        )
    }
    assert len(stored) == 3
    assert ids == [
        stored[(first.article_id, "border_clash")],
        stored[(first.article_id, "arms_delivery")],
        stored[(first.article_id, "border_clash")],
    ]
    assert other == stored[(second.article_id, "arms_delivery")]
    (evidence,) = store.conn.execute(
        "SELECT evidence FROM matches WHERE id = ?", (ids[0],)
    ).fetchone()
    assert evidence == "Shots again."


def test_removed_indicator_no_longer_counts(store: db.Store) -> None:
    with store.transaction():
        [article] = store.store_entries(FEED_A, [entry("1", "Clash")], now=NOW)
        store.store_matches(article, [Match("old_sign", "kg-tj", 0.9, "x", ())], now=NOW)
    assert (
        store.scored_matches(
            "kg-tj", since=NOW - timedelta(days=1), until=NOW, indicators=INDICATORS
        )
        == []
    )


def test_due_feeds_and_poll_record(store: db.Store) -> None:
    due = store.due_feeds(now=NOW)
    assert [s.feed_id for s in due] == ["a", "b"]
    later = NOW + timedelta(minutes=30)
    new_state = FeedState(feed_id="a", url=FEED_A.url, etag='"v1"', next_check_at=later)
    result = FetchResult(feed_id="a", outcome="ok", fetched_at=NOW, http_status=200, etag='"v1"')
    with store.transaction():
        store.record_poll(new_state, result, None, entries_seen=3)
    assert [s.feed_id for s in store.due_feeds(now=NOW)] == ["b"]
    state = store.feed_state("a")
    assert state is not None and state.etag == '"v1"' and state.next_check_at == later
    report = {r["id"]: r for r in store.feeds_report()}
    assert report["a"]["last_status"] == "ok" and report["a"]["entries_seen"] == 3


def test_score_points_are_unique_per_theatre_and_time(store: db.Store) -> None:
    with store.transaction():
        [article] = store.store_entries(FEED_A, [entry("1", "Clash")], now=NOW)
        [match_id] = store.store_matches(
            article, [Match("border_clash", "kg-tj", 0.9, "x", ())], now=NOW
        )
    point = ScorePoint(
        theatre_id="kg-tj",
        at=NOW,
        raw=20.0,
        index=40.0,
        level="elevated",
        methodology_version="1",
        contributions=(Contribution(article.story_id, match_id, "border_clash", 20.0),),
    )
    with store.transaction():
        first = store.insert_score(point)
        second = store.insert_score(point)
    assert first == second
    assert store.contributions(first)[0]["points"] == 20.0


def test_alert_dedup_key_is_recorded_once_and_outbox_flows(store: db.Store) -> None:
    decision = AlertDecision(
        dedup_key="kg-tj:level_up:high@x",
        kind="level_up",
        theatre_id="kg-tj",
        created_at=NOW,
        urgent=True,
        level="high",
        index=60.0,
        reason="entered HIGH",
    )
    with store.transaction():
        alert_id = store.insert_alert(decision)
        assert store.insert_alert(decision) is None
        assert alert_id is not None
        store.enqueue(
            alert_id, message_id="<m@x>", recipients=["a@b.c"], subject="s", message=b"raw", now=NOW
        )
    [item] = store.due_outbox(now=NOW)
    store.mark_retry(item.id, error="451 later", next_attempt_at=NOW + timedelta(minutes=5))
    assert store.due_outbox(now=NOW) == []
    [item] = store.due_outbox(now=NOW + timedelta(minutes=5))
    assert item.attempts == 1
    store.mark_sent(item.id, now=NOW)
    assert store.outbox_counts() == {"sent": 1}
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.enqueue(
            alert_id, message_id="<m@x>", recipients=[], subject="s", message=b"", now=NOW
        )


def test_readonly_store_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    db.Store.open(path).close()
    with (
        db.Store.open(path, readonly=True) as ro,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        ro.conn.execute("INSERT INTO meta VALUES ('k', 'v')")


def test_readonly_open_of_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no database here yet"):
        db.Store.open(tmp_path / "missing.db", readonly=True)


def test_failed_transaction_leaves_nothing(store: db.Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.store_entries(FEED_A, [entry("1", "Partial")], now=NOW)
        raise RuntimeError("crash mid-transaction")
    assert store.conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


def test_fts_search_quotes_user_text(store: db.Store) -> None:
    with store.transaction():
        store.store_entries(FEED_A, [entry("1", "Drone plant opens in Dushanbe")], now=NOW)
    rows = db.article_rows(
        store, theatre_id=None, indicator_id=None, since=None, search='dushanbe "AND'
    )
    assert [r["title"] for r in rows] == []
    rows = db.article_rows(
        store, theatre_id=None, indicator_id=None, since=None, search="Dushanbe drone"
    )
    assert [r["title"] for r in rows] == ["Drone plant opens in Dushanbe"]
