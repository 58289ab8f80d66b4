"""Cross-feed duplicates: exact story keys and near-identical titles (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import Entry
from monitor.stories import is_same_story, story_key, title_fingerprint

T0 = datetime(2024, 9, 14, 8, 0, tzinfo=UTC)


def entry(url: str | None, title: str = "t", summary: str = "s", digest: str = "d" * 64) -> Entry:
    return Entry(
        entry_id="x",
        feed_id="f",
        url=url,
        title=title,
        summary=summary,
        published_at=T0,
        language="en",
        content_hash=digest,
    )


def test_story_key_ignores_tracking_case_and_fragments() -> None:
    a = entry("https://News.example.org/a/1?utm_source=rss&id=2#top")
    b = entry("https://news.example.org/a/1?id=2&fbclid=abc")
    assert story_key(a) == story_key(b) == "url:https://news.example.org/a/1?id=2"


def test_story_key_without_a_link_uses_the_content_hash() -> None:
    assert story_key(entry(None, digest="a" * 64)) == "text:" + "a" * 64
    assert story_key(entry(None, digest="a" * 64)) != story_key(entry(None, digest="b" * 64))


SAME = [
    pytest.param(
        "Border clash kills 3 on Kyrgyz-Tajik frontier",
        "Border clash kills 3 on Kyrgyz-Tajik frontier - Reuters",
        "en",
        id="outlet-suffix",
    ),
    pytest.param(
        "BORDER CLASH KILLS 3 ON KYRGYZ-TAJIK FRONTIER!",
        "Border clash kills 3 on Kyrgyz–Tajik frontier",
        "en",
        id="case-punctuation",
    ),
    pytest.param(
        "Kyrgyzstan and Tajikistan agree to pull back troops from the border",
        "Kyrgyzstan, Tajikistan agree to pull troops back from border",
        "en",
        id="small-rewording",
    ),
    pytest.param(
        "Перестрелка на кыргызско-таджикской границе: погибли трое",
        "Перестрелка на кыргызско-таджикской границе, погибших трое",
        "ru",
        id="russian-inflection",
    ),
    pytest.param(
        "Азербайджан обвинил Армению в обстреле позиций",
        "Азербайджан обвинил Армению в обстреле позиций — ТАСС",
        "ru",
        id="russian-outlet-suffix",
    ),
]

DIFFERENT = [
    pytest.param(
        "Kyrgyzstan and Tajikistan border clash kills 3",
        "Kyrgyzstan and Tajikistan sign border agreement",
        "en",
        id="same-topic-different-event",
    ),
    pytest.param(
        "Armenia and Azerbaijan hold peace talks in Washington",
        "CSTO holds military exercises in Kazakhstan",
        "en",
        id="unrelated",
    ),
    pytest.param("Update", "Update", "en", id="only-stop-words"),
    pytest.param("Border", "Borders closed", "en", id="too-short-not-equal"),
]


@pytest.mark.parametrize(("a", "b", "language"), SAME)
def test_near_identical_titles_are_the_same_story(a: str, b: str, language: str) -> None:
    assert is_same_story(a, language, T0, b, language, T0 + timedelta(hours=5))


@pytest.mark.parametrize(("a", "b", "language"), DIFFERENT)
def test_different_stories_stay_apart(a: str, b: str, language: str) -> None:
    assert not is_same_story(a, language, T0, b, language, T0)


def test_the_same_title_outside_the_window_is_another_story() -> None:
    title = "Border clash kills 3 on Kyrgyz-Tajik frontier"
    assert is_same_story(title, "en", T0, title, "en", T0 + timedelta(days=2, hours=23))
    assert not is_same_story(title, "en", T0, title, "en", T0 + timedelta(days=3, hours=1))
    assert not is_same_story(title, "en", T0, title, "en", T0 - timedelta(days=4))
    assert is_same_story(title, "en", T0, title, "en", T0 + timedelta(days=6), window_days=7)


def test_different_languages_are_different_stories() -> None:
    assert not is_same_story("Batken border clash", "en", T0, "Batken border clash", "ru", T0)


def test_fingerprint_ignores_stop_words_and_endings() -> None:
    assert title_fingerprint("The clashes at the border", "en") == title_fingerprint(
        "Clash on border", "en"
    )
    assert title_fingerprint("", "en") == frozenset()
