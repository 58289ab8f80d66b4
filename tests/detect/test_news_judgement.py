"""The article-level judgement: the headline and lede say what an article reports as news.

A sign the body recounts is background (kept, with its reason, at a confidence that no
longer counts) when the article looks back (an anniversary, a commemoration, "two years
on") or when the headline itself recalls that sign as the setting of other news; a sign
the headline or lede reports, or one the body dates to today or calls a renewal, stays
news. Every sentence here is written for these tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.detect.matcher import match_article
from monitor.models import EVENT_CONFIDENCE
from tests.support.detection import article, events, find, shipped_rules


def _match(text: str, title: str, language: str = "en") -> list:
    return match_article(article(text, title=title, language=language), shipped_rules())


@pytest.mark.parametrize(
    ("title", "text", "language", "key", "reason"),
    [
        pytest.param(
            "Armenia mourns the dead on the anniversary of the war",
            "Families gathered in Yerevan. The fighting with Azerbaijan killed thousands of"
            " soldiers on both sides.",
            "en",
            "border_clash@am-az",
            "looks back ('mourns' in the headline)",
            id="en-anniversary-recounted-fighting",
        ),
        pytest.param(
            "Two years on: how the Kyrgyz-Tajik war changed Batken",
            "Residents are rebuilding their homes. A ceasefire agreed by Bishkek and Dushanbe"
            " ended the fighting within days.",
            "en",
            "de_escalation@kg-tj",
            "looks back ('years on' in the headline)",
            id="en-years-on-recounted-ceasefire",
        ),
        pytest.param(
            "В Ереване вспоминают погибших в войне с Азербайджаном",
            "Люди несли цветы к мемориалу. В ходе боёв на границе погибли более двухсот"
            " армянских военнослужащих.",
            "ru",
            "border_clash@am-az",
            "looks back ('вспоминают' in the headline)",
            id="ru-commemoration-recounted-fighting",
        ),
        pytest.param(
            "Два года войне: уроки для Кыргызстана и Таджикистана",
            "Эксперты напоминают, что стороны договорились о прекращении огня и отводе"
            " войск от границы.",
            "ru",
            "de_escalation@kg-tj",
            "looks back ('уроки' in the headline)",
            id="ru-lessons-recounted-ceasefire",
        ),
        pytest.param(
            "Two years into Armenia's CSTO freeze: a membership in name only",
            "Analysts in Yerevan see little change.",
            "en",
            "alliance_withdrawal@csto",
            "governed by 'years into'",
            id="en-headline-sign-governed-by-years-into",
        ),
        pytest.param(
            "Months after deadly fighting, Kyrgyzstan and Tajikistan sign a border protocol",
            "The protocol was signed in Batken. The fighting killed dozens of soldiers and"
            " villagers on both sides.",
            "en",
            "border_clash@kg-tj",
            "background",
            id="en-headline-recalls-the-fighting",
        ),
        pytest.param(
            "After the September war, Bishkek digs in on disputed land",
            "Officials in Batken are building new roads. The fighting on the Kyrgyz-Tajik"
            " border killed about a hundred people on both sides.",
            "en",
            "border_clash@kg-tj",
            "looks back ('After the September war' in the headline)",
            id="en-aftermath-headline-recounted-fighting",
        ),
        pytest.param(
            "Аналитика: после войны на границе Бишкек и Душанбе ищут компромисс",
            "Эксперты обсуждают водные споры. Бои на кыргызско-таджикской границе унесли"
            " жизни десятков военнослужащих.",
            "ru",
            "border_clash@kg-tj",
            "looks back ('после войны' in the headline)",
            id="ru-aftermath-headline-recounted-fighting",
        ),
        pytest.param(
            "Opinion: the South Caucasus needs trade, not triumph",
            "Peace is possible. The reopened railways between Armenia and Azerbaijan"
            " brought calm to the border region.",
            "en",
            "de_escalation@am-az",
            "looks back ('Opinion' in the headline)",
            id="en-opinion-piece-is-not-news",
        ),
    ],
)
def test_a_sign_the_article_recounts_is_background_with_its_reason(
    title: str, text: str, language: str, key: str, reason: str
) -> None:
    matches = _match(text, title, language)
    match = find(matches, key)
    assert match is not None, matches
    assert key not in events(matches)
    assert match.confidence < EVENT_CONFIDENCE
    assert any(reason in q for q in match.qualifiers), match.qualifiers


@pytest.mark.parametrize(
    ("title", "text", "language", "key"),
    [
        pytest.param(
            "Armenia mourns the dead on the anniversary of the war",
            "Families gathered in Yerevan. Fighting with Azerbaijan resumed on the border"
            " today, the defence ministry said, and two soldiers were killed.",
            "en",
            "border_clash@am-az",
            id="en-renewal-in-a-look-back-is-news",
        ),
        pytest.param(
            "В Ереване вспоминают погибших в войне с Азербайджаном",
            "Люди несли цветы к мемориалу. Сегодня азербайджанские военные вновь обстреляли"
            " армянские позиции у Джермука.",
            "ru",
            "border_clash@am-az",
            id="ru-renewal-in-a-look-back-is-news",
        ),
        pytest.param(
            "After the September war, Bishkek digs in on disputed land",
            "Officials in Batken are building new roads. On Tuesday Kyrgyz and Tajik border"
            " guards exchanged fire near the Vorukh enclave.",
            "en",
            "border_clash@kg-tj",
            id="en-a-day-of-this-week-in-an-aftermath-piece-is-news",
        ),
        pytest.param(
            "Two years on, Armenia and Azerbaijan sign a peace treaty",
            "The treaty was signed in Washington. The peace treaty ends decades of conflict,"
            " Pashinyan and Aliyev said.",
            "en",
            "de_escalation@am-az",
            id="en-headline-reports-the-sign-as-news",
        ),
        pytest.param(
            "Kyrgyz security chief issues a blunt demand to Dushanbe",
            "Tashiev used the anniversary of the border war on Friday to tell Tajikistan that"
            " it must drop its territorial claims.",
            "en",
            "territorial_claim@kg-tj",
            id="en-an-anniversary-dates-what-it-names-not-the-news",
        ),
    ],
)
def test_the_news_the_headline_reports_or_a_renewal_stays_news(
    title: str, text: str, language: str, key: str
) -> None:
    assert key in events(_match(text, title, language))


def test_a_whether_clause_governs_its_own_clause_not_the_sentence() -> None:
    text = (
        "Asked whether a formal exit was imminent, the foreign minister said the decision"
        " would come later, adding that Armenia would not take part in CSTO meetings this"
        " year."
    )
    assert "alliance_withdrawal@csto" in events(_match(text, ""))


def test_a_sign_inside_a_whether_clause_stays_hypothetical() -> None:
    matches = _match("Diplomats asked whether Armenia will boycott the CSTO summit.", "")
    match = find(matches, "alliance_withdrawal@csto")
    assert match is not None
    assert match.confidence < EVENT_CONFIDENCE
    assert any("whether" in q for q in match.qualifiers), match.qualifiers


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "On Monday Pashinyan laid flowers at the graves of Armenian soldiers killed by"
            " Azerbaijani forces.",
            "en",
            id="en-graves-of-the-fallen",
        ),
        pytest.param(
            "В понедельник жители Баткена пришли на могилы кыргызских военнослужащих,"
            " погибших в боях с таджикскими военными.",
            "ru",
            id="ru-graves-of-the-fallen",
        ),
    ],
)
def test_a_visit_to_the_graves_of_the_fallen_is_not_a_clash(text: str, language: str) -> None:
    matches = _match(text, "", language)
    assert not {key for key in events(matches) if key.startswith("border_clash")}


# --- issue 12, third round: negation, recaps and the setting of other news ---


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        pytest.param(
            "Минобороны Казахстана сообщило, что республика не будет участвовать ни в одном"
            " из учений ОДКБ в этом году.",
            "ru",
            "exercise_cancellation@csto",
            id="ru-ne-then-ni-is-one-negative",
        ),
        pytest.param(
            "Kazakhstan's defence ministry said the country would not host nor join the"
            " CSTO drills this autumn.",
            "en",
            "exercise_cancellation@csto",
            id="en-not-then-nor-is-one-negative",
        ),
    ],
)
def test_a_correlative_after_a_negation_is_the_same_negative(
    text: str, language: str, key: str
) -> None:
    assert key in events(_match(text, "", language))


@pytest.mark.parametrize(
    ("title", "text", "language", "key"),
    [
        pytest.param(
            "CSTO defence ministers meet in Minsk",
            "The ministers discussed air defence. Since then, Yerevan has boycotted the"
            " bloc's summits and ministerial meetings.",
            "en",
            "alliance_withdrawal@csto",
            id="en-since-then-recaps",
        ),
        pytest.param(
            "Kyrgyz and Tajik delegations meet in Batken",
            "The talks dealt with water. In the months since, Kyrgyzstan has bought Turkish"
            " combat drones and Tajikistan Iranian ones.",
            "en",
            "arms_delivery@kg-tj",
            id="en-in-the-months-since-recaps",
        ),
        pytest.param(
            "Делегации Кыргызстана и Таджикистана встретились в Баткене",
            "Обсуждались вопросы воды. За прошедшие месяцы Кыргызстан закупил турецкие"
            " ударные беспилотники, а Таджикистан открыл завод иранских дронов.",
            "ru",
            "arms_delivery@kg-tj",
            id="ru-over-the-past-months-recaps",
        ),
    ],
)
def test_a_sign_recapped_since_an_earlier_event_is_background(
    title: str, text: str, language: str, key: str
) -> None:
    matches = _match(text, title, language)
    match = find(matches, key)
    assert match is not None, matches
    assert key not in events(matches)
    assert any("background" in q for q in match.qualifiers), match.qualifiers


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Kyrgyz and Tajik security chiefs agreed on Saturday on a ceasefire and the"
            " withdrawal of troops sent to the border during this week's fighting.",
            "en",
            id="en-during-the-fighting-is-the-setting-of-a-ceasefire",
        ),
        pytest.param(
            "После боев на границе министры обороны Армении и Азербайджана договорились"
            " о прекращении огня, сообщили в среду.",
            "ru",
            id="ru-after-the-fighting-is-the-setting-of-a-ceasefire",
        ),
        pytest.param(
            "Kyrgyzstan and Tajikistan agreed on Saturday to a mutual withdrawal of troops"
            " from the border and to restore the situation that existed before this week's"
            " fighting.",
            "en",
            id="en-before-the-fighting-is-the-setting-of-a-withdrawal",
        ),
        pytest.param(
            "Кыргызстан и Таджикистан договорились об отводе войск от границы и восстановлении"
            " положения, существовавшего до начала боев.",
            "ru",
            id="ru-before-the-fighting-is-the-setting-of-a-withdrawal",
        ),
    ],
)
def test_a_clash_named_as_the_setting_of_another_sign_is_background(
    text: str, language: str
) -> None:
    matches = _match(text, "", language)
    assert {key for key in events(matches) if key.startswith("de_escalation")}
    assert not {key for key in events(matches) if key.startswith("border_clash")}
    clash = next(m for m in matches if m.indicator_id == "border_clash")
    assert any("setting of de_escalation" in q for q in clash.qualifiers), clash.qualifiers


def test_a_clash_reported_in_its_own_sentence_stays_news_beside_its_setting() -> None:
    text = (
        "Kyrgyz and Tajik security chiefs agreed on Saturday on a ceasefire after the"
        " fighting on the border. Hours later Tajik troops opened fire on a Kyrgyz post"
        " near Vorukh, killing two soldiers."
    )
    assert "border_clash@kg-tj" in events(_match(text, ""))


@pytest.mark.parametrize(
    ("title", "text", "language", "key"),
    [
        pytest.param(
            "Armenia marks a year since the start of the war",
            "Crowds walked to the military cemetery. A Russian-brokered ceasefire between"
            " Armenia and Azerbaijan took effect on 10 September, two months after the war"
            " began.",
            "en",
            "de_escalation@am-az",
            id="en-a-year-since-looks-back",
        ),
        pytest.param(
            "Четыре года спустя",
            "В Ереване и Баку прошли траурные церемонии. Политики обеих стран говорили, что"
            " мирный договор между Арменией и Азербайджаном согласован.",
            "ru",
            "de_escalation@am-az",
            id="ru-years-later-looks-back",
        ),
    ],
)
def test_an_article_marking_the_time_since_an_event_looks_back(
    title: str, text: str, language: str, key: str
) -> None:
    matches = _match(text, title, language)
    assert key not in events(matches)


@pytest.mark.parametrize(
    ("title", "text", "language", "key"),
    [
        pytest.param(
            "Is the CSTO still an alliance?",
            "Members rarely agree. Armenia has boycotted the bloc's summits and stopped paying"
            " its dues to the CSTO budget.",
            "en",
            "alliance_withdrawal@csto",
            id="en-yes-no-question-headline-is-an-essay",
        ),
        pytest.param(
            "What if the peace deal falters?",
            "Diplomats are cautious. Armenian and Azerbaijani negotiators agreed the text of"
            " a peace treaty.",
            "en",
            "de_escalation@am-az",
            id="en-what-if-headline-is-an-essay",
        ),
        pytest.param(
            "Останется ли ОДКБ союзом?",
            "Эксперты спорят. Ереван не участвует в саммитах ОДКБ и перестал платить взносы"
            " в бюджет организации.",
            "ru",
            "alliance_withdrawal@csto",
            id="ru-li-question-headline-is-an-essay",
        ),
    ],
)
def test_a_question_headline_opens_an_essay_whose_undated_signs_are_background(
    title: str, text: str, language: str, key: str
) -> None:
    matches = _match(text, title, language)
    match = find(matches, key)
    assert match is not None, matches
    assert key not in events(matches)
    assert any("looks back" in q for q in match.qualifiers), match.qualifiers


def test_a_dated_sign_under_a_question_headline_stays_news() -> None:
    text = (
        "Members rarely agree. On Tuesday Armenia stopped paying its dues to the CSTO"
        " budget, the finance ministry said."
    )
    assert "alliance_withdrawal@csto" in events(_match(text, "Will Armenia leave the CSTO?"))


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        pytest.param(
            "The fighting ended in September. In the months that followed, Kyrgyz and Tajik"
            " delimitation commissions met regularly.",
            "en",
            "de_escalation@kg-tj",
            id="en-in-the-months-that-followed",
        ),
        pytest.param(
            "Бои закончились в сентябре. В последующие месяцы кыргызские и таджикские"
            " комиссии по делимитации регулярно встречались.",
            "ru",
            "de_escalation@kg-tj",
            id="ru-in-the-months-that-followed",
        ),
    ],
)
def test_what_followed_an_earlier_event_is_background(text: str, language: str, key: str) -> None:
    matches = _match(text, "Analysis: a border that never calmed down", language)
    assert key not in events(matches)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Azerbaijan says Armenian troops shelled its positions near Kalbajar, Yerevan denies.",
            "en",
            id="en-other-sides-denial-contests-the-report",
        ),
        pytest.param(
            "Баку сообщил, что армянские военные обстреляли его позиции у Кельбаджара, Ереван"
            " это опровергает.",
            "ru",
            id="ru-other-sides-denial-contests-the-report",
        ),
    ],
)
def test_a_report_contested_by_the_other_side_stays_a_report(text: str, language: str) -> None:
    assert "border_clash@am-az" in events(_match(text, "", language))


@pytest.mark.parametrize(
    ("title", "text", "language", "key"),
    [
        pytest.param(
            "Baku arms fair draws record crowds",
            "Azerbaijan bought Israeli and Turkish weapons for years. Analysts say those"
            " purchases of drones decided the war with Armenia.",
            "en",
            "arms_delivery@am-az",
            id="en-those-purchases-points-back",
        ),
        pytest.param(
            "Российские миротворцы покидают Карабах",
            "Колонна ушла в сторону Армении. В ходе тех событий погибли и несколько"
            " азербайджанских военнослужащих.",
            "ru",
            "border_clash@am-az",
            id="ru-during-those-events-points-back",
        ),
        pytest.param(
            "Book review: a history of the Kyrgyz-Tajik border",
            "The author is a geographer. The 2025 border treaty between Kyrgyzstan and"
            " Tajikistan was signed after the manuscript went to press.",
            "en",
            "de_escalation@kg-tj",
            id="en-book-review-looks-back",
        ),
    ],
)
def test_a_sign_pointed_back_at_or_reviewed_is_background(
    title: str, text: str, language: str, key: str
) -> None:
    assert key not in events(_match(text, title, language))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param(
            "Night-time shelling hit Jermuk. Armenian and Azerbaijani leaders had met several"
            " times in Brussels and agreed to set up border commissions.",
            "de_escalation@am-az",
            id="en-past-perfect-narrates-what-came-before",
        ),
        pytest.param(
            "Night-time shelling hit Jermuk. Over the summer, officials spoke of momentum in"
            " talks between Armenia and Azerbaijan.",
            "de_escalation@am-az",
            id="en-over-the-summer-recaps",
        ),
    ],
)
def test_a_sign_told_as_what_came_before_is_background(text: str, key: str) -> None:
    matches = _match(text, "Armenia-Azerbaijan: a turn for the worse")
    match = find(matches, key)
    assert match is not None, matches
    assert key not in events(matches)
    assert any("background" in q for q in match.qualifiers), match.qualifiers


def test_the_past_perfect_of_reported_speech_is_news() -> None:
    text = "Kyrgyz officials said Tajik troops had opened fire on a border post near Vorukh."
    assert "border_clash@kg-tj" in events(_match(text, ""))


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Peace talks between Armenia and Azerbaijan held in Brussels faltered on Monday.",
            "en",
            id="en-talks-falter",
        ),
        pytest.param(
            "Мирные переговоры Армении и Азербайджана буксуют, стороны обмениваются упрёками.",
            "ru",
            id="ru-talks-stall",
        ),
    ],
)
def test_talks_that_falter_are_no_step(text: str, language: str) -> None:
    assert "de_escalation@am-az" not in events(_match(text, "", language))


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Armenia and Azerbaijan began working on a peace treaty in 2022, and in April their"
            " delimitation commissions agreed on a stretch of border.",
            "en",
            id="en-a-treatys-year-does-not-hide-the-month",
        ),
        pytest.param(
            "Карты 1920-х годов не помогли, а в апреле комиссии Армении и Азербайджана по"
            " делимитации согласовали участок границы.",
            "ru",
            id="ru-a-treatys-year-does-not-hide-the-month",
        ),
    ],
)
def test_a_month_dates_a_sign_even_beside_a_documents_year(text: str, language: str) -> None:
    published = datetime(2024, 5, 10, tzinfo=UTC)
    matches = match_article(
        article(text, title="", language=language, published=published), shipped_rules()
    )
    match = find(matches, "de_escalation@am-az")
    assert match is not None, matches
    assert match.confidence < EVENT_CONFIDENCE
    assert any("historical" in q for q in match.qualifiers), match.qualifiers
