"""The story window in memory (`monitor.db.story_window`) never decides on stale stories:
a rolled-back transaction and another connection's commit both make the writer read the
window again, and what the writer adds itself is found without a reload.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.models import EVENT_CONFIDENCE, Entry, Feed, Match
from monitor.score.stories import EventStory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FEEDS = [
    Feed(id="a", url="https://a.example/rss", name="A"),
    Feed(id="b", url="https://b.example/rss", name="B"),
]
TITLE = "Kyrgyz and Tajik border guards exchange fire near Vorukh enclave"
NEAR = "Kyrgyz, Tajik border guards exchange fire near the Vorukh enclave"


def entry(entry_id: str, feed: str, title: str, at: datetime = T0) -> Entry:
    return Entry(entry_id, feed, None, title, "", at, "en", f"h-{entry_id}")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "m.db"
    with db.Store.open(path) as store:
        store.sync_feeds(FEEDS, now=T0)
    return path


def test_a_story_added_in_this_connection_is_found_without_a_reload(path: Path) -> None:
    with db.Store.open(path) as store:
        with store.transaction():
            [first] = store.store_entries(FEEDS[0], [entry("1", "a", TITLE)], now=T0)
            [second] = store.store_entries(FEEDS[1], [entry("2", "b", NEAR)], now=T0)
        assert second.story_id == first.story_id
        titles, _ = store._windows()
        assert len(titles) == 1  # loaded once (empty), then kept up to date in memory


def test_a_rolled_back_story_is_not_joined(path: Path) -> None:
    with db.Store.open(path) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.store_entries(FEEDS[0], [entry("1", "a", TITLE)], now=T0)
            raise RuntimeError("the batch failed")
        with store.transaction():
            [article] = store.store_entries(FEEDS[1], [entry("2", "b", NEAR)], now=T0)
        stories = store.query("SELECT id FROM stories")
        # Joining the rolled-back story would point at a row that does not exist.
        assert stories == [{"id": article.story_id}]


def test_a_story_another_connection_committed_is_joined(path: Path) -> None:
    with db.Store.open(path) as writer, db.Store.open(path) as other:
        with writer.transaction():  # the writer's window is loaded (and empty)
            writer.store_entries(FEEDS[0], [entry("0", "a", "Floods close the Osh road")], now=T0)
        with other.transaction():
            [theirs] = other.store_entries(FEEDS[0], [entry("1", "a", TITLE)], now=T0)
        with writer.transaction():
            [ours] = writer.store_entries(FEEDS[1], [entry("2", "b", NEAR)], now=T0)
        assert ours.story_id == theirs.story_id


def test_titles_outside_the_loaded_days_are_read_when_needed(path: Path) -> None:
    later = T0 + timedelta(days=30)
    with db.Store.open(path) as store:
        with store.transaction():
            [old] = store.store_entries(FEEDS[0], [entry("1", "a", TITLE)], now=T0)
        with store.transaction():  # a month later: other days
            [new] = store.store_entries(FEEDS[0], [entry("2", "a", TITLE, later)], now=later)
            [late] = store.store_entries(
                FEEDS[1], [entry("3", "b", NEAR, T0 + timedelta(days=1))], now=later
            )
        assert new.story_id != old.story_id  # 30 days apart: another story
        assert late.story_id == old.story_id  # a late copy of the old one joins it


def test_a_joined_story_leaves_the_candidates_and_its_target_takes_its_sign(
    path: Path,
) -> None:
    from monitor.config import load_config

    rules = load_config(indicators_path=None, settings_path=None, env={}).rules
    sign = ("kg-tj", "border_clash")
    feeds = [
        Feed(id="en", url="https://en.example/rss", name="En", language="en"),
        Feed(id="ru", url="https://ru.example/rss", name="Ru", language="ru"),
    ]
    texts = {
        "en": "Clash on the Kyrgyz-Tajik border near Batken and Isfara",
        "ru": "Столкновение на кыргызско-таджикской границе у Баткена и Исфары",
    }
    with db.Store.open(path) as store:
        store.sync_feeds(feeds, now=T0)
        stored = {}
        for feed in feeds:
            with store.transaction():
                item = Entry(f"{feed.id}1", feed.id, None, texts[feed.id], "", T0, feed.id, feed.id)
                [article] = store.store_entries(feed, [item], now=T0)
                store.store_matches(
                    article, [Match("border_clash", "kg-tj", EVENT_CONFIDENCE, "e", ())], now=T0
                )
                joined = store.join_across_languages([article], rules, now=T0)
                stored[feed.id] = (article, joined)
        target = stored["en"][0].story_id
        assert stored["ru"][1] == {stored["ru"][0].story_id: target}
        # A story in a third language sees the joined event once: the target, which
        # now holds both articles, and not the empty story that joined it.
        new = EventStory(999, frozenset({"und"}), T0, frozenset({sign}), {})
        candidates = store._event_candidates(new, rules)
        assert [(story.story_id, story.languages) for story in candidates] == [
            (target, frozenset({"en", "ru"}))
        ]
