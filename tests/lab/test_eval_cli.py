"""`monitor eval` through the real command: items outside the configured theatres,
`--fail-under`, and the JSON report's keys.

The fixtures are a small watch list of their own (`tests/fixtures/eval/watch.yaml`: two
theatres, two labels) and ten labelled items (`small.jsonl`), so the figures below are
the tool's arithmetic, whatever the shipped rules become.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "eval"
WATCH = FIXTURES / "watch.yaml"
SMALL = FIXTURES / "small.jsonl"


def _eval(*args: str, corpus: Path = SMALL) -> Result:
    return CliRunner().invoke(
        cli, ["--indicators", str(WATCH), "eval", str(corpus), *args], env={"MONITOR_CONFIG": ""}
    )


def _json(*args: str) -> dict[str, Any]:
    run = _eval("--format", "json", *args)
    assert run.exit_code == 0, run.output
    payload: dict[str, Any] = json.loads(run.stdout)
    return payload


def _counts(scores: dict[str, Any], label: str) -> tuple[int, int, int]:
    row = scores["labels"][label]
    return row["tp"], row["fp"], row["fn"]


def test_signs_outside_the_configured_theatres_are_not_misses() -> None:
    """Three labelled border clashes happen on borders no theatre covers (gold `kg-uz`,
    which watch.yaml does not define, and `other`): none of them is a miss."""
    payload = _json()
    # en: one real clash found; the Kyrgyz-Uzbek one read as kg-tj is a false alarm
    assert _counts(payload["by_language"]["en"], "border_clash") == (1, 1, 0)
    # ru: one found, one missed (a real miss), a Karabakh item gold `other` flagged
    assert _counts(payload["by_language"]["ru"], "border_clash") == (1, 1, 1)
    assert _counts(payload["overall"], "border_clash") == (2, 2, 1)
    assert payload["overall"]["macro"]["f1"] == pytest.approx((4 / 7 + 1.0) / 2)
    assert payload["overall"]["outside_theatres"] == {"items": 4, "with_signs": 3}
    assert payload["by_language"]["ru"]["outside_theatres"] == {"items": 1, "with_signs": 0}


def test_outside_items_are_reported_with_what_the_matcher_said() -> None:
    outside = _json()["outside_theatres"]
    assert outside["theatres"] == ["kg-tj", "am-az"]
    assert (outside["items"], outside["with_signs"], outside["flagged"]) == (4, 3, 2)
    cases = {case["item"]: case for case in outside["cases"]}
    assert set(cases) == {"en-uz-shots", "en-af-fire", "en-uz-enclave", "ru-karabakh"}
    assert cases["en-uz-shots"]["gold_theatre"] == "kg-uz"
    assert cases["en-uz-shots"]["gold_labels"] == ["border_clash"]
    assert cases["en-uz-shots"]["detected"] == []
    assert cases["en-uz-enclave"]["detected"] == [{"label": "border_clash", "theatre": "kg-tj"}]
    assert cases["ru-karabakh"]["gold_labels"] == []
    assert cases["ru-karabakh"]["detected"] == [{"label": "border_clash", "theatre": "am-az"}]


def test_table_has_a_section_for_items_outside_the_theatres() -> None:
    run = _eval()
    assert run.exit_code == 0, run.output
    assert "Outside the configured theatres (kg-tj, am-az): 4 item(s)" in run.output
    assert "3 carry signs on unwatched ground (kg-uz 2, other 1): not counted as misses" in (
        run.output
    )
    assert "- en-uz-shots [en] gold kg-uz: border_clash; matcher: nothing" in run.output
    assert "- en-uz-enclave [en] gold kg-uz: border_clash; matcher: border_clash in kg-tj" in (
        run.output
    )


def test_verbose_lists_only_the_real_miss() -> None:
    payload = _json("--verbose")
    assert [case["item"] for case in payload["misses"]] == ["ru-shots"]
    assert [case["item"] for case in payload["false_alarms"]] == ["en-uz-enclave", "ru-karabakh"]


@pytest.mark.parametrize(
    ("threshold", "failing"),
    [
        # overall 0.79 (4/7 and 1.0), en 0.83 (2/3 and 1.0), ru 0.75 (1/2 and 1.0)
        pytest.param("0.70", None, id="all-above"),
        pytest.param("0.75", None, id="equal-is-enough"),
        pytest.param("0.78", "ru 0.75", id="one-language-below"),
        pytest.param("0.80", "overall 0.79, ru 0.75", id="overall-and-a-language"),
        pytest.param("0.90", "overall 0.79, en 0.83, ru 0.75", id="all-below"),
    ],
)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_fail_under(threshold: str, failing: str | None, fmt: str) -> None:
    run = _eval("--format", fmt, "--fail-under", threshold)
    # the report is printed either way (and the JSON still parses)
    assert "border_clash" in run.stdout
    if fmt == "json":
        json.loads(run.stdout)
    if failing is None:
        assert run.exit_code == 0, run.output
        assert run.stderr == ""
    else:
        assert run.exit_code == 1, run.output
        assert run.stderr == f"macro F1 below --fail-under {float(threshold):.2f}: {failing}\n"


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_fail_under_must_be_a_fraction(value: str) -> None:
    run = _eval("--fail-under", value)
    assert run.exit_code == 2
    assert "--fail-under" in run.output and "Traceback" not in run.output


def test_a_set_with_nothing_to_score_fails_under_any_threshold(tmp_path: Path) -> None:
    """Only calm items: no label has a gold sign or a detection, so there is no macro F1."""
    corpus = tmp_path / "calm.jsonl"
    calm = [line for line in SMALL.read_text(encoding="utf-8").splitlines() if "football" in line]
    corpus.write_text("\n".join(calm) + "\n", encoding="utf-8")
    run = _eval("--fail-under", "0", corpus=corpus)
    assert run.exit_code == 1
    assert run.stderr == "macro F1 below --fail-under 0.00: overall n/a, en n/a\n"


# The keys `--format json` had before issue 12; later versions may only add keys.
STABLE_TOP = {"overall", "by_language", "extras", "targets"}
STABLE_SCORES = {
    "items",
    "labels",
    "macro",
    "theatre_accuracy",
    "theatre_correct",
    "theatre_total",
    "meets_targets",
}
STABLE_LABEL = {"precision", "recall", "f1", "tp", "fp", "fn"}
STABLE_CASE = {
    "item",
    "lang",
    "label",
    "gold_theatre",
    "detected_theatres",
    "title",
    "evidence",
    "confidence",
    "qualifiers",
}


def test_json_keeps_every_key_it_had() -> None:
    payload = _json("--verbose")
    assert set(payload) >= STABLE_TOP
    for scores in [payload["overall"], *payload["by_language"].values()]:
        assert set(scores) >= STABLE_SCORES
        assert set(scores["macro"]) >= {"precision", "recall", "f1"}
        for row in scores["labels"].values():
            assert set(row) >= STABLE_LABEL
    assert set(payload["targets"]) >= {"macro_f1", "label_f1", "theatre_accuracy", "met"}
    for key in ("misses", "false_alarms", "theatre_errors"):
        for case in payload[key]:
            assert set(case) >= STABLE_CASE
