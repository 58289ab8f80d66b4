"""The full-text index (`articles_fts`) holds every stored article, as the writer stores it.

Real SQLite, the shipped rules, the real poll recording (`pipeline.record_feed_result`).
Since migration 12 the writer indexes each article it inserts itself (FTS5 writes its
pending terms out at every statement that reaches it through a trigger, issue 17); the
update trigger fires only when a title or a summary changes. FTS5's own integrity check
with a non-zero rank compares the index with the `articles` table: it fails when an
article is missing from the index or indexed with other words.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.config import Config
from monitor.db import base
from monitor.models import Entry, Feed
from tests.support.bilingual import (
    CLASH_EN,
    CLASH_RU,
    NEWS,
    WIRE,
    config_with,
    record_poll,
    store_for,
)

T0 = datetime(2024, 6, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def config() -> Config:
    return config_with(WIRE, NEWS)


@pytest.fixture
def store(tmp_path: Path, config: Config) -> Iterator[db.Store]:
    with store_for(tmp_path / "m.db", config, now=T0) as s:
        yield s


def item(feed: Feed, entry_id: str, text: tuple[str, str], *, language: str) -> Entry:
    return Entry(entry_id, feed.id, None, text[0], text[1], T0, language, f"{entry_id}:{text[0]}")


def found(conn: sqlite3.Connection, words: str) -> set[int]:
    return {
        int(rowid)
        for (rowid,) in conn.execute(
            "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?", (words,)
        )
    }


def article_id(conn: sqlite3.Connection, entry_id: str) -> int:
    (value,) = conn.execute("SELECT id FROM articles WHERE entry_id = ?", (entry_id,)).fetchone()
    return int(value)


def check_index(conn: sqlite3.Connection) -> None:
    """FTS5's integrity check against the content table (raises when they differ)."""
    conn.execute("INSERT INTO articles_fts (articles_fts, rank) VALUES ('integrity-check', 1)")
    (indexed,) = conn.execute("SELECT count(*) FROM articles_fts_docsize").fetchone()
    (stored,) = conn.execute("SELECT count(*) FROM articles").fetchone()
    assert indexed == stored


def test_the_check_fails_on_an_article_missing_from_the_index(store: db.Store) -> None:
    """The check these tests rely on does see a missing article."""
    with store.transaction():
        store.conn.execute(
            "INSERT INTO stories (id, first_seen_at, title) VALUES (1, '2024-06-07', 'x')"
        )
        store.conn.execute(
            "INSERT INTO articles (feed_id, entry_id, story_id, title, first_seen_at) "
            "VALUES ('wire', 'by-hand', 1, 'Unindexed words', '2024-06-07')"
        )
    with pytest.raises(sqlite3.DatabaseError):
        check_index(store.conn)


def test_every_article_the_poll_stores_is_searchable_in_both_languages(
    store: db.Store, config: Config
) -> None:
    record_poll(store, config, WIRE, [item(WIRE, "en-1", CLASH_EN, language="en")], now=T0)
    summary = record_poll(
        store,
        config,
        NEWS,
        [item(NEWS, "ru-1", CLASH_RU, language="ru")],
        now=T0 + timedelta(hours=1),
    )
    assert summary.new_articles == 1
    check_index(store.conn)
    assert found(store.conn, "Isfara") == {article_id(store.conn, "en-1")}
    assert found(store.conn, "Исфары") == {article_id(store.conn, "ru-1")}
    # The Russian report joined the English story (`test_cross_language.py`): the join
    # moved it to the other story and left its words where they were.
    (stories,) = store.conn.execute("SELECT count(DISTINCT story_id) FROM articles").fetchone()
    assert stories == 1


def test_many_articles_in_one_transaction_write_the_index_out_once(
    store: db.Store, config: Config
) -> None:
    """With the insert trigger, each article's statement wrote a new FTS segment (and its
    merges): about four block writes an article. Indexed directly, the terms are written
    out when the transaction commits."""
    written: list[str] = []
    store.conn.set_trace_callback(
        lambda sql: written.append(sql) if "articles_fts_data" in sql else None
    )
    entries = [
        item(
            WIRE,
            f"e{n}",
            (f"Report {n} on the Batken border road", f"Text {n} of a report."),
            language="en",
        )
        for n in range(300)
    ]
    summary = record_poll(store, config, WIRE, entries, now=T0)
    store.conn.set_trace_callback(None)
    assert summary.new_articles == 300
    check_index(store.conn)
    assert len(found(store.conn, "Batken")) == 300
    assert len(written) < 30, f"{len(written)} FTS block writes for 300 articles"


def test_moving_articles_to_another_story_does_not_touch_the_index(store: db.Store) -> None:
    with store.transaction():
        store.conn.execute(
            "INSERT INTO stories (id, first_seen_at, title) "
            "VALUES (1, '2024-06-07', 'a'), (2, '2024-06-07', 'b')"
        )
    with store.transaction():
        for n in range(20):
            store.store_entries(
                WIRE,
                [item(WIRE, f"m{n}", (f"Title {n} about Vorukh", "Summary."), language="en")],
                now=T0,
            )
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    with store.transaction():
        store.conn.execute("UPDATE articles SET story_id = 2")
    store.conn.set_trace_callback(None)
    assert not [sql for sql in statements if "articles_fts" in sql]
    check_index(store.conn)
    assert len(found(store.conn, "Vorukh")) == 20


def test_a_changed_article_is_indexed_with_its_new_words(store: db.Store, config: Config) -> None:
    record_poll(
        store,
        config,
        WIRE,
        [item(WIRE, "c1", ("Talks planned in Khujand", "Soon."), language="en")],
        now=T0,
    )
    changed = Entry("c1", WIRE.id, None, "Talks cancelled in Osh", "Later.", T0, "en", "other-hash")
    record_poll(store, config, WIRE, [changed], now=T0 + timedelta(hours=1))
    check_index(store.conn)
    assert found(store.conn, "Khujand") == set()
    assert found(store.conn, "Osh") == {article_id(store.conn, "c1")}


def test_a_database_indexed_by_the_old_trigger_migrates_and_stays_whole(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:
        patch.setattr(base, "SCHEMA_VERSION", 11)
        with db.Store.open(path) as old:
            assert old.schema_version() == 11
            old.sync_feeds(list(config.feeds), now=T0)
            # As the code of schema 11 stored it: the insert trigger indexed the row.
            with old.transaction():
                old.conn.execute(
                    "INSERT INTO stories (id, first_seen_at, title) VALUES (1, '2024-06-07', ?)",
                    (CLASH_EN[0],),
                )
                old.conn.execute(
                    "INSERT INTO articles (feed_id, entry_id, story_id, title, summary, "
                    "language, first_seen_at) VALUES ('wire', 'old-1', 1, ?, ?, 'en', '2024-06-07')",
                    CLASH_EN,
                )
            (triggers,) = old.conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'articles_ai'"
            ).fetchone()
            assert triggers == 1
    with db.Store.open(path) as new:
        assert new.schema_version() == db.SCHEMA_VERSION
        record_poll(
            new,
            config,
            NEWS,
            [item(NEWS, "new-1", CLASH_RU, language="ru")],
            now=T0 + timedelta(hours=1),
        )
        check_index(new.conn)
        assert found(new.conn, "Isfara") == {article_id(new.conn, "old-1")}
        assert found(new.conn, "Исфары") == {article_id(new.conn, "new-1")}
