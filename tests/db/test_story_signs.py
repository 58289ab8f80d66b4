"""The cross-language join's candidates through `story_signs` (issue 17): walking the index
outward from a new story's time finds the same stories, in the same order, as sorting
every story of the sign in the window by (distance, id) did (the reference below is that
query, as it was before the index), ties, withdrawn matches and joined stories included.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.config import Config, load_config
from monitor.db import articles
from monitor.models import EVENT_CONFIDENCE, Entry, Feed, Match, to_iso
from monitor.score.stories import (
    CROSS_LANGUAGE_WINDOW_HOURS,
    EventStory,
    article_names_text,
    names_by_theatre,
)

T0 = datetime(2024, 6, 7, 9, 0, tzinfo=UTC)
FEEDS = (
    Feed(id="en", url="https://en.example/rss", name="En", language="en"),
    Feed(id="ru", url="https://ru.example/rss", name="Ru", language="ru"),
)
SIGNS = (("kg-tj", "border_clash"), ("kg-tj", "mobilisation"), ("am-az", "border_clash"))


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(indicators_path=None, settings_path=None, env={})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[db.Store]:
    with db.Store.open(tmp_path / "m.db") as s:
        s.sync_feeds(list(FEEDS), now=T0)
        yield s


def add_story(
    store: db.Store, rng: random.Random, number: int, published: datetime
) -> tuple[int, str]:
    """One article of its own story (a title of random words), with matches of random
    signs, some withdrawn or below an event."""
    feed = rng.choice(FEEDS)
    title = " ".join(f"w{rng.randrange(10**9)}" for _ in range(6))
    entry = Entry(f"e{number}", feed.id, None, title, "text", published, feed.id, f"h{number}")
    with store.transaction():
        [article] = store.store_entries(feed, [entry], now=published + timedelta(hours=1))
        matches = [
            Match(indicator, theatre, rng.choice((EVENT_CONFIDENCE, 0.9, 0.3)), "e", ())
            for theatre, indicator in rng.sample(SIGNS, rng.randint(1, 2))
        ]
        store.store_matches(article, matches, now=published + timedelta(hours=1))
        if rng.random() < 0.1:  # an edited article that lost its matches
            store.store_matches(article, [], now=published + timedelta(hours=2))
    return article.story_id, feed.id


def reference(store: db.Store, new: EventStory) -> list[int]:
    """The candidates as the join chose them before `story_signs`: every story of the
    sign in the window, sorted by distance then id, the nearest CROSS_LANGUAGE_CANDIDATES.
    (Distances in whole seconds: julianday differences carry rounding noise that would
    break ties between stories equally far away.)"""
    span = timedelta(hours=CROSS_LANGUAGE_WINDOW_HOURS)
    [language] = new.languages
    found: dict[int, float] = {}
    for theatre_id, indicator_id in sorted(new.events):
        for story_id, distance in store.conn.execute(
            """
            SELECT s.id, abs(round((julianday(s.published_at) - julianday(?)) * 86400)) AS distance
            FROM stories s
            WHERE s.id IN (SELECT story_id FROM matches WHERE theatre_id = ?
                           AND indicator_id = ? AND occurred_at BETWEEN ? AND ?
                           AND confidence >= ?)
              AND s.id != ? AND s.merged_into IS NULL
              AND s.published_at BETWEEN ? AND ?
              AND NOT EXISTS (SELECT 1 FROM articles a
                              WHERE a.story_id = s.id AND a.language = ?)
            """,
            (
                to_iso(new.published_at),
                theatre_id,
                indicator_id,
                to_iso(new.published_at - span - timedelta(days=1)),
                to_iso(new.published_at + span),
                EVENT_CONFIDENCE,
                new.story_id,
                to_iso(new.published_at - span),
                to_iso(new.published_at + span),
                language,
            ),
        ):
            found[int(story_id)] = float(distance)
    nearest = sorted(found.items(), key=lambda item: (item[1], item[0]))
    return [story_id for story_id, _ in nearest[: articles.CROSS_LANGUAGE_CANDIDATES]]


@pytest.mark.parametrize(
    ("seed", "remembered", "texts"),
    [
        (1, articles.EVENT_STORIES_MAX, articles.NAMES_CACHE_MAX),
        (2, 5, articles.NAMES_CACHE_MAX),
        (3, articles.EVENT_STORIES_MAX, articles.NAMES_CACHE_MAX),
        (4, 5, 5),
    ],
)
def test_the_walk_of_story_signs_finds_the_stories_the_full_sort_did(
    store: db.Store,
    config: Config,
    seed: int,
    remembered: int,
    texts: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also with the join's memory of read stories (and of the names in each text) bounded
    to 5: what is forgotten is read again, and the candidates stay the same."""
    monkeypatch.setattr(articles, "CROSS_LANGUAGE_CANDIDATES", 7)
    monkeypatch.setattr(articles, "EVENT_STORIES_MAX", remembered)
    monkeypatch.setattr(articles, "NAMES_CACHE_MAX", texts)
    rng = random.Random(seed)
    # Times on a coarse grid over four days, so many stories share a time (ties).
    stories = [
        add_story(store, rng, n, T0 + timedelta(hours=2 * rng.randrange(48))) for n in range(300)
    ]
    for story_id, _ in rng.sample(stories, 20):  # some stories joined another one
        store.conn.execute(
            "UPDATE stories SET merged_into = ? WHERE id = ?", (stories[0][0], story_id)
        )
    checked = 0
    for story_id, language in stories:
        for events in ({SIGNS[0]}, {SIGNS[0], SIGNS[1]}, {SIGNS[2]}):
            published = store.conn.execute(
                "SELECT published_at FROM stories WHERE id = ?", (story_id,)
            ).fetchone()[0]
            new = EventStory(
                story_id=story_id,
                languages=frozenset({language}),
                published_at=datetime.fromisoformat(published),
                events=frozenset(events),
                names={},
            )
            expected = reference(store, new)
            candidates = store._event_candidates(new, config.rules)
            found = [story.story_id for story in candidates]
            assert found == expected, (story_id, events)
            checked += len(expected) == 7
            for story in candidates[:2]:  # the names the join compares, found afresh
                assert story.names == fresh_names(store, config, story), story.story_id
    assert checked > 100  # the cap was reached often: the walk's stop was exercised
    assert len(store._event_stories) <= remembered
    assert len(store._names_cache) <= texts


def fresh_names(store: db.Store, config: Config, story: EventStory) -> dict[str, frozenset[str]]:
    found = [
        names_by_theatre(article_names_text(title, summary), config.rules)
        for title, summary in store.conn.execute(
            "SELECT title, summary FROM articles WHERE story_id = ?", (story.story_id,)
        )
    ]
    return {
        theatre: frozenset().union(*(names.get(theatre, frozenset()) for names in found))
        for theatre, _ in story.events
    }


def test_story_signs_follow_matches_moved_by_a_join(store: db.Store) -> None:
    rng = random.Random(5)
    a, _ = add_story(store, rng, 1, T0)
    b, _ = add_story(store, rng, 2, T0 + timedelta(hours=3))
    signs_a = set(
        store.conn.execute(
            "SELECT theatre_id, indicator_id FROM matches WHERE story_id = ? AND confidence >= 0.5",
            (a,),
        ).fetchall()
    )
    store.conn.execute("UPDATE matches SET story_id = ? WHERE story_id = ?", (b, a))
    published_b = store.conn.execute(
        "SELECT published_at FROM stories WHERE id = ?", (b,)
    ).fetchone()[0]
    rows = set(
        store.conn.execute(
            "SELECT theatre_id, indicator_id, published_at FROM story_signs WHERE story_id = ?",
            (b,),
        ).fetchall()
    )
    assert {(t, i, published_b) for t, i in signs_a} <= rows


def test_a_full_memory_of_the_join_drops_its_oldest_quarter_and_keeps_the_newest() -> None:
    """Dropping everything at the bound made the writer read every recent story and text
    again (the join's candidates are the newest); dropping the oldest quarter does not."""
    cache = {n: str(n) for n in range(100)}
    articles._make_room(cache, 100)
    assert list(cache) == list(range(25, 100))
    articles._make_room(cache, 100)  # below the bound: nothing goes
    assert len(cache) == 75
    small = {1: "a"}
    articles._make_room(small, 1)
    assert small == {}
