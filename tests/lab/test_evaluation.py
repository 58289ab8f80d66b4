"""Evaluation: the dev-corpus targets of the shipped rules, and the metric definitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.detect.rules import compile_ruleset
from monitor.lab.corpus import CorpusItem, load_corpus
from monitor.lab.evaluation import (
    SCORED_LABELS,
    TARGET_LABEL_F1,
    TARGET_MACRO_F1,
    TARGET_THEATRE_ACCURACY,
    LabelScore,
    evaluate,
    render_report,
)
from tests.support.detection import (
    DEMO_CORPUS,
    DEV_CORPUS,
    FINAL_CORPUS,
    HELDOUT_CORPUS,
    UNSEEN_CORPUS,
    shipped_rules,
)


def assert_meets_targets(scores: Any) -> None:
    """Macro F1, every scored label's F1 and theatre accuracy at or above the targets."""
    assert scores.macro_f1 >= TARGET_MACRO_F1
    for score in scores.labels:
        assert score.f1 is None or score.f1 >= TARGET_LABEL_F1, score
    assert scores.theatre_accuracy >= TARGET_THEATRE_ACCURACY


@pytest.fixture(scope="module")
def dev_report() -> Any:
    return evaluate(load_corpus(DEV_CORPUS), shipped_rules())


def test_dev_corpus_meets_the_targets_overall(dev_report: Any) -> None:
    overall = dev_report.overall
    assert overall.macro_f1 >= TARGET_MACRO_F1
    for score in overall.labels:
        assert score.f1 is not None and score.f1 >= TARGET_LABEL_F1, score
    assert overall.theatre_accuracy >= TARGET_THEATRE_ACCURACY
    # every gold label is counted once, as a hit or a miss
    gold = {"border_clash": 10, "de_escalation": 9, "arms_delivery": 6}
    for label, count in gold.items():
        score = overall.label(label)
        assert score.tp + score.fn == count


@pytest.mark.parametrize("language", ["en", "ru"])
def test_dev_corpus_meets_the_targets_in_each_language(dev_report: Any, language: str) -> None:
    scores = dev_report.by_language[language]
    assert_meets_targets(scores)
    assert dev_report.meets_targets()


@pytest.fixture(scope="module")
def demo_report() -> Any:
    return evaluate(load_corpus(DEMO_CORPUS), shipped_rules())


@pytest.mark.parametrize("language", [None, "en", "ru"], ids=["overall", "en", "ru"])
def test_held_out_demo_set_meets_the_targets(demo_report: Any, language: str | None) -> None:
    """The demo items were written apart from the dev corpus: rules tuned on dev must
    generalise to them (background recaps, failed truces, weapon types…)."""
    scores = demo_report.overall if language is None else demo_report.by_language[language]
    assert_meets_targets(scores)
    assert demo_report.meets_targets()


@pytest.fixture(scope="module")
def blind_reports() -> dict[str, Any]:
    return {
        "heldout": evaluate(load_corpus(HELDOUT_CORPUS), shipped_rules()),
        "unseen": evaluate(load_corpus(UNSEEN_CORPUS), shipped_rules()),
    }


@pytest.mark.parametrize(
    ("corpus", "language"),
    [
        ("heldout", None),
        ("heldout", "en"),
        ("heldout", "ru"),
        ("unseen", None),
        ("unseen", "en"),
        ("unseen", "ru"),
    ],
)
def test_blind_written_sets_meet_the_targets(
    blind_reports: dict[str, Any], corpus: str, language: str | None
) -> None:
    """Sets written by authors who never saw the rules (then tuned on, with general rules
    only): 180 items of fresh phrasings and near-misses."""
    report = blind_reports[corpus]
    scores = report.overall if language is None else report.by_language[language]
    assert_meets_targets(scores)


def test_long_feature_set_stays_at_its_measured_level() -> None:
    """final.jsonl (long analysis pieces, the sign often in a later paragraph) is BELOW
    the targets: macro F1 0.80 at first look, 0.88 after general fixes. This floor keeps
    a change from quietly losing what was gained; SETS.md has the story."""
    report = evaluate(load_corpus(FINAL_CORPUS), shipped_rules())
    assert report.overall.macro_f1 >= 0.85
    assert report.overall.theatre_accuracy >= TARGET_THEATRE_ACCURACY
    for score in report.overall.labels:
        assert score.f1 is not None and score.f1 >= 0.65, score


def test_the_trench_item_raises_an_extra_sign_not_a_label(dev_report: Any) -> None:
    assert "kg-tj-trenches-topcor-ru" in dev_report.extras["military_buildup"]
    assert set(dev_report.extras).isdisjoint(SCORED_LABELS)


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "precision", "recall", "f1"),
    [
        pytest.param(3, 1, 0, 0.75, 1.0, 6 / 7, id="some-false-alarms"),
        pytest.param(2, 0, 2, 1.0, 0.5, 2 / 3, id="some-misses"),
        pytest.param(0, 0, 2, 0.0, 0.0, 0.0, id="all-missed"),
        pytest.param(0, 2, 0, 0.0, 0.0, 0.0, id="only-false-alarms"),
        pytest.param(0, 0, 0, None, None, None, id="not-applicable"),
    ],
)
def test_label_score(
    tp: int, fp: int, fn: int, precision: float | None, recall: float | None, f1: float | None
) -> None:
    score = LabelScore("x", tp, fp, fn)
    assert (score.precision, score.recall) == (precision, recall)
    assert score.f1 == pytest.approx(f1) if f1 is not None else score.f1 is None


THEATRES = {
    "kg-tj": {
        "name": "Kyrgyzstan–Tajikistan",
        "kind": "pair",
        "sides": {"kg": {"en": ["kyrgyz*"]}, "tj": {"en": ["tajik*"]}},
    },
    "am-az": {
        "name": "Armenia–Azerbaijan",
        "kind": "pair",
        "sides": {"am": {"en": ["armenia*"]}, "az": {"en": ["azerbaijan*"]}},
    },
}
INDICATORS = {
    "border_clash": {"description": "Fire.", "weight": 25, "en": ["open* fire"]},
    "de_escalation": {"description": "Truce.", "weight": -12, "en": ["truce"]},
    "military_buildup": {"description": "Trenches.", "weight": 8, "en": ["trench*"]},
}


def _item(item_id: str, text: str, labels: tuple[str, ...], theatre: str) -> CorpusItem:
    return CorpusItem(
        id=item_id,
        published_at=datetime(2024, 1, 1, tzinfo=UTC),
        date_precision="day",
        source="Wire",
        url="https://example.org/" + item_id,
        lang="en",
        title=text,
        text=text,
        labels=labels,
        theatre=theatre,
    )


SMALL = [
    _item("hit", "Kyrgyz and Tajik troops opened fire.", ("border_clash",), "kg-tj"),
    _item("miss", "Kyrgyz and Tajik guards traded shots.", ("border_clash",), "kg-tj"),
    _item("alarm", "Armenian and Azerbaijani troops opened fire.", (), "other"),
    _item("truce", "Kyrgyz and Tajik leaders agreed a truce.", ("de_escalation",), "kg-tj"),
    _item("trench", "Kyrgyz and Tajik soldiers dig trenches.", (), "kg-tj"),
]


def test_small_corpus_counts_and_definitions() -> None:
    report = evaluate(SMALL, compile_ruleset(THEATRES, INDICATORS))
    clash = report.overall.label("border_clash")
    assert (clash.tp, clash.fp, clash.fn) == (1, 1, 1)
    assert report.overall.label("de_escalation").f1 == 1.0
    # extras are reported with the items they fired on, never averaged
    assert report.extras == {"military_buildup": ("trench",)}
    assert [s.label for s in report.overall.labels] == ["border_clash", "de_escalation"]
    assert report.overall.macro_f1 == pytest.approx((0.5 + 1.0) / 2)
    # theatre accuracy: 3 items with a detection; "alarm" names am-az but is "other"
    assert (report.overall.theatre_correct, report.overall.theatre_total) == (2, 3)
    assert [c.item_id for c in report.misses] == ["miss"]
    assert [c.item_id for c in report.false_alarms] == ["alarm"]
    assert not report.meets_targets()


def test_verbose_table_lists_each_miss_and_false_alarm_with_evidence() -> None:
    report = evaluate(SMALL, compile_ruleset(THEATRES, INDICATORS))
    quiet = render_report(report)
    loud = render_report(report, verbose=True)
    assert "macro" in quiet and "border_clash" in quiet and "Misses" not in quiet
    assert "military_buildup: 1 item(s): trench" in quiet
    assert "Misses (1)\n- miss [en] border_clash" in loud
    assert "evidence: no pattern matched" in loud
    assert (
        "False alarms (1)\n- alarm [en] border_clash (gold theatre other; detected am-az)" in loud
    )
    assert "evidence (0.85): Armenian and Azerbaijani troops opened fire." in loud


def test_json_report_has_every_figure() -> None:
    report = evaluate(SMALL, compile_ruleset(THEATRES, INDICATORS))
    payload = json.loads(render_report(report, fmt="json", verbose=True))
    assert payload["overall"]["labels"]["border_clash"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "tp": 1,
        "fp": 1,
        "fn": 1,
    }
    assert payload["by_language"]["en"]["theatre_total"] == 3
    assert payload["extras"] == {"military_buildup": ["trench"]}
    assert payload["targets"]["met"] is False
    assert [case["item"] for case in payload["false_alarms"]] == ["alarm"]
    assert "misses" not in json.loads(render_report(report, fmt="json"))


def test_unknown_format_is_refused() -> None:
    report = evaluate(SMALL[:1], compile_ruleset(THEATRES, INDICATORS))
    with pytest.raises(ValueError, match="unknown report format 'csv'"):
        render_report(report, fmt="csv")
