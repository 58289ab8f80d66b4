"""Wider phrasings of each sign (issue 12), English and Russian, and their near misses.

Each row is one kind of phrasing, written for these tests (none is copied from a
corpus): the detection it must give (`indicator@theatre`), or, for a near miss, the
detection it must not give.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from detection_support import article, events, find, shipped_rules

from monitor.matcher import match_article
from monitor.models import EVENT_CONFIDENCE


def _events(text: str, title: str = "", language: str = "en", **kwargs: object) -> set[str]:
    return events(
        match_article(article(text, title=title, language=language, **kwargs), shipped_rules())  # type: ignore[arg-type]
    )


SIGNS = [
    # exercise_cancellation: a member's absence from a drill
    pytest.param(
        "",
        "CSTO drills open in Kazakhstan without Armenian troops",
        "en",
        "exercise_cancellation@csto",
        id="en-exercise-without-a-members-troops",
    ),
    pytest.param(
        "",
        "Учения ОДКБ в Белоруссии начались без армянских военных",
        "ru",
        "exercise_cancellation@csto",
        id="ru-exercise-without-a-members-troops",
    ),
    pytest.param(
        "",
        "Armenia is missing from the list of countries taking part in the CSTO exercise",
        "en",
        "exercise_cancellation@csto",
        id="en-member-missing-from-the-list",
    ),
    pytest.param(
        "",
        "Армении нет среди участников учения ОДКБ в Киргизии",
        "ru",
        "exercise_cancellation@csto",
        id="ru-member-not-among-the-participants",
    ),
    pytest.param(
        "",
        "The CSTO will hold its drills in Belarus after Armenia declined to host them",
        "en",
        "exercise_cancellation@csto",
        id="en-drills-moved-after-a-member-declines",
    ),
    pytest.param(
        "",
        "The CSTO exercise planned for Armenia will instead be held in Belarus.",
        "en",
        "exercise_cancellation@csto",
        id="en-drills-instead-held-elsewhere",
    ),
    pytest.param(
        "",
        "Armenia will not send officers to the CSTO command drill in Kazakhstan.",
        "en",
        "exercise_cancellation@csto",
        id="en-member-sends-no-officers",
    ),
]


@pytest.mark.parametrize(("title", "text", "language", "key"), SIGNS)
def test_a_wider_phrasing_of_a_sign_is_detected(
    title: str, text: str, language: str, key: str
) -> None:
    assert key in _events(text, title, language)


NEAR_MISSES = [
    pytest.param(
        "",
        "The CSTO drills in Kyrgyzstan follow the withdrawal of U.S. troops from Afghanistan.",
        "en",
        "exercise_cancellation@csto",
        id="en-drills-after-someone-elses-withdrawal",
    ),
]


@pytest.mark.parametrize(("title", "text", "language", "key"), NEAR_MISSES)
def test_a_near_miss_is_not_a_sign(title: str, text: str, language: str, key: str) -> None:
    assert key not in _events(text, title, language)


@pytest.mark.parametrize(
    ("text", "published", "language"),
    [
        pytest.param(
            "In January Armenia declined to host this year's CSTO exercises.",
            datetime(2023, 11, 20, tzinfo=UTC),
            "en",
            id="en-month-of-this-year-long-ago",
        ),
        pytest.param(
            "В феврале 2024 года Армения отказалась проводить учения ОДКБ.",
            datetime(2024, 12, 5, tzinfo=UTC),
            "ru",
            id="ru-month-with-the-publication-year-long-ago",
        ),
    ],
)
def test_a_month_of_the_publication_year_long_before_it_is_history(
    text: str, published: datetime, language: str
) -> None:
    matches = match_article(article(text, language=language, published=published), shipped_rules())
    match = find(matches, "exercise_cancellation@csto")
    assert match is not None
    assert match.confidence < EVENT_CONFIDENCE
    assert any(q.startswith("historical") for q in match.qualifiers), match.qualifiers


def test_a_month_of_the_publication_year_just_before_it_may_be_news() -> None:
    text = "In October Armenia declined to host this year's CSTO exercises."
    published = datetime(2023, 11, 3, tzinfo=UTC)
    assert "exercise_cancellation@csto" in _events(text, published=published)


@pytest.mark.parametrize(
    ("title", "text", "language", "theatres"),
    [
        pytest.param(
            "Russia hands Kyrgyzstan a batch of weapons",
            "The shipment includes armoured vehicles and small arms for the Kyrgyz army.",
            "en",
            {"arms_delivery@csto"},
            id="en-russian-aid-to-a-member-is-the-alliances",
        ),
        pytest.param(
            "Россия передала Таджикистану зенитные ракетные комплексы",
            "Комплексы поступили на вооружение таджикской армии.",
            "ru",
            {"arms_delivery@csto"},
            id="ru-russian-aid-to-a-member-is-the-alliances",
        ),
        pytest.param(
            "Душанбе получил партию российского вооружения",
            "Техника поступила в подразделения, охраняющие границу.",
            "ru",
            {"arms_delivery@csto"},
            id="ru-russian-weapons-received-by-a-member",
        ),
        pytest.param(
            "Indian rocket launchers delivered to Armenia",
            "For three decades Armenia bought almost all of its weapons from Russia under"
            " CSTO rules.",
            "en",
            {"arms_delivery@am-az"},
            id="en-other-supplier-is-the-pairs-russia-recalled",
        ),
        pytest.param(
            "Kyrgyzstan buys Turkish Bayraktar drones",
            "Bishkek, a CSTO member, paid for the drones from its own budget.",
            "en",
            {"arms_delivery@kg-tj"},
            id="en-other-supplier-is-the-pairs-csto-named",
        ),
    ],
)
def test_arms_from_the_alliance_are_the_alliances_others_the_pairs(
    title: str, text: str, language: str, theatres: set[str]
) -> None:
    found = {key for key in _events(text, title, language) if key.startswith("arms_delivery")}
    assert found == theatres


def test_a_first_batch_of_weapons_arriving_is_a_delivery() -> None:
    text = (
        "On Thursday the Armenian defence ministry confirmed that a first batch of the"
        " launchers had arrived."
    )
    assert "arms_delivery@am-az" in _events(text)
