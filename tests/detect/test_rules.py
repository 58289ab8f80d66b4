"""The pattern language and its compiler: semantics, the shipped file, bad configs.

Bad configurations sit in the table beside the exact one-line message they produce.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from monitor.detect.matcher import match_article
from monitor.detect.rules import DEFAULT_NON_EVENTS, RuleSet, compile_ruleset
from monitor.errors import ConfigError
from monitor.models import Indicator, Theatre
from tests.support.detection import article, events, shipped_rules

THEATRES: dict[str, Any] = {
    "kg-tj": {
        "name": "Kyrgyzstan–Tajikistan",
        "kind": "pair",
        "sides": {
            "kyrgyzstan": {"en": ["kyrgyz*", "bishkek"], "ru": ["кыргыз*", "киргиз*"]},
            "tajikistan": {"en": ["tajik*", "dushanbe"], "ru": ["таджик*"]},
        },
        "disputed": {"en": ["vorukh"]},
    },
    "csto": {
        "name": "CSTO",
        "kind": "alliance",
        "recipients": ["csto-desk@example.org"],
        "actors": {"en": ["csto"], "ru": ["одкб"]},
        "members": {"en": ["armenia*"]},
    },
}
INDICATORS: dict[str, Any] = {
    "territorial_claim": {
        "description": "A claim to land.",
        "weight": 12,
        "applies_to": ["pair"],
        "en": ["lay claim"],
    },
    "border_clash": {
        "description": "Shooting at the border.",
        "weight": 25,
        "severity": "critical",
        "half_life_hours": 48,
        "applies_to": ["kg-tj"],
        "en": ["open* fire"],
    },
}


def compile_with(pattern: str | dict[str, Any], *, exclude: list[str] | None = None) -> RuleSet:
    """A rule set with one pair theatre and one indicator made of one pattern."""
    indicator: dict[str, Any] = {"description": "Test.", "weight": 10, "en": [pattern]}
    if exclude is not None:
        indicator["exclude"] = {"en": exclude}
    return compile_ruleset(THEATRES, {"sign": indicator})


def found(rules: RuleSet, text: str) -> bool:
    """Whether `text` (naming both sides of kg-tj) yields the test indicator."""
    body = f"Kyrgyz and Tajik officials: {text}"
    return "sign@kg-tj" in events(match_article(article(body), rules))


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        pytest.param("open fire", "troops opened fire", True, id="stem-phrase"),
        pytest.param("open fire", "troops opened heavy fire", False, id="phrase-is-adjacent"),
        pytest.param("open fire", "troops fire and open", False, id="phrase-is-ordered"),
        pytest.param("open fire", "they open, fire", False, id="phrase-stops-at-a-comma"),
        pytest.param("open ..2 fire", "troops opened heavy mortar fire", True, id="gap-ordered"),
        pytest.param("open ..1 fire", "troops opened heavy mortar fire", False, id="gap-too-wide"),
        pytest.param("open ..2 fire", "fire was opened", False, id="gap-keeps-order"),
        pytest.param("open ~2 fire", "fire was opened", True, id="near-either-order"),
        pytest.param("cancel ~3 drill", "the drills were cancelled", True, id="near-stems"),
        pytest.param("cancellation", "the drill was cancelled", True, id="stem-family"),
        pytest.param("drill & cancel", "a drill. Cancel it.", False, id="and-same-sentence"),
        pytest.param("drill & cancel", "cancel the drill", True, id="and-any-order"),
        pytest.param("drill & !football", "the football drill", False, id="exclusion"),
        pytest.param("отмен* учени*", "отмена учений", True, id="prefix-ru"),
        pytest.param("отмен* учени*", "отменили учения", True, id="prefix-ru-inflected"),
        pytest.param("=us troops", "US troops", True, id="exact-case-folded"),
        pytest.param("=us troops", "user troops", False, id="exact-is-whole-word"),
        pytest.param("(scrap|call off) drill*", "called off drills", True, id="group-phrase"),
        pytest.param("(scrap|call off) drill*", "scrapped drills", True, id="group-word"),
        pytest.param("nagorno-karabakh", "in Nagorno Karabakh", True, id="hyphen-phrase"),
        pytest.param("учения отменены", "Учения отменены", True, id="case-fold-ru"),
        pytest.param("ёлка", "елка", True, id="yo-is-e"),
        pytest.param("@actor fire", "Dushanbe fire", True, id="macro-actor"),
        pytest.param("drill & @alliance", "a CSTO drill", True, id="macro-alliance"),
    ],
)
def test_pattern_language(pattern: str, text: str, expected: bool) -> None:
    assert found(compile_with(pattern), text) is expected


def test_pattern_confidence_is_the_match_confidence() -> None:
    rules = compile_with({"match": "open fire", "confidence": 0.6})
    matches = match_article(article("Kyrgyz and Tajik troops opened fire."), rules)
    assert [m.confidence for m in matches] == [0.6]


def test_excluded_words_mark_another_sense() -> None:
    rules = compile_with("clash*", exclude=["match"])
    matches = match_article(article("Kyrgyz and Tajik teams clashed in the match."), rules)
    assert [(m.confidence, m.qualifiers) for m in matches] == [(0.0, ("other sense: 'match'",))]


def test_compiled_rule_set_exposes_public_records() -> None:
    rules = compile_ruleset(THEATRES, INDICATORS)
    assert rules.theatres["csto"] == Theatre(
        id="csto", name="CSTO", kind="alliance", recipients=("csto-desk@example.org",)
    )
    assert rules.indicators["border_clash"] == Indicator(
        id="border_clash",
        description="Shooting at the border.",
        weight=25.0,
        severity="critical",
        half_life_hours=48.0,
    )
    clash = rules.compiled_indicators[1]
    assert clash.theatre_ids == ("kg-tj",)
    assert rules.compiled_indicators[0].theatre_ids == ("kg-tj",)  # "pair" → every pair
    # compiled once: patterns are indexed by their anchor words
    (pattern,) = clash.patterns
    assert pattern.anchors and all(rules.anchor_index[a] for a in pattern.anchors)


def test_shipped_indicators_compile_with_the_required_signs() -> None:
    rules = shipped_rules()
    assert set(rules.theatres) == {"kg-tj", "am-az", "csto"}
    assert {t.kind for t in rules.theatres.values()} == {"pair", "alliance"}
    six = {
        "exercise_cancellation",
        "territorial_claim",
        "arms_delivery",
        "border_clash",
        "alliance_withdrawal",
        "de_escalation",
    }
    assert six < set(rules.indicators)  # plus extras of their own
    assert rules.indicators["border_clash"].severity == "critical"
    assert rules.indicators["de_escalation"].weight < 0 < rules.indicators["border_clash"].weight
    for compiled in rules.compiled_indicators:
        paths = {p.key_path.split(".")[2][:2] for p in compiled.patterns}
        assert paths == {"en", "ru"}, compiled.indicator.id


def test_engine_checks_default_to_four_and_the_rest_are_opt_in() -> None:
    rules = compile_ruleset(THEATRES, INDICATORS)
    assert rules.compiled_indicators[1].non_events == frozenset(DEFAULT_NON_EVENTS)
    assert set(DEFAULT_NON_EVENTS) == {"negated", "hypothetical", "historical", "background"}
    shipped = {ci.indicator.id: ci.non_events for ci in shipped_rules().compiled_indicators}
    assert "weapon_type" in shipped["border_clash"]
    assert "weapon_type" not in shipped["arms_delivery"]  # a strike drone IS the arms sign
    assert "reversed" in shipped["de_escalation"]
    assert "reversed" not in shipped["border_clash"]  # an attack that failed still happened


@pytest.mark.parametrize(
    ("non_events", "text", "qualifier"),
    [
        pytest.param(
            ["background"],
            "The vote comes weeks after Kyrgyz and Tajik troops opened fire.",
            "background: 'comes weeks after'",
            id="background",
        ),
        pytest.param(
            ["weapon_type"],
            "Kyrgyz and Tajik armies buy attack drones.",
            "weapon type: 'attack drones'",
            id="weapon-type",
        ),
        pytest.param(
            ["reversed"],
            "Kyrgyz and Tajik commanders agreed a truce, but it collapsed.",
            "reversed: 'but it collapsed'",
            id="reversed",
        ),
    ],
)
def test_an_engine_check_applies_only_when_listed(
    non_events: list[str], text: str, qualifier: str
) -> None:
    indicator: dict[str, Any] = {
        "description": "Test.",
        "weight": 10,
        "en": ["open* fire", "attack ~3 drone*", "truce & agre*"],
    }
    without = compile_ruleset(THEATRES, {"sign": {**indicator, "non_events": []}})
    assert events(match_article(article(text), without)) == {"sign@kg-tj"}
    with_check = compile_ruleset(THEATRES, {"sign": {**indicator, "non_events": non_events}})
    (match,) = match_article(article(text), with_check)
    assert not match.is_event and match.qualifiers == (qualifier,)


def test_the_source_name_starts_every_message() -> None:
    bad = copy.deepcopy(INDICATORS)
    bad["border_clash"]["weight"] = "high"
    with pytest.raises(ConfigError) as caught:
        compile_ruleset(THEATRES, bad, source="/etc/monitor/indicators.yaml")
    assert str(caught.value).startswith("/etc/monitor/indicators.yaml: indicators.border_clash")


Edit = Callable[[dict[str, Any], dict[str, Any]], None]


def _set(path: str, value: object) -> Edit:
    """An edit that sets `theatres.…` or `indicators.…` (dot path) to `value`."""

    def edit(theatres: dict[str, Any], indicators: dict[str, Any]) -> None:
        section, *keys = path.split(".")
        node = theatres if section == "theatres" else indicators
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(theatres: dict[str, Any], indicators: dict[str, Any]) -> None:
        section, *keys = path.split(".")
        node = theatres if section == "theatres" else indicators
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return edit


P = "indicators.yaml: indicators.border_clash"
BAD = [
    pytest.param(
        _set("indicators.territorial_claim.weight", "high"),
        "indicators.yaml: indicators.territorial_claim.weight: expected a number, got 'high'",
        id="weight-not-a-number",
    ),
    pytest.param(
        _set("indicators.border_clash.weight", True),
        f"{P}.weight: expected a number, got true",
        id="weight-bool",
    ),
    pytest.param(
        _set("indicators.border_clash.weight", 0),
        f"{P}.weight: must not be 0 (negative for de-escalation)",
        id="weight-zero",
    ),
    pytest.param(
        _set("indicators.border_clash.wieght", 3),
        f"{P}.wieght: unknown key (expected one of: alliance_when, applies_to, context, deep_mentions,"
        " description, en, exclude, half_life_hours, non_events, one_side, ru, severity,"
        " weight)",
        id="unknown-key",
    ),
    pytest.param(
        _delete("indicators.border_clash.description"),
        f"{P}: missing required key 'description'",
        id="missing-description",
    ),
    pytest.param(
        _set("indicators.border_clash.severity", "urgent"),
        f"{P}.severity: expected normal or critical, got 'urgent'",
        id="bad-severity",
    ),
    pytest.param(
        _set("indicators.border_clash.half_life_hours", -5),
        f"{P}.half_life_hours: must be above 0, got -5",
        id="negative-half-life",
    ),
    pytest.param(
        _set("indicators.border_clash.applies_to", ["kg-uz"]),
        f"{P}.applies_to[0]: unknown theatre or kind 'kg-uz' (theatres: csto, kg-tj;"
        " kinds: pair, alliance)",
        id="dangling-theatre",
    ),
    pytest.param(
        _set("indicators.border_clash.non_events", ["negated", "sarcastic"]),
        f"{P}.non_events[1]: expected one of negated, hypothetical, historical, background,"
        " reversed, weapon_type, got 'sarcastic'",
        id="unknown-non-event",
    ),
    pytest.param(
        _set("indicators.border_clash.one_side", "yes"),
        f"{P}.one_side: expected true or false, got 'yes'",
        id="one-side-not-bool",
    ),
    pytest.param(
        _set("indicators.border_clash.en", "open* fire"),
        f"{P}.en: expected a list, got 'open* fire'",
        id="patterns-not-a-list",
    ),
    pytest.param(
        _set("indicators.border_clash.en", []),
        f"{P}: needs at least one pattern under 'en' or 'ru'",
        id="no-patterns",
    ),
    pytest.param(
        _set("indicators.border_clash.en", [""]),
        f"{P}.en[0]: must not be empty",
        id="empty-pattern",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["(shoot*|fire ~5 border*"]),
        f"{P}.en[0]: unbalanced parentheses: '(' is never closed in '(shoot*|fire ~5 border*'",
        id="unclosed-group",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["fire)"]),
        f"{P}.en[0]: unbalanced parentheses: ')' without '(' in 'fire)'",
        id="stray-close",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["()"]),
        f"{P}.en[0]: empty group '()' in '()'",
        id="empty-group",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["fire ~3"]),
        f"{P}.en[0]: '~3' needs a word on both sides in 'fire ~3'",
        id="dangling-window",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["fire ..99 border"]),
        f"{P}.en[0]: window '..99' is wider than 30 words in 'fire ..99 border'",
        id="window-too-wide",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["fi*"]),
        f"{P}.en[0]: prefix 'fi*' is too short (at least 3 letters) in 'fi*'",
        id="prefix-too-short",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["=fire*"]),
        f"{P}.en[0]: '=fire*' cannot be both exact (=) and a prefix (*) in '=fire*'",
        id="exact-and-prefix",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["!football"]),
        f"{P}.en[0]: a pattern needs at least one part that is not excluded (!) in '!football'",
        id="only-exclusions",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["fire & @enemy"]),
        f"{P}.en[0]: unknown name '@enemy' (known: @actor, @alliance) in 'fire & @enemy'",
        id="unknown-macro",
    ),
    pytest.param(
        _set("indicators.border_clash.en", ["fire # border"]),
        f"{P}.en[0]: '#' has no letters or digits in 'fire # border'",
        id="no-letters",
    ),
    pytest.param(
        _set("indicators.border_clash.en", [{"match": "fire", "confidence": 1.5}]),
        f"{P}.en[0].confidence: must be above 0 and at most 1, got 1.5",
        id="confidence-out-of-range",
    ),
    pytest.param(
        _set("indicators.border_clash.en", [{"pattern": "fire"}]),
        f"{P}.en[0].pattern: unknown key (expected one of: confidence, match)",
        id="pattern-mapping-unknown-key",
    ),
    pytest.param(
        _set("indicators.border_clash.en", [42]),
        f"{P}.en[0]: expected a pattern string or a mapping, got 42",
        id="pattern-not-a-string",
    ),
    pytest.param(
        _set("indicators.border_clash.exclude", {"de": ["fußball"]}),
        f"{P}.exclude.de: unknown key (expected one of: en, ru)",
        id="exclude-unknown-language",
    ),
    pytest.param(
        _set("indicators.border_clash.context", {"ended": {"before": 3.5, "en": ["end"]}}),
        f"{P}.context.ended.before: expected a whole number, got 3.5",
        id="context-window-not-int",
    ),
    pytest.param(
        _set("indicators.BorderClash", {"description": "x", "weight": 1, "en": ["fire"]}),
        "indicators.yaml: indicators.BorderClash: an indicator id must be lower-case"
        " letters, digits and '_' (like 'border_clash')",
        id="bad-indicator-id",
    ),
    pytest.param(
        _set("theatres.kg-tj.kind", "triangle"),
        "indicators.yaml: theatres.kg-tj.kind: expected pair or alliance, got 'triangle'",
        id="bad-kind",
    ),
    pytest.param(
        _set("theatres.kg-tj.sides.uzbekistan", {"en": ["uzbek*"]}),
        "indicators.yaml: theatres.kg-tj.sides: a pair needs exactly 2 sides, got 3",
        id="three-sides",
    ),
    pytest.param(
        _set("theatres.kg-tj.actors", {"en": ["csto"]}),
        "indicators.yaml: theatres.kg-tj.actors: unknown key (expected one of: disputed,"
        " kind, name, neighbours, recipients, sides)",
        id="pair-with-actors",
    ),
    pytest.param(
        _set("theatres.kg-tj.sides.kyrgyzstan", {"en": []}),
        "indicators.yaml: theatres.kg-tj.sides.kyrgyzstan: needs at least one word in 'en' or 'ru'",
        id="side-without-actors",
    ),
    pytest.param(
        _set("theatres.kg-tj.sides.kyrgyzstan", {"en": ["kyrgyz* & border"]}),
        "indicators.yaml: theatres.kg-tj.sides.kyrgyzstan.en[0]: unexpected '&' (only a"
        " word, phrase or group) in 'kyrgyz* & border'",
        id="actor-with-and",
    ),
    pytest.param(
        _set("theatres.csto.recipients", ["not-an-address"]),
        "indicators.yaml: theatres.csto.recipients[0]: not an email address: 'not-an-address'",
        id="bad-recipient",
    ),
    pytest.param(
        _delete("theatres.csto.name"),
        "indicators.yaml: theatres.csto: missing required key 'name'",
        id="theatre-without-name",
    ),
    pytest.param(
        _set("indicators.border_clash.deep_mentions", {"after_sentences": 2, "below": 0.8}),
        f"{P}.deep_mentions: missing required key 'confidence'",
        id="deep-mentions-incomplete",
    ),
    pytest.param(
        _set(
            "indicators.border_clash.deep_mentions",
            {"after_sentences": 2, "below": 0.8, "confidence": 1.5},
        ),
        f"{P}.deep_mentions.confidence: must be between 0 and 1, got 1.5",
        id="deep-mentions-factor-out-of-range",
    ),
    pytest.param(
        _set(
            "indicators.border_clash.deep_mentions",
            {"after_sentences": -1, "below": 0.8, "confidence": 0.5},
        ),
        f"{P}.deep_mentions.after_sentences: must be between 0 and 30, got -1",
        id="deep-mentions-negative",
    ),
    pytest.param(
        _set("theatres.KG_TJ", {"name": "x", "kind": "pair"}),
        "indicators.yaml: theatres.KG_TJ: a theatre id must be lower-case letters, digits"
        " and '-' (like 'kg-tj')",
        id="bad-theatre-id",
    ),
]


@pytest.mark.parametrize(("edit", "message"), BAD)
def test_bad_config_stops_with_its_exact_message(edit: Edit, message: str) -> None:
    theatres, indicators = copy.deepcopy(THEATRES), copy.deepcopy(INDICATORS)
    edit(theatres, indicators)
    with pytest.raises(ConfigError) as caught:
        compile_ruleset(theatres, indicators)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("theatres", "indicators", "message"),
    [
        pytest.param(
            [], INDICATORS, "indicators.yaml: theatres: expected a mapping, got a list", id="list"
        ),
        pytest.param(
            None, INDICATORS, "indicators.yaml: theatres: expected a mapping, got null", id="null"
        ),
        pytest.param(
            {}, INDICATORS, "indicators.yaml: theatres: at least one theatre is required", id="none"
        ),
        pytest.param(
            THEATRES,
            {},
            "indicators.yaml: indicators: at least one indicator is required",
            id="no-indicators",
        ),
    ],
)
def test_bad_sections(theatres: object, indicators: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_ruleset(theatres, indicators)
    assert str(caught.value) == message


def test_a_pattern_message_stays_on_one_line() -> None:
    bad = copy.deepcopy(INDICATORS)
    bad["border_clash"]["en"] = ["(fire\nborder"]
    with pytest.raises(ConfigError) as caught:
        compile_ruleset(THEATRES, bad)
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith("in '(fire\\nborder'")
