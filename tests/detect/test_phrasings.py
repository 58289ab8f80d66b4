"""Wider phrasings of each sign (issue 12), English and Russian, and their near misses.

Each row is one kind of phrasing, written for these tests (none is copied from a
corpus): the detection it must give (`indicator@theatre`), or, for a near miss, the
detection it must not give.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.detect.matcher import match_article
from monitor.models import EVENT_CONFIDENCE
from tests.support.detection import article, events, find, shipped_rules


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
    # arms_delivery: ownership, entering service
    pytest.param(
        "",
        "Turkish-built strike drones join the Kyrgyz border service",
        "en",
        "arms_delivery@kg-tj",
        id="en-drones-join-the-border-service",
    ),
    pytest.param(
        "",
        "Пограничная служба Таджикистана пополнилась ударными беспилотниками",
        "ru",
        "arms_delivery@kg-tj",
        id="ru-border-service-gains-drones",
    ),
    # de_escalation: prisoners, joint statements, meetings, joint management, councils
    pytest.param(
        "",
        "Baku and Yerevan agreed in a joint statement to release captured soldiers",
        "en",
        "de_escalation@am-az",
        id="en-joint-statement-to-release-soldiers",
    ),
    pytest.param(
        "",
        "Армения и Азербайджан провели обмен военнопленными",
        "ru",
        "de_escalation@am-az",
        id="ru-exchange-of-prisoners-of-war",
    ),
    pytest.param(
        "",
        "Армения и Азербайджан опубликовали совместное заявление об освобождении военнопленных",
        "ru",
        "de_escalation@am-az",
        id="ru-joint-statement-on-prisoners",
    ),
    pytest.param(
        "",
        "В Праге состоялась встреча Пашиняна и Алиева",
        "ru",
        "de_escalation@am-az",
        id="ru-leaders-meeting-by-name",
    ),
    pytest.param(
        "",
        "Talks between Pashinyan and Aliyev took place in Prague",
        "en",
        "de_escalation@am-az",
        id="en-leaders-talks-by-name",
    ),
    pytest.param(
        "",
        "Бишкек и Душанбе договорились о совместном управлении водозабором",
        "ru",
        "de_escalation@kg-tj",
        id="ru-agreed-joint-management",
    ),
    pytest.param(
        "",
        "Kyrgyzstan and Tajikistan agreed on joint management of the water intake",
        "en",
        "de_escalation@kg-tj",
        id="en-agreed-joint-management",
    ),
    pytest.param(
        "",
        "The Kyrgyz-Tajik intergovernmental commission on border issues met in Batken",
        "en",
        "de_escalation@kg-tj",
        id="en-intergovernmental-commission-meets",
    ),
    pytest.param(
        "",
        "The Kulundu crossing between Kyrgyzstan and Tajikistan was reopened to traffic",
        "en",
        "de_escalation@kg-tj",
        id="en-crossing-reopened",
    ),
    # alliance_withdrawal: a freeze restated beside a drill, refusing to return
    pytest.param(
        "",
        "Армения, заморозившая участие в ОДКБ, не примет участия в учениях организации",
        "ru",
        "alliance_withdrawal@csto",
        id="ru-freeze-restated-beside-a-drill",
    ),
    pytest.param(
        "",
        "A spokesman said the decision followed from Yerevan's freeze of its"
        " participation in the CSTO.",
        "en",
        "alliance_withdrawal@csto",
        id="en-decision-followed-from-the-freeze",
    ),
    pytest.param(
        "",
        "Мирзоян заявил, что заморозка участия Армении в ОДКБ сохраняется и Ереван не"
        " намерен возвращаться к работе в организации.",
        "ru",
        "alliance_withdrawal@csto",
        id="ru-no-intention-to-return",
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
    pytest.param(
        "",
        "Министр обороны Таджикистана заявил, что учения ОДКБ носят плановый характер и"
        " не направлены против какого-либо государства.",
        "ru",
        "exercise_cancellation@csto",
        id="ru-drills-not-directed-against-anyone",
    ),
    pytest.param(
        "",
        "CSTO troops from Kyrgyzstan and Tajikistan rehearsed repelling an incursion and"
        " retaking a border post seized by militants.",
        "en",
        "border_clash@kg-tj",
        id="en-an-exercise-scenario",
    ),
    pytest.param(
        "",
        "Военнослужащие Кыргызстана и Таджикистана отработали уничтожение условных"
        " террористов, захвативших пограничный пост.",
        "ru",
        "border_clash@kg-tj",
        id="ru-an-exercise-scenario",
    ),
    pytest.param(
        "",
        "Russia's withdrawal from the treaty, which Armenia and Azerbaijan had also"
        " signed, took effect on Tuesday.",
        "en",
        "de_escalation@am-az",
        id="en-withdrawal-from-a-treaty",
    ),
    pytest.param(
        "",
        "Общественники собирают подписи за референдум о выходе Армении из ОДКБ",
        "ru",
        "alliance_withdrawal@csto",
        id="ru-activists-petition-for-an-exit",
    ),
    pytest.param(
        "",
        "Activists in Yerevan collect signatures for a referendum on leaving the CSTO",
        "en",
        "alliance_withdrawal@csto",
        id="en-activists-petition-for-an-exit",
    ),
    pytest.param(
        "",
        "В Ереване потребовали освободить всех армян, содержащихся в азербайджанских тюрьмах.",
        "ru",
        "territorial_claim@am-az",
        id="ru-freeing-prisoners-is-no-claim",
    ),
    pytest.param(
        "",
        "Кыргызско-таджикская межправительственная комиссия по торговому сотрудничеству"
        " провела заседание в Душанбе.",
        "ru",
        "de_escalation@kg-tj",
        id="ru-a-trade-commission",
    ),
    pytest.param(
        "",
        "Talks between Kyrgyzstan and Tajikistan on trade and investment were held in Dushanbe.",
        "en",
        "de_escalation@kg-tj",
        id="en-trade-talks-by-name",
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


@pytest.mark.parametrize(
    ("text", "published", "language", "key", "kind"),
    [
        pytest.param(
            "The relationship soured in 2022, when Azerbaijani forces attacked Armenian"
            " positions near Jermuk.",
            datetime(2023, 11, 20, tzinfo=UTC),
            "en",
            "border_clash@am-az",
            "historical",
            id="en-a-when-clause-takes-the-year-before-it",
        ),
        pytest.param(
            "The talks followed the 2020 war, which ended with a ceasefire agreed by Armenia"
            " and Azerbaijan.",
            datetime(2022, 9, 13, tzinfo=UTC),
            "en",
            "de_escalation@am-az",
            "historical",
            id="en-a-which-clause-takes-the-year-before-it",
        ),
        pytest.param(
            "После сентябрьских боёв на армяно-азербайджанской границе стороны вернулись к"
            " переговорам.",
            datetime(2022, 11, 21, tzinfo=UTC),
            "ru",
            "border_clash@am-az",
            "historical",
            id="ru-a-month-adjective-dates-the-fighting",
        ),
        pytest.param(
            "Подписанный тогда протокол об отводе войск Кыргызстана и Таджикистана позволил"
            " остановить бои.",
            datetime(2022, 3, 10, tzinfo=UTC),
            "ru",
            "de_escalation@kg-tj",
            "background",
            id="ru-then-signed-protocol",
        ),
        pytest.param(
            "Days later, as Kyrgyz and Tajik forces fought each other on the border, the"
            " alliance called for calm.",
            datetime(2022, 10, 10, tzinfo=UTC),
            "en",
            "border_clash@kg-tj",
            "background",
            id="en-days-later-in-a-recap",
        ),
    ],
)
def test_a_sign_dated_in_the_past_is_kept_as_history(
    text: str, published: datetime, language: str, key: str, kind: str
) -> None:
    matches = match_article(article(text, language=language, published=published), shipped_rules())
    match = find(matches, key)
    assert match is not None, matches
    assert match.confidence < EVENT_CONFIDENCE
    assert any(q.startswith(kind) for q in match.qualifiers), match.qualifiers


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Yerevan summoned the Azerbaijani envoy over remarks about Armenian villages.",
            "en",
            id="en-envoy-summoned-over-remarks-on-land",
        ),
        pytest.param(
            "МИД Армении вызвал посла Азербайджана из-за заявлений о территории Сюника.",
            "ru",
            id="ru-envoy-summoned-over-remarks-on-land",
        ),
        pytest.param(
            "Baku accused Yerevan of trying to seize the water intake near the border.",
            "en",
            id="en-accused-of-trying-to-seize-a-site",
        ),
        pytest.param(
            "Бишкек обвинил Душанбе в попытке захвата водозабора на границе.",
            "ru",
            id="ru-accused-of-trying-to-seize-a-site",
        ),
        pytest.param("Пашинян заявил: «Арцах — это Армения, и точка».", "ru", id="ru-x-is-y"),
        pytest.param(
            "Baku says its troops stand on its own territory near the Armenian village.",
            "en",
            id="en-on-its-own-territory",
        ),
        pytest.param(
            "Ереван заявил о продвижении азербайджанских военных, Баку говорит о своей территории.",
            "ru",
            id="ru-on-its-own-territory",
        ),
    ],
)
def test_an_indirect_territorial_claim_is_detected(text: str, language: str) -> None:
    found = {key for key in _events(text, "", language) if key.startswith("territorial_claim")}
    assert found, text


def test_acting_on_its_own_territory_in_self_defence_is_no_claim() -> None:
    text = (
        "Таджикская сторона заявила, что действует в пределах своей территории и в целях"
        " самообороны против кыргызских военных."
    )
    found = {key for key in _events(text, "", "ru") if key.startswith("territorial_claim")}
    assert not found


@pytest.mark.parametrize(
    ("title", "language"),
    [
        pytest.param(
            "Archbishop's march reaches Yerevan as protest against border deal with"
            " Azerbaijan grows",
            "en",
            id="en-protest-against-a-border-deal",
        ),
        pytest.param(
            "В Ереване прошла акция против подписанного соглашения о границе с Азербайджаном",
            "ru",
            id="ru-rally-against-a-border-deal",
        ),
    ],
)
def test_a_protest_against_a_deal_is_not_de_escalation(title: str, language: str) -> None:
    matches = match_article(article("", title=title, language=language), shipped_rules())
    match = find(matches, "de_escalation@am-az")
    assert "de_escalation@am-az" not in events(matches)
    assert match is not None and any(q.startswith("protested") for q in match.qualifiers)


# --- issue 12, third round ---


@pytest.mark.parametrize(
    ("title", "text", "language"),
    [
        pytest.param(
            "Turkish drone maker lands a Gulf export order",
            "The company's drones made their name in the Karabakh war, when Azerbaijan used"
            " them against Armenian armour. Experts still debate why. Officials said on Monday"
            " that Qatar had ordered twenty Akinci combat drones.",
            "en",
            id="en-arms-for-an-outside-buyer-in-a-story-recalling-the-pair",
        ),
        pytest.param(
            "Турецкие беспилотники: новый экспортный контракт",
            "Эти дроны прославились в Карабахе, где их применяла азербайджанская армия"
            " против армянской бронетехники. Эксперты спорят о причинах успеха. В понедельник"
            " компания сообщила, что Марокко закупило ударные беспилотники.",
            "ru",
            id="ru-arms-for-an-outside-buyer-in-a-story-recalling-the-pair",
        ),
    ],
)
def test_arms_for_a_buyer_outside_the_region_are_no_pairs_sign(
    title: str, text: str, language: str
) -> None:
    found = {key for key in _events(text, title, language) if key.startswith("arms_delivery")}
    assert not found


def test_arms_whose_buyer_is_named_in_the_sentence_before_stay_the_pairs() -> None:
    text = (
        "Uzbekistan published a review of military schools. In Kyrgyzstan, photographs"
        " showed new aircraft at an airfield near Bishkek. Officials confirmed that the"
        " combat drones had been delivered to the army."
    )
    assert "arms_delivery@kg-tj" in _events(
        text + " Tajik and Kyrgyz delegations met in Batken.", "Central Asia defence round-up"
    )


ROUND3_SIGNS = [
    # de_escalation: prisoners handed over, the border's description agreed, a deal to
    # end a war
    pytest.param(
        "",
        "На КПП у границы Армении и Азербайджана переданы пятеро военнопленных.",
        "ru",
        "de_escalation@am-az",
        id="ru-prisoners-handed-over-passive",
    ),
    pytest.param(
        "",
        "Баку освобождает двенадцать армянских военнослужащих, сообщили в Ереване.",
        "ru",
        "de_escalation@am-az",
        id="ru-servicemen-freed",
    ),
    pytest.param(
        "",
        "Кыргызстан и Таджикистан согласовали описание ещё тридцати километров границы.",
        "ru",
        "de_escalation@kg-tj",
        id="ru-border-description-agreed",
    ),
    pytest.param(
        "",
        "Kyrgyz and Tajik surveyors approved the description of another 30 km of the border.",
        "en",
        "de_escalation@kg-tj",
        id="en-border-description-approved",
    ),
    pytest.param(
        "",
        "Armenia and Azerbaijan signed a deal to end the war, the Kremlin said.",
        "en",
        "de_escalation@am-az",
        id="en-deal-to-end-the-war",
    ),
    # arms: aid through the alliance's programme is the alliance's
    pytest.param(
        "",
        "Таджикистану по программе ОДКБ переданы бронемашины и зенитные комплексы.",
        "ru",
        "arms_delivery@csto",
        id="ru-arms-under-an-alliance-programme",
    ),
]


@pytest.mark.parametrize(("title", "text", "language", "key"), ROUND3_SIGNS)
def test_a_third_round_phrasing_of_a_sign_is_detected(
    title: str, text: str, language: str, key: str
) -> None:
    assert key in _events(text, title, language)


ROUND3_NEAR_MISSES = [
    pytest.param(
        "",
        "Перемирие между Арменией и Азербайджаном соблюдается: за ночь нарушений режима"
        " прекращения огня не зафиксировано.",
        "ru",
        "border_clash@am-az",
        id="ru-no-ceasefire-violations-recorded",
    ),
    pytest.param(
        "",
        "The ceasefire between Armenia and Azerbaijan held overnight, and violations of the"
        " truce were not recorded, officials said.",
        "en",
        "border_clash@am-az",
        id="en-no-ceasefire-violations-recorded",
    ),
    pytest.param(
        "",
        "Under the deal, the Karabakh forces will disarm and hand over their weapons and"
        " armoured vehicles to Azerbaijan.",
        "en",
        "arms_delivery@am-az",
        id="en-weapons-handed-over-in-disarmament",
    ),
    pytest.param(
        "",
        "В ходе разоружения карабахские формирования передали азербайджанской армии"
        " бронетехнику и артиллерию.",
        "ru",
        "arms_delivery@am-az",
        id="ru-weapons-handed-over-in-disarmament",
    ),
]


@pytest.mark.parametrize(("title", "text", "language", "key"), ROUND3_NEAR_MISSES)
def test_a_third_round_near_miss_is_not_a_sign(
    title: str, text: str, language: str, key: str
) -> None:
    assert key not in _events(text, title, language)


ROUND3_MORE_SIGNS = [
    # exercise_cancellation: a member's absence, said without "cancel" or "refuse"
    pytest.param(
        "Казахстанских военных нет на учениях ОДКБ в Таджикистане",
        "",
        "ru",
        "exercise_cancellation@csto",
        id="ru-a-members-troops-are-not-at-the-drill",
    ),
    pytest.param(
        "",
        "На учениях ОДКБ под Минском присутствуют подразделения всех государств блока, кроме"
        " Казахстана.",
        "ru",
        "exercise_cancellation@csto",
        id="ru-all-members-but-one-at-the-drill",
    ),
    pytest.param(
        "",
        "Учения ОДКБ начались в понедельник в Беларуси с участием пяти государств блока,"
        " а Армения не направила ни одного военнослужащего.",
        "ru",
        "exercise_cancellation@csto",
        id="ru-a-member-sent-no-officers-to-the-drill",
    ),
    pytest.param(
        "",
        "Every member of the CSTO sent a contingent to the drills in Belarus except Armenia.",
        "en",
        "exercise_cancellation@csto",
        id="en-all-members-but-one-at-the-drill",
    ),
    pytest.param(
        "",
        "There were no Kazakh troops at the CSTO drills that opened in Tajikistan on Monday.",
        "en",
        "exercise_cancellation@csto",
        id="en-no-troops-of-a-member-at-the-drill",
    ),
    pytest.param(
        "",
        "The CSTO exercise in Belarus went ahead without any Armenian personnel, the joint"
        " staff confirmed.",
        "en",
        "exercise_cancellation@csto",
        id="en-went-ahead-without-a-member",
    ),
    # territorial_claim: "will remain ours", "always was and will be ours", "must go to"
    pytest.param(
        "",
        "The Kyrgyz security chief told parliament that the pastures Tajikistan disputes"
        " belong to Kyrgyzstan and will remain ours.",
        "en",
        "territorial_claim@kg-tj",
        id="en-belongs-and-will-remain-ours",
    ),
    pytest.param(
        "",
        "Vorukh has always been and will always remain Tajik, Dushanbe replied to Bishkek.",
        "en",
        "territorial_claim@kg-tj",
        id="en-always-was-and-will-remain",
    ),
    pytest.param(
        "",
        "В Душанбе ответили Бишкеку, что Ворух всегда был и навсегда останется таджикским.",
        "ru",
        "territorial_claim@kg-tj",
        id="ru-always-was-and-will-remain",
    ),
    pytest.param(
        "",
        "Глава ГКНБ Кыргызстана заявил, что спорный с Таджикистаном участок должен отойти"
        " Кыргызстану.",
        "ru",
        "territorial_claim@kg-tj",
        id="ru-the-land-must-go-to-one-side",
    ),
    pytest.param(
        "",
        "The disputed villages must be handed to Azerbaijan, Baku's envoy said of Armenia.",
        "en",
        "territorial_claim@am-az",
        id="en-the-land-must-go-to-one-side",
    ),
    # de_escalation: a firm step deep in a story keeps its weight
    pytest.param(
        "Kyrgyzstan-Tajikistan: the last kilometres",
        "For years the talks went nowhere. Villagers quarrelled over water. Roads were"
        " closed. This month the delegations agreed the description of the entire Kyrgyz"
        " and Tajik border.",
        "en",
        "de_escalation@kg-tj",
        id="en-border-description-agreed-deep-in-a-story",
    ),
]


@pytest.mark.parametrize(("title", "text", "language", "key"), ROUND3_MORE_SIGNS)
def test_a_third_round_indirect_sign_is_detected(
    title: str, text: str, language: str, key: str
) -> None:
    assert key in _events(text, title, language)


def test_a_demand_that_the_other_side_hand_over_land_is_a_claim() -> None:
    text = (
        "Baku's deputy prime minister demanded this week that Armenia immediately hand over"
        " four villages on the border."
    )
    assert "territorial_claim@am-az" in _events(text)


def test_pressing_for_villages_is_a_claim() -> None:
    assert "territorial_claim@am-az" in _events(
        "", "Azerbaijan presses for four border villages held by Armenia"
    )


@pytest.mark.parametrize(
    "title",
    [
        pytest.param(
            "На армяно-азербайджанской границе возобновились бои", id="ru-fighting-resumed"
        ),
        pytest.param(
            "На кыргызско-таджикской границе вновь открыли огонь", id="ru-fire-opened-again"
        ),
    ],
)
def test_fighting_resumed_at_the_border_is_no_reopening(title: str) -> None:
    assert not {key for key in _events("", title, "ru") if key.startswith("de_escalation")}


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Kyrgyzstan's deputy prime minister told parliament that the whole Tajik-run"
            " pumping station stands on Kyrgyz land.",
            "en",
            id="en-a-site-stands-on-our-land",
        ),
        pytest.param(
            "Вице-премьер Кыргызстана сказал депутатам, что вся таджикская насосная станция"
            " стоит на кыргызской земле.",
            "ru",
            id="ru-a-site-stands-on-our-land",
        ),
    ],
)
def test_a_site_said_to_stand_on_ones_land_is_a_claim(text: str, language: str) -> None:
    assert "territorial_claim@kg-tj" in _events(text, "", language)


@pytest.mark.parametrize(
    ("title", "text", "language"),
    [
        pytest.param(
            "",
            "Kyrgyz and Uzbek villagers clashed over a spring near Sokh on Monday, throwing"
            " stones and firing shots. Tajik officials called for calm.",
            "en",
            id="en-one-side-and-a-neighbour-in-the-sentence",
        ),
        pytest.param(
            "The worst Kyrgyz-Uzbek border violence in years",
            "A quarrel near a Kyrgyz village escalated into a mass brawl in which shots were"
            " fired. Tajik border guards watched from the hills.",
            "en",
            id="en-a-story-the-headline-sets-on-a-neighbours-border",
        ),
        pytest.param(
            "",
            "В понедельник кыргызские и узбекские жители забросали друг друга камнями у"
            " границы, пограничники открыли огонь. Таджикская сторона призвала к спокойствию.",
            "ru",
            id="ru-one-side-and-a-neighbour-in-the-sentence",
        ),
    ],
)
def test_a_sign_on_a_neighbours_border_is_not_the_pairs(
    title: str, text: str, language: str
) -> None:
    assert not {k for k in _events(text, title, language) if k.endswith("@kg-tj")}


def test_a_sign_between_both_sides_stays_the_pairs_in_a_story_naming_a_neighbour() -> None:
    text = (
        "Kyrgyz and Tajik border guards exchanged fire near Vorukh on Monday. Uzbek"
        " officials offered to mediate."
    )
    assert "border_clash@kg-tj" in _events(text, "Shooting on the Kyrgyz-Tajik border")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Учения ОДКБ начались в Таджикистане. Казахстан в списке участников учений не"
            " значится.",
            "ru",
            id="ru-a-member-not-on-the-list-of-participants",
        ),
        pytest.param(
            "CSTO drills opened in Tajikistan. Kazakhstan is not mentioned among the"
            " participants of the exercise.",
            "en",
            id="en-a-member-not-mentioned-among-the-participants",
        ),
    ],
)
def test_a_member_left_off_a_drills_participants_is_staying_away(text: str, language: str) -> None:
    assert "exercise_cancellation@csto" in _events(text, "", language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "Azerbaijan's deputy prime minister, who heads Baku's delimitation commission,"
            " spoke about Armenia in parliament on Monday.",
            "en",
            id="en-a-delimitation-commission-named-as-an-office",
        ),
        pytest.param(
            "Глава кыргызской рабочей группы по делимитации обвинил Таджикистан в затягивании"
            " работы.",
            "ru",
            id="ru-a-delimitation-working-group-named-as-an-office",
        ),
    ],
)
def test_a_delimitation_body_named_as_an_office_is_no_step(text: str, language: str) -> None:
    assert not {k for k in _events(text, "", language) if k.startswith("de_escalation")}


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "The Kyrgyz and Tajik delimitation commissions met in Batken on Monday.",
            "en",
            id="en-delimitation-commissions-met",
        ),
        pytest.param(
            "Рабочие группы Кыргызстана и Таджикистана по делимитации встретились в Баткене.",
            "ru",
            id="ru-delimitation-working-groups-met",
        ),
    ],
)
def test_a_delimitation_body_meeting_is_a_step(text: str, language: str) -> None:
    assert "de_escalation@kg-tj" in _events(text, "", language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "On Friday the Armenian and Azerbaijani foreign ministers initialled the agreed"
            " treaty text at the White House.",
            "en",
            id="en-a-treaty-text-initialled",
        ),
        pytest.param(
            "В пятницу министры иностранных дел Армении и Азербайджана парафировали"
            " согласованный текст договора.",
            "ru",
            id="ru-a-treaty-text-initialled",
        ),
    ],
)
def test_a_treaty_text_initialled_is_a_step(text: str, language: str) -> None:
    assert "de_escalation@am-az" in _events(text, "", language)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "The deal provides for the exchange of prisoners and the bodies of soldiers killed"
            " in the war between Armenia and Azerbaijan.",
            "en",
            id="en-bodies-of-the-dead-exchanged",
        ),
        pytest.param(
            "Документ предусматривает обмен пленными и телами погибших военнослужащих Армении"
            " и Азербайджана.",
            "ru",
            id="ru-bodies-of-the-dead-exchanged",
        ),
    ],
)
def test_an_exchange_of_the_bodies_of_the_dead_is_no_clash(text: str, language: str) -> None:
    assert "border_clash@am-az" not in _events(text, "", language)


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        pytest.param(
            "Баку потребовал от Еревана без каких-либо условий вернуть восемь сёл, включая"
            " анклавы.",
            "ru",
            "territorial_claim@am-az",
            id="ru-demanded-without-conditions-to-return-villages",
        ),
        pytest.param(
            "Baku demanded without any preconditions that Armenia hand over eight villages.",
            "en",
            "territorial_claim@am-az",
            id="en-demanded-without-preconditions-to-hand-over-villages",
        ),
        pytest.param(
            "The Kyrgyz and Tajik delegations signed a protocol describing a further"
            " 24 kilometres of the line.",
            "en",
            "de_escalation@kg-tj",
            id="en-a-protocol-describing-more-kilometres",
        ),
    ],
)
def test_a_demand_or_a_description_in_other_words_is_detected(
    text: str, language: str, key: str
) -> None:
    assert key in _events(text, "", language)


@pytest.mark.parametrize(
    ("text", "language", "key"),
    [
        pytest.param(
            "Azerbaijan has signed a contract with Pakistan for JF-17 fighter jets, the"
            " defence ministry said on Friday.",
            "en",
            "arms_delivery@am-az",
            id="en-a-contract-for-fighter-jets-signed",
        ),
        pytest.param(
            "На авиабазе под Баку прошла церемония приёмки первых истребителей JF-17 Block III"
            " для ВВС Азербайджана.",
            "ru",
            "arms_delivery@am-az",
            id="ru-fighters-accepted-a-model-name-is-no-blockage",
        ),
        pytest.param(
            "Новые вертолёты включены в состав ВВС Армении, сообщило Минобороны.",
            "ru",
            "arms_delivery@am-az",
            id="ru-aircraft-taken-into-the-air-force",
        ),
        pytest.param(
            "Министр обороны Армении не поедет на заседание совета министров ОДКБ, а армянские"
            " военные не будут участвовать в учениях.",
            "ru",
            "alliance_withdrawal@csto",
            id="ru-minister-will-not-travel-to-the-alliances-meeting",
        ),
        pytest.param(
            "Armenia's defence minister will not travel to the CSTO ministerial meeting, and"
            " Armenian troops will skip the bloc's drills.",
            "en",
            "alliance_withdrawal@csto",
            id="en-minister-will-not-travel-to-the-alliances-meeting",
        ),
    ],
)
def test_a_contract_an_acceptance_or_a_trip_not_made_is_detected(
    text: str, language: str, key: str
) -> None:
    assert key in _events(text, "", language)


@pytest.mark.parametrize(
    ("title", "text", "language"),
    [
        pytest.param(
            "Armenia signs for French howitzers",
            "For most of its post-Soviet history Armenia bought its weapons from Russia through"
            " the CSTO.",
            "en",
            id="en-for-most-of-its-history",
        ),
        pytest.param(
            "Армения закупает французские гаубицы",
            "Большую часть своей истории после распада СССР Армения получала российское"
            " вооружение по линии ОДКБ.",
            "ru",
            id="ru-for-most-of-its-history",
        ),
    ],
)
def test_a_habit_of_a_countrys_history_is_no_delivery_today(
    title: str, text: str, language: str
) -> None:
    assert "arms_delivery@csto" not in _events(text, title, language)
