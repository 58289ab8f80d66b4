"""`monitor replay --events`: the lead-time medians printed beside the counts (issue 12).

The timeline below is the shape of the real 2021-2024 run the issue quotes: two events
warned ahead (14 days and 1 day), four the same day, two late. The old report printed
"median lead 14 d" (the upper of the two leads); the median of 14 and 1 is 7.5, and over
all eight events it is 0 (the same day).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.lab.replay import (
    EventOutcome,
    ReplayEvent,
    ReplayResult,
    event_outcomes,
    lead_summary,
    render_json,
    render_table,
)

REPO = Path(__file__).resolve().parents[2]
LOOKBACK, LAG = timedelta(days=30), timedelta(days=7)


def _event(day: date, theatre: str = "kg-tj", line: int = 1) -> ReplayEvent:
    return ReplayEvent(day=day, theatre_id=theatre, description=f"event {line}", line=line)


def _alert(day: date, theatre: str, kind: str = "level_up") -> dict[str, Any]:
    return {"created_at": f"{day.isoformat()}T06:00:00Z", "kind": kind, "theatre_id": theatre}


def _timeline() -> tuple[list[ReplayEvent], list[dict[str, Any]]]:
    """Eight events, each on its own theatre-and-month, with its first warning at a
    chosen offset: +14, +1, 0, 0, 0, 0, -2, -5 days (late ones negative)."""
    offsets = [14, 1, 0, 0, 0, 0, -2, -5]
    events, alerts = [], []
    for number, offset in enumerate(offsets, start=1):
        day = date(2021, 1, 15) + timedelta(days=60 * number)
        theatre = ("kg-tj", "am-az", "csto")[number % 3]
        events.append(_event(day, theatre, number))
        alerts.append(_alert(day - timedelta(days=offset), theatre, "surge"))
    return events, alerts


def _result(outcomes: list[EventOutcome]) -> ReplayResult:
    return ReplayResult(
        corpus="timeline.jsonl",
        items_total=0,
        items_replayed=0,
        undated_skipped=0,
        approximate_dates=0,
        feeds=0,
        tick=timedelta(days=1),
        start=datetime(2021, 1, 1, tzinfo=UTC),
        end=datetime(2022, 6, 1, tzinfo=UTC),
        events=outcomes,
    )


def test_the_printed_median_lead_is_the_true_median_and_all_events_have_one() -> None:
    events, alerts = _timeline()
    outcomes = event_outcomes(events, alerts, lookback=LOOKBACK, lag=LAG)
    assert [o.status for o in outcomes] == ["ahead"] * 2 + ["same day"] * 4 + ["after"] * 2
    text = render_table(_result(outcomes), lookback=LOOKBACK, lag=LAG)
    assert "8 events: 2 warned ahead, 4 the same day, 2 late, 0 without warning" in text
    assert "median lead 7.5 d over the 2 warned ahead" in text
    assert "median over all 8 events: 0 d" in text
    assert "median lead 14 d" not in text


def test_json_summary_has_the_counts_and_both_medians() -> None:
    events, alerts = _timeline()
    outcomes = event_outcomes(events, alerts, lookback=LOOKBACK, lag=LAG)
    document = json.loads(render_json(_result(outcomes)))
    assert document["events_summary"] == {
        "events": 8,
        "ahead": 2,
        "same_day": 4,
        "late": 2,
        "none": 0,
        "median_lead_days": 7.5,
        "median_all_days": 0.0,
        "median_all_unwarned": False,
    }
    assert len(document["events"]) == 8  # the per-event list is unchanged


def _outcome(signed: int | None) -> EventOutcome:
    event = _event(date(2022, 9, 14))
    if signed is None:
        return EventOutcome(event, "none")
    if signed > 0:
        return EventOutcome(event, "ahead", None, "surge", signed)
    if signed == 0:
        return EventOutcome(event, "same day", None, "surge", 0)
    return EventOutcome(event, "after", None, "surge", -signed)


@pytest.mark.parametrize(
    ("signed", "lead", "overall", "unwarned"),
    [
        pytest.param([14, 1, 0, 0, 0, 0, -2, -5], 7.5, 0.0, False, id="the-issue-timeline"),
        pytest.param([10, 3, 1], 3, 3, False, id="odd-all-ahead"),
        pytest.param([10, -4], 10, 3, False, id="even-one-late"),
        pytest.param([-1, -3, -6], None, -3, False, id="all-late"),
        pytest.param([9, None, None], 9, None, True, id="unwarned-majority"),
        pytest.param([9, 2, None], 5.5, 2, False, id="one-unwarned-ranks-lowest"),
        pytest.param([9, -2, None, None], 9, None, True, id="middle-pair-touches-unwarned"),
        pytest.param([5, 4, 3, -7, None], 4, 3, False, id="unwarned-below-late"),
        pytest.param([None], None, None, True, id="only-unwarned"),
        pytest.param([], None, None, False, id="no-events"),
    ],
)
def test_lead_summary(
    signed: list[int | None], lead: float | None, overall: float | None, unwarned: bool
) -> None:
    summary = lead_summary([_outcome(days) for days in signed])
    assert summary.median_lead_days == lead
    assert summary.median_all_days == overall
    assert summary.median_all_unwarned is unwarned
    assert summary.events == len(signed)
    assert summary.unwarned == signed.count(None)


def test_table_says_no_warning_when_the_median_event_had_none() -> None:
    outcomes = [_outcome(days) for days in (6, None, None)]
    text = render_table(_result(outcomes), lookback=LOOKBACK, lag=LAG)
    assert "median lead 6 d over the 1 warned ahead" in text
    assert "median over all 3 events: no warning" in text


def test_cli_json_reports_the_summary(tmp_path: Path) -> None:
    """Through the command: a one-item corpus and two events, one on the item's day."""
    item = {
        "id": "clash",
        "date": "2022-09-14",
        "source": "Wire",
        "url": "https://example.org/clash",
        "lang": "en",
        "title": "Kyrgyz and Tajik border guards exchange fire near Batken",
        "text": "Kyrgyz and Tajik border guards exchange fire near Batken\n\n"
        "Kyrgyz and Tajik border guards exchanged fire on Wednesday near Batken; "
        "two guards were wounded, officials said.",
        "labels": ["border_clash"],
        "theatre": "kg-tj",
    }
    corpus = tmp_path / "one.jsonl"
    corpus.write_text(json.dumps(item) + "\n", encoding="utf-8")
    events = tmp_path / "events.tsv"
    events.write_text(
        "date\ttheatre\tdescription\n2022-09-14\tkg-tj\tthe clash\n2020-01-01\tcsto\tlong before\n",
        encoding="utf-8",
    )
    run = CliRunner().invoke(
        cli,
        [
            "--indicators",
            str(REPO / "indicators.yaml"),
            "replay",
            str(corpus),
            "--events",
            str(events),
            "--format",
            "json",
        ],
        env={"MONITOR_CONFIG": ""},
    )
    assert run.exit_code == 0, run.output
    document = json.loads(run.output)
    summary = document["events_summary"]
    statuses = [event["status"] for event in document["events"]]
    assert summary["events"] == 2 and summary["none"] == statuses.count("none")
    assert summary["same_day"] == statuses.count("same day")
    assert summary["ahead"] == statuses.count("ahead") and summary["late"] == 0
    # the csto event two years before any item is never warned: with two events, the
    # middle of the ranking touches it, so the median over all is "no warning"
    assert statuses[1] == "none"
    assert (summary["median_all_days"], summary["median_all_unwarned"]) == (None, True)
