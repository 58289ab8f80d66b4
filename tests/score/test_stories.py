"""Cross-feed duplicates: exact story keys and near-identical titles (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import load_config
from monitor.detect.rules import RuleSet
from monitor.models import Entry
from monitor.score.stories import (
    EventStory,
    choose_event_story,
    is_same_story,
    name_key,
    names_agree,
    names_in,
    story_key,
    title_fingerprint,
)

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


# -- the same event in two languages ----------------------------------------------


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_config(indicators_path=None, settings_path=None, env={}).rules


@pytest.mark.parametrize(
    ("latin", "cyrillic"),
    [
        pytest.param("batken", "баткен*", id="batken"),
        pytest.param("tajik*", "таджик*", id="dzh"),
        pytest.param("leilek", "лейлек*", id="ei-ey"),
        pytest.param("vorukh", "ворух*", id="kh"),
        pytest.param("yerevan", "ереван*", id="leading-vowel"),
        pytest.param("sughd", "согд*", id="gh"),
        pytest.param("pashinyan", "пашинян*", id="ya"),
    ],
)
def test_name_keys_are_the_same_in_both_scripts(latin: str, cyrillic: str) -> None:
    assert name_key(latin) == name_key(cyrillic) != ""


def test_name_keys_of_different_places_differ() -> None:
    keys = {name_key(w) for w in ("batken", "leilek", "isfara", "vorukh", "dushanbe", "bishkek")}
    assert len(keys) == 6


def test_names_in_reads_the_theatres_own_names_in_either_language(rules: RuleSet) -> None:
    english = names_in(
        "Fighting near Batken and Isfara; Tajik troops shell Kyrgyz posts", "kg-tj", rules
    )
    russian = names_in(
        "Бои у Баткена и Исфары: таджикские военные обстреляли кыргызские посты", "kg-tj", rules
    )
    assert {name_key("batken"), name_key("isfara"), name_key("tajik")} <= english
    assert english == russian
    assert names_in("ОДКБ и CSTO", "csto", rules) == {"@csto"}  # the alliance's own names
    assert names_in("Batken", "no-such-theatre", rules) == frozenset()


KG = frozenset({"krgz", "tjk", "btkn", "isfr"})


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        pytest.param(KG, KG, True, id="same"),
        pytest.param(KG, frozenset({"krgz", "tjk"}), True, id="one-names-fewer"),
        pytest.param(KG, frozenset({"krgz", "tjk", "lk", "klnd", "sgd"}), False, id="other-places"),
        pytest.param(KG, frozenset({"krgz"}), False, id="one-name-only"),
        pytest.param(
            frozenset({"_zrbj", "_rmn"}), frozenset({"_zrbjn", "_rmn"}), True, id="prefix"
        ),
        pytest.param(KG, frozenset(), False, id="no-names"),
    ],
)
def test_names_agree(a: frozenset[str], b: frozenset[str], agree: bool) -> None:
    assert names_agree(a, b) is agree


def story(
    story_id: int,
    language: str,
    hours: float,
    events: set[tuple[str, str]] | None = None,
    names: frozenset[str] = KG,
) -> EventStory:
    events = {("kg-tj", "border_clash")} if events is None else events
    return EventStory(
        story_id=story_id,
        languages=frozenset({language}),
        published_at=T0 + timedelta(hours=hours),
        events=frozenset(events),
        names={theatre: names for theatre, _ in events},
    )


@pytest.mark.parametrize(
    ("other", "joins"),
    [
        pytest.param(story(1, "en", 0), True, id="same-event-other-language"),
        pytest.param(story(1, "en", -35), True, id="within-36h"),
        pytest.param(story(1, "en", -37), False, id="beyond-36h"),
        pytest.param(story(1, "ru", 0), False, id="same-language"),
        pytest.param(story(1, "en", 0, {("kg-tj", "arms_delivery")}), False, id="other-sign"),
        pytest.param(story(1, "en", 0, {("am-az", "border_clash")}), False, id="other-theatre"),
        pytest.param(
            story(1, "en", 0, names=frozenset({"krgz", "tjk", "lk", "klnd", "sgd"})),
            False,
            id="other-places",
        ),
    ],
)
def test_a_new_story_joins_the_same_event_in_another_language(
    other: EventStory, joins: bool
) -> None:
    new = story(9, "ru", 0)
    assert (choose_event_story(new, [other]) == 1) is joins


def test_the_closest_story_is_chosen() -> None:
    new = story(9, "ru", 0)
    partial = story(1, "en", 0, names=frozenset({"krgz", "tjk", "btkn"}))
    exact_but_later = story(2, "en", 20)
    exact_near = story(3, "en", -2)
    assert choose_event_story(new, [partial, exact_but_later, exact_near]) == 3
    assert choose_event_story(new, [partial, exact_but_later]) == 2
    assert choose_event_story(new, [story(5, "en", 1), story(4, "en", -1)]) == 4  # tie: oldest
    assert choose_event_story(new, []) is None
