"""The same event in English and in Russian is one story with both outlets as sources.

Real SQLite, the shipped rules, the real poll recording (`pipeline.record_feed_result`):
the join happens after matching, in the poll's transaction (issue 17).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.config import Config
from monitor.models import Entry, Feed
from tests.support.bilingual import (
    CLASH_EN,
    CLASH_RU,
    NEWS,
    OTHER,
    WIRE,
    config_with,
    record_poll,
    store_for,
)

T0 = datetime(2024, 6, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def config() -> Config:
    return config_with(WIRE, NEWS, OTHER)


@pytest.fixture
def store(tmp_path: Path, config: Config) -> Iterator[db.Store]:
    with store_for(tmp_path / "m.db", config, now=T0) as s:
        yield s


def poll(
    store: db.Store,
    config: Config,
    feed: Feed,
    entry_id: str,
    text: tuple[str, str],
    *,
    published: datetime,
    language: str,
) -> int:
    """Record one poll of `feed` bringing one item; return the item's story."""
    now = published + timedelta(hours=1)
    entry = Entry(entry_id, feed.id, None, text[0], text[1], published, language, entry_id)
    summary = record_poll(store, config, feed, [entry], now=now)
    assert summary.events >= 1, "the shipped rules should find a border clash here"
    (story_id,) = store.conn.execute(
        "SELECT story_id FROM articles WHERE feed_id = ? AND entry_id = ?", (feed.id, entry_id)
    ).fetchone()
    return int(story_id)


def sources(store: db.Store, story_id: int) -> int:
    return int(
        store.conn.execute("SELECT sources FROM stories WHERE id = ?", (story_id,)).fetchone()[0]
    )


def test_the_same_clash_in_english_and_russian_is_one_story_of_two_sources(
    store: db.Store, config: Config
) -> None:
    english = poll(store, config, WIRE, "1", CLASH_EN, published=T0, language="en")
    russian = poll(
        store, config, NEWS, "a", CLASH_RU, published=T0 + timedelta(hours=5), language="ru"
    )
    assert russian == english
    assert sources(store, english) == 2
    matches = store.query(
        "SELECT DISTINCT story_id FROM matches WHERE indicator_id = 'border_clash'"
    )
    assert matches == [{"story_id": english}]
    # the Russian item's own story stays, empty, saying where its articles went
    assert store.query("SELECT sources FROM stories WHERE merged_into = ?", [english]) == [
        {"sources": 0}
    ]
    scored = store.scored_matches(
        "kg-tj",
        since=T0 - timedelta(days=1),
        until=T0 + timedelta(days=1),
        indicators=config.rules.indicators,
    )
    assert {(m.story_id, m.sources) for m in scored if m.indicator_id == "border_clash"} == {
        (english, 2)
    }


def test_the_join_also_works_the_other_way_round(store: db.Store, config: Config) -> None:
    russian = poll(store, config, NEWS, "a", CLASH_RU, published=T0, language="ru")
    english = poll(
        store, config, WIRE, "1", CLASH_EN, published=T0 + timedelta(hours=20), language="en"
    )
    assert english == russian and sources(store, russian) == 2


def test_a_report_two_days_later_is_another_event(store: db.Store, config: Config) -> None:
    english = poll(store, config, WIRE, "1", CLASH_EN, published=T0, language="en")
    russian = poll(
        store, config, NEWS, "a", CLASH_RU, published=T0 + timedelta(days=2), language="ru"
    )
    assert russian != english and sources(store, english) == sources(store, russian) == 1


def test_a_clash_elsewhere_on_the_border_is_another_event(store: db.Store, config: Config) -> None:
    english = poll(store, config, WIRE, "1", CLASH_EN, published=T0, language="en")
    elsewhere = (
        "Кыргызские и таджикские пограничники открыли огонь у Лейлека",
        "Кыргызские и таджикские пограничники обменялись огнем у Лейлека, Кулунду и "
        "Деваштича, сообщили в Душанбе. Ранены трое.",
    )
    russian = poll(
        store, config, NEWS, "a", elsewhere, published=T0 + timedelta(hours=3), language="ru"
    )
    assert russian != english


def test_a_story_already_in_both_languages_takes_no_third_one_of_a_language(
    store: db.Store, config: Config
) -> None:
    """One join per language: a second English report with another headline stays apart
    (as same-language grouping decides), it does not ride on the Russian article."""
    english = poll(store, config, WIRE, "1", CLASH_EN, published=T0, language="en")
    poll(store, config, NEWS, "a", CLASH_RU, published=T0 + timedelta(hours=2), language="ru")
    other = (
        "Deadly shooting on the Kyrgyz-Tajik frontier at Batken",
        "Border guards of Kyrgyzstan and Tajikistan exchanged fire at Batken and Isfara, "
        "Bishkek said; two soldiers were killed.",
    )
    third = poll(store, config, OTHER, "z", other, published=T0 + timedelta(hours=4), language="en")
    assert third != english
