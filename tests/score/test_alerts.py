"""Tests of monitor.score.alerts: alert decisions, quiet hours, digest slots and feed notices."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.models import (
    AlertDecision,
    AlertKind,
    AlertSettings,
    AlertState,
    ScoredMatch,
    ScorePoint,
    ScoringSettings,
    from_iso,
    to_iso,
)
from monitor.score.alerts import (
    alerted_signs,
    decide_alerts,
    digest_due,
    digest_key,
    feed_notices,
    is_quiet_time,
    release_time,
    send_after,
)
from monitor.score.scoring import level_for

T0 = datetime(2024, 9, 18, 12, 0, tzinfo=UTC)
LEVELS = ScoringSettings().levels
ALERTS = AlertSettings()  # 6 h in a level, 24 h repeat interval, surge at +20
THEATRE = "kg-tj"
HOUR = 60  # minutes


def point(
    index: float,
    at: datetime,
    *,
    level: str,
    change_24h: float | None = None,
    baseline: float | None = None,
) -> ScorePoint:
    return ScorePoint(
        theatre_id=THEATRE,
        at=at,
        raw=0.0,
        index=index,
        level=level,
        methodology_version="1",
        change_24h=change_24h,
        baseline=baseline,
    )


def critical(
    match_id: int, *, story_id: int, confidence: float = 0.9, theatre_id: str = THEATRE
) -> ScoredMatch:
    return ScoredMatch(
        match_id=match_id,
        story_id=story_id,
        article_id=match_id,
        indicator_id="shots_fired",
        theatre_id=theatre_id,
        weight=25.0,
        confidence=confidence,
        source_weight=1.0,
        sources=1,
        occurred_at=T0,
        half_life_hours=None,
        title="Shots fired\r\nat the border post",
        outlet="24.kg",
    )


@dataclass
class Step:
    minutes: int  # after T0
    index: float
    change_24h: float | None = None
    critical: tuple[ScoredMatch, ...] = ()


@dataclass
class Run:
    state: AlertState | None
    sent: list[tuple[int, AlertDecision]]  # (minutes after T0, decision)

    def kinds(self) -> list[tuple[int, str, str | None]]:
        return [(minutes, d.kind, d.level) for minutes, d in self.sent]


def run(
    steps: Sequence[Step],
    settings: AlertSettings = ALERTS,
    state: AlertState | None = None,
) -> Run:
    """Score levels through scoring's hysteresis, then decide, tick by tick."""
    sent: list[tuple[int, AlertDecision]] = []
    score_level: str | None = None
    for step in steps:
        at = T0 + timedelta(minutes=step.minutes)
        score_level = level_for(step.index, score_level, LEVELS)
        p = point(step.index, at, level=score_level, change_24h=step.change_24h)
        state, decisions = decide_alerts(
            state, p, now=at, settings=settings, levels=LEVELS, critical_matches=step.critical
        )
        sent.extend((step.minutes, d) for d in decisions)
    return Run(state, sent)


# ---------------------------------------------------------------------------
# Level changes


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [Step(0, 10), Step(15, 56)],
            [(15, "level_up", "high")],
        ),
        (
            [Step(0, 35), Step(15, 56), Step(30, 90)],
            [(0, "level_up", "elevated"), (15, "level_up", "high"), (30, "level_up", "critical")],
        ),
        (
            [Step(0, 56), Step(15, 50), Step(30, 54.9), Step(45, 48), Step(60, 55.5), Step(75, 50)],
            [(0, "level_up", "high")],
        ),
        (
            [Step(0, 56), Step(15, 47), Step(30, 56), Step(45, 40), Step(60, 57)],
            [(0, "level_up", "high")],
        ),
        (
            [Step(0, 56), Step(1 * HOUR, 20), Step(5 * HOUR, 20)],
            [(0, "level_up", "high")],
        ),
        (
            [Step(0, 56), Step(1 * HOUR, 20), Step(6 * HOUR, 20)],
            [(0, "level_up", "high"), (6 * HOUR, "resolved", "low")],
        ),
        (
            [Step(0, 56), Step(6 * HOUR, 40)],
            [(0, "level_up", "high"), (6 * HOUR, "level_down", "elevated")],
        ),
        (
            [Step(0, 35), Step(5 * HOUR, 56), Step(6 * HOUR + 1, 10), Step(11 * HOUR, 10)],
            [
                (0, "level_up", "elevated"),
                (5 * HOUR, "level_up", "high"),
                (11 * HOUR, "resolved", "low"),
            ],
        ),
        (
            [Step(0, 20), Step(15, 25), Step(30, 10)],
            [],
        ),
    ],
    ids=[
        "level-up-at-once",
        "level-up-step-by-step",
        "hysteresis-no-flapping-around-enter",
        "min-time-in-level-absorbs-dips",
        "min-time-holds-a-fall",
        "resolved-after-min-time",
        "level-down-after-min-time",
        "min-time-counts-from-entering-the-level",
        "quiet-theatre-says-nothing",
    ],
)
def test_level_changes(steps: list[Step], expected: list[tuple[int, str, str | None]]) -> None:
    assert run(steps).kinds() == expected


def test_urgency_and_reasons() -> None:
    result = run([Step(0, 56, change_24h=18.4), Step(6 * HOUR, 40), Step(12 * HOUR, 12)])
    up, down, resolved = (d for _, d in result.sent)
    assert (up.urgent, down.urgent, resolved.urgent) == (True, False, True)
    assert up.reason == "entered HIGH at 56 (+18 in 24 h)"
    assert (up.previous_level, down.previous_level, resolved.previous_level) == (
        "low",
        "high",
        "elevated",
    )
    assert "ELEVATED" in down.reason and "HIGH" in down.reason
    assert resolved.reason.startswith("calmed: back to LOW at 12")


def test_a_return_to_a_level_after_resolved_is_announced_within_the_interval() -> None:
    # The last email the reader saw said "calmed": HIGH again an hour later is news.
    result = run([Step(0, 56), Step(6 * HOUR, 20), Step(7 * HOUR, 60)])
    assert result.kinds() == [
        (0, "level_up", "high"),
        (6 * HOUR, "resolved", "low"),
        (7 * HOUR, "level_up", "high"),
    ]
    assert result.state is not None
    assert (result.state.level, result.state.level_since) == ("high", T0 + timedelta(hours=7))


def test_a_second_calm_after_a_fresh_rise_is_announced_within_the_interval() -> None:
    result = run([Step(0, 56), Step(6 * HOUR, 20), Step(7 * HOUR, 60), Step(13 * HOUR, 20)])
    assert result.kinds()[-1] == (13 * HOUR, "resolved", "low")
    assert len(result.kinds()) == 4


def low_with_high_remembered() -> AlertState:
    """A state carried over at LOW with its level-up to HIGH of 2 h ago still remembered."""
    entered = T0 - timedelta(hours=2)
    return AlertState(
        THEATRE,
        "low",
        T0 - timedelta(hours=1),
        last_sent=((f"kg-tj:level_up:high@{to_iso(entered)}", entered),),
    )


def test_state_follows_level_even_when_alert_suppressed() -> None:
    # A state carried over with the level-up still remembered (a level no longer held):
    # the repeat is suppressed, the state still follows the level.
    state = low_with_high_remembered()
    new_state, decisions = decide_alerts(
        state, point(60, T0, level="high"), now=T0, settings=ALERTS, levels=LEVELS
    )
    assert decisions == []
    assert (new_state.level, new_state.level_since) == ("high", T0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            [Step(0, 56), Step(3 * HOUR, 60), Step(5 * HOUR, 57)],
            [(0, "level_up", "high")],
        ),
        (
            [Step(0, 56), Step(6 * HOUR, 20), Step(7 * HOUR, 56)],
            [
                (0, "level_up", "high"),
                (6 * HOUR, "resolved", "low"),
                (7 * HOUR, "level_up", "high"),
            ],
        ),
        (
            [Step(0, 56), Step(6 * HOUR, 20), Step(24 * HOUR, 56)],
            [
                (0, "level_up", "high"),
                (6 * HOUR, "resolved", "low"),
                (24 * HOUR, "level_up", "high"),
            ],
        ),
        (
            [Step(0, 35, 22.0), Step(15, 40, 25.0), Step(23 * HOUR, 41, 21.0)],
            [(0, "level_up", "elevated")],
        ),
        (
            [Step(0, 35), Step(15, 40, 25.0), Step(HOUR, 41, 26.0), Step(25 * HOUR, 45, 21.0)],
            [
                (0, "level_up", "elevated"),
                (15, "surge", "elevated"),
                (25 * HOUR, "surge", "elevated"),
            ],
        ),
        (
            [Step(0, 35), Step(15, 40, 19.9)],
            [(0, "level_up", "elevated")],
        ),
    ],
    ids=[
        "no-repeat-of-level-up-while-the-level-holds",
        "level-up-again-after-resolved-within-interval",
        "level-up-again-after-interval",
        "surge-folded-into-level-up-and-not-repeated",
        "surge-once-then-again-after-interval",
        "below-surge-threshold",
    ],
)
def test_repeats_and_surges(steps: list[Step], expected: list[tuple[int, str, str | None]]) -> None:
    assert run(steps).kinds() == expected


def test_surge_reason_mentions_rise_and_baseline() -> None:
    state, _ = decide_alerts(
        None, point(35, T0, level="elevated"), now=T0, settings=ALERTS, levels=LEVELS
    )
    later = T0 + timedelta(hours=1)
    p = point(52, later, level="elevated", change_24h=22.0, baseline=30.0)
    _, [surge] = decide_alerts(state, p, now=later, settings=ALERTS, levels=LEVELS)
    assert (surge.kind, surge.urgent) == ("surge", True)
    assert surge.reason == "surge: +22 in 24 h to 52, baseline 30"


def test_old_last_sent_entries_are_pruned() -> None:
    old = ("kg-tj:surge@2024-09-10T00:00:00Z", T0 - timedelta(hours=25))
    fresh = ("kg-tj:surge@2024-09-18T00:00:00Z", T0 - timedelta(hours=12))
    state = AlertState(THEATRE, "elevated", T0 - timedelta(days=3), last_sent=(old, fresh))
    new_state, _ = decide_alerts(
        state, point(40, T0, level="elevated"), now=T0, settings=ALERTS, levels=LEVELS
    )
    assert new_state.last_sent == (fresh,)


# ---------------------------------------------------------------------------
# Critical matches


def test_critical_once_per_story_and_indicator() -> None:
    a, b = critical(11, story_id=5), critical(12, story_id=5)  # two articles of one story
    c = critical(13, story_id=6)
    result = run([Step(0, 10, critical=(a, b, c)), Step(15, 10, critical=(a, b, c))])
    decisions = [d for _, d in result.sent]
    # One email for the cycle's critical stories, none again for the same stories.
    assert [(d.kind, d.match_ids) for d in decisions] == [("critical", (11, 12, 13))]
    assert all(d.urgent for d in decisions)
    assert decisions[0].dedup_key == "kg-tj:critical:stories:5+6"
    assert (
        decisions[0].reason
        == "critical sign shots_fired: Shots fired at the border post (24.kg) and 1 more"
    )


def test_the_critical_email_names_the_same_story_whatever_order_the_feeds_finished() -> None:
    # Ids follow the order in which feeds happened to finish; the email must not.
    def reason(first_id: int, second_id: int) -> str:
        early = replace(
            critical(first_id, story_id=first_id),
            title="Clash at Vorukh",
            url="https://a.example/1",
            occurred_at=T0 - timedelta(hours=2),
        )
        late = replace(
            critical(second_id, story_id=second_id), title="Shots at Kok-Tash", url="https://b/2"
        )
        _, [decision] = decide_alerts(
            AlertState(THEATRE, "high", T0 - timedelta(days=1)),
            point(60, T0, level="high"),
            now=T0,
            settings=ALERTS,
            levels=LEVELS,
            critical_matches=(early, late),
        )
        return decision.reason

    assert reason(11, 12) == reason(12, 11)
    assert reason(12, 11).startswith("critical sign shots_fired: Clash at Vorukh")


def test_critical_rides_on_a_level_up_of_the_same_cycle() -> None:
    state = AlertState(THEATRE, "low", T0 - timedelta(days=1))
    _, decisions = decide_alerts(
        state,
        point(60, T0, level="high"),
        now=T0,
        settings=ALERTS,
        levels=LEVELS,
        critical_matches=(critical(11, story_id=5),),
    )
    [only] = decisions
    assert only.kind == "level_up" and only.match_ids == (11,)
    assert "critical sign shots_fired" in only.reason


def test_critical_during_a_suppressed_surge_goes_out_on_its_own() -> None:
    # A surge lasting hours: its repeat is suppressed, and a second clash must not be
    # folded into that suppressed email.
    state = AlertState(THEATRE, "elevated", T0 - timedelta(days=2))
    first = critical(11, story_id=5)
    second = critical(12, story_id=6)
    result = run(
        [Step(0, 45, 25.0, critical=(first,)), Step(2 * HOUR, 47, 24.0, critical=(second,))],
        state=state,
    )
    assert [(minutes, d.kind, d.match_ids) for minutes, d in result.sent] == [
        (0, "surge", (11,)),
        (2 * HOUR, "critical", (12,)),
    ]


def test_critical_beside_a_suppressed_level_up_goes_out_on_its_own() -> None:
    state = low_with_high_remembered()
    _, decisions = decide_alerts(
        state,
        point(60, T0, level="high"),
        now=T0,
        settings=ALERTS,
        levels=LEVELS,
        critical_matches=(critical(11, story_id=5),),
    )
    assert [(d.kind, d.match_ids) for d in decisions] == [("critical", (11,))]


def test_alerted_signs_names_the_pairs_a_decision_carries() -> None:
    matches = (critical(11, story_id=5), critical(12, story_id=5), critical(13, story_id=6))
    _, [decision] = decide_alerts(
        None,
        point(10, T0, level="low"),
        now=T0,
        settings=ALERTS,
        levels=LEVELS,
        critical_matches=matches,
    )
    assert alerted_signs(decision, matches) == [(5, "shots_fired"), (6, "shots_fired")]
    assert alerted_signs(replace(decision, match_ids=(13,)), matches) == [(6, "shots_fired")]


def test_critical_ignores_non_events_and_other_theatres() -> None:
    matches = (critical(1, story_id=1, confidence=0.2), critical(2, story_id=2, theatre_id="csto"))
    assert run([Step(0, 10, critical=matches)]).sent == []


def test_critical_not_repeated_within_interval_same_key_after() -> None:
    m = critical(11, story_id=5)
    result = run(
        [
            Step(0, 10, critical=(m,)),
            Step(23 * HOUR, 10, critical=(m,)),
            Step(25 * HOUR, 10, critical=(m,)),
        ]
    )
    keys = [d.dedup_key for _, d in result.sent]
    # Re-offered after the interval, it comes back with the same key: the outbox's
    # UNIQUE(dedup_key) keeps it to one email.
    assert [minutes for minutes, _ in result.sent] == [0, 25 * HOUR]
    assert keys[0] == keys[1]


# ---------------------------------------------------------------------------
# Keys


def test_keys_are_stable_across_re_runs() -> None:
    state = AlertState(THEATRE, "elevated", T0 - timedelta(hours=8))
    at = T0
    p = point(60, at, level="high", change_24h=30.0)
    matches = (critical(11, story_id=5),)
    first_state, first = decide_alerts(
        state, p, now=at, settings=ALERTS, levels=LEVELS, critical_matches=matches
    )
    # The same decision re-run after a crash, minutes later, from the same stored point.
    _, again = decide_alerts(
        state,
        p,
        now=at + timedelta(minutes=7),
        settings=ALERTS,
        levels=LEVELS,
        critical_matches=matches,
    )
    assert [d.dedup_key for d in first] == [d.dedup_key for d in again]
    assert [d.dedup_key for d in first] == [
        f"kg-tj:level_up:high@{to_iso(at)}",
    ]
    assert first_state.level_since == at


def test_keys_differ_between_situations() -> None:
    result = run(
        [
            Step(0, 56),
            Step(6 * HOUR, 20),
            Step(30 * HOUR, 56),
            Step(36 * HOUR, 20),
            Step(37 * HOUR, 40, 25.0),
        ]
    )
    keys = [d.dedup_key for _, d in result.sent]
    assert len(keys) == 5
    assert len(set(keys)) == len(keys)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown level 'severe'"):
        decide_alerts(None, point(50, T0, level="severe"), now=T0, settings=ALERTS, levels=LEVELS)
    other = AlertState("am-az", "low", T0)
    with pytest.raises(ValueError, match="am-az"):
        decide_alerts(
            other, point(50, T0, level="elevated"), now=T0, settings=ALERTS, levels=LEVELS
        )


# ---------------------------------------------------------------------------
# Quiet hours


def utc(text: str) -> datetime:
    return from_iso(text)


@pytest.mark.parametrize(
    ("zone", "quiet", "now", "expected_quiet", "expected_release"),
    [
        ("UTC", ("22:00", "07:00"), "2024-09-14T23:00:00Z", True, "2024-09-15T07:00:00Z"),
        ("UTC", ("22:00", "07:00"), "2024-09-15T03:00:00Z", True, "2024-09-15T07:00:00Z"),
        ("UTC", ("22:00", "07:00"), "2024-09-14T22:00:00Z", True, "2024-09-15T07:00:00Z"),
        ("UTC", ("22:00", "07:00"), "2024-09-15T07:00:00Z", False, "2024-09-15T07:00:00Z"),
        ("UTC", ("22:00", "07:00"), "2024-09-15T12:00:00Z", False, "2024-09-15T12:00:00Z"),
        ("UTC", ("12:00", "14:00"), "2024-09-15T13:00:00Z", True, "2024-09-15T14:00:00Z"),
        ("UTC", ("12:00", "14:00"), "2024-09-15T23:00:00Z", False, "2024-09-15T23:00:00Z"),
        ("UTC", ("07:00", "07:00"), "2024-09-15T07:00:00Z", False, "2024-09-15T07:00:00Z"),
        ("Asia/Bishkek", ("22:00", "07:00"), "2024-09-14T17:00:00Z", True, "2024-09-15T01:00:00Z"),
        ("Asia/Bishkek", ("22:00", "07:00"), "2024-09-14T15:00:00Z", False, "2024-09-14T15:00:00Z"),
        ("Europe/Berlin", ("22:00", "07:00"), "2024-03-30T22:00:00Z", True, "2024-03-31T05:00:00Z"),
        ("Europe/Berlin", ("22:00", "07:00"), "2024-10-26T21:00:00Z", True, "2024-10-27T06:00:00Z"),
        (
            "America/New_York",
            ("22:00", "07:00"),
            "2024-11-03T04:30:00Z",
            True,
            "2024-11-03T12:00:00Z",
        ),
    ],
    ids=[
        "evening-across-midnight",
        "after-midnight",
        "start-inclusive",
        "end-exclusive",
        "daytime",
        "same-day-window",
        "outside-same-day-window",
        "equal-start-end-means-none",
        "bishkek-local-night",
        "bishkek-local-evening-before-start",
        "berlin-night-of-spring-forward",
        "berlin-night-of-fall-back",
        "new-york-night-of-fall-back",
    ],
)
def test_quiet_hours(
    zone: str, quiet: tuple[str, str], now: str, expected_quiet: bool, expected_release: str
) -> None:
    settings = replace(ALERTS, timezone=zone, quiet_hours=quiet)
    assert is_quiet_time(utc(now), settings) is expected_quiet
    assert release_time(utc(now), settings) == utc(expected_release)


def test_no_quiet_hours_configured() -> None:
    assert not is_quiet_time(utc("2024-09-15T03:00:00Z"), ALERTS)


@pytest.mark.parametrize(
    ("kind", "urgent", "held"),
    [
        ("level_up", True, True),
        ("surge", True, True),
        ("resolved", True, True),
        ("critical", True, False),
        ("level_down", False, False),
        ("digest", True, False),
        ("test", True, False),
    ],
    ids=[
        "level-up-held",
        "surge-held",
        "resolved-held",
        "critical-goes-at-once",
        "digest-item-not-held",
        "digest-at-its-time",
        "test-email-at-once",
    ],
)
def test_send_after_holds_urgent_non_critical_alerts(
    kind: AlertKind, urgent: bool, held: bool
) -> None:
    settings = replace(ALERTS, quiet_hours=("22:00", "07:00"))
    now = utc("2024-09-14T23:00:00Z")
    decision = AlertDecision(
        dedup_key="k", kind=kind, theatre_id=THEATRE, created_at=now, urgent=urgent
    )
    expected = utc("2024-09-15T07:00:00Z") if held else now
    assert send_after(decision, now=now, settings=settings) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"quiet_hours": ("10pm", "07:00")},
        {"quiet_hours": ("25:00", "07:00")},
    ],
    ids=["unknown-zone", "not-hh-mm", "hour-out-of-range"],
)
def test_bad_quiet_hours_settings_are_clear_errors(bad: dict[str, Any]) -> None:
    settings = replace(ALERTS, **{"quiet_hours": ("22:00", "07:00"), **bad})
    with pytest.raises(ValueError, match="alerts"):
        is_quiet_time(T0, settings)


# ---------------------------------------------------------------------------
# Digest


@pytest.mark.parametrize(
    ("zone", "digest_time", "last", "now", "expected"),
    [
        ("UTC", "08:00", None, "2024-09-14T09:00:00Z", "2024-09-14T08:00:00Z"),
        ("UTC", "08:00", None, "2024-09-14T07:59:00Z", "2024-09-13T08:00:00Z"),
        ("UTC", "08:00", "2024-09-14T08:00:00Z", "2024-09-14T09:00:00Z", None),
        ("UTC", "08:00", "2024-09-14T08:05:00Z", "2024-09-14T20:00:00Z", None),
        ("UTC", "08:00", "2024-09-14T08:00:00Z", "2024-09-15T07:59:59Z", None),
        ("UTC", "08:00", "2024-09-14T08:00:00Z", "2024-09-15T08:00:00Z", "2024-09-15T08:00:00Z"),
        ("UTC", "08:00", "2024-09-10T08:00:00Z", "2024-09-15T10:00:00Z", "2024-09-15T08:00:00Z"),
        ("UTC", "08:00", "2024-09-14T07:00:00Z", "2024-09-14T08:00:00Z", "2024-09-14T08:00:00Z"),
        ("Asia/Bishkek", "08:00", None, "2024-09-14T02:30:00Z", "2024-09-14T02:00:00Z"),
        ("Asia/Bishkek", "08:00", None, "2024-09-14T01:30:00Z", "2024-09-13T02:00:00Z"),
        ("Europe/Berlin", "08:00", None, "2024-03-30T07:30:00Z", "2024-03-30T07:00:00Z"),
        (
            "Europe/Berlin",
            "08:00",
            "2024-03-30T07:00:00Z",
            "2024-03-31T06:30:00Z",
            "2024-03-31T06:00:00Z",
        ),
        ("Europe/Berlin", "08:00", "2024-03-30T07:00:00Z", "2024-03-31T05:59:00Z", None),
    ],
    ids=[
        "first-run-latest-slot",
        "before-todays-slot-yesterdays",
        "done",
        "done-recorded-as-send-time",
        "not-yet-next-slot",
        "next-day-due",
        "missed-days-collapse",
        "late-send-of-yesterday-does-not-cover-today",
        "bishkek-local-morning",
        "bishkek-before-local-morning",
        "berlin-winter-time",
        "berlin-summer-time-after-spring-forward",
        "berlin-summer-time-not-yet",
    ],
)
def test_digest_due(
    zone: str, digest_time: str, last: str | None, now: str, expected: str | None
) -> None:
    settings = replace(ALERTS, timezone=zone, digest_time=digest_time)
    due = digest_due(None if last is None else utc(last), utc(now), settings)
    assert due == (None if expected is None else utc(expected))


def test_digest_key_is_stable_per_slot() -> None:
    slot = utc("2024-09-14T08:00:00Z")
    assert digest_key(slot) == digest_key(slot.astimezone()) == "digest@2024-09-14T08:00:00Z"
    assert digest_key(slot) != digest_key(slot + timedelta(days=1))


# ---------------------------------------------------------------------------
# Feed notices


@pytest.mark.parametrize(
    ("failing_hours", "down_notified", "expected_flag", "expected_kinds"),
    [
        (None, False, False, []),
        (0.0, False, False, []),
        (23.9, False, False, []),
        (24.0, False, False, []),
        (24.1, False, True, ["feed_down"]),
        (30.0, True, True, []),
        (None, True, False, ["feed_recovered"]),
    ],
    ids=[
        "healthy",
        "single-failure",
        "failing-below-threshold",
        "failing-exactly-threshold",
        "failing-past-threshold",
        "down-already-notified",
        "recovered-after-notice",
    ],
)
def test_feed_notices(
    failing_hours: float | None,
    down_notified: bool,
    expected_flag: bool,
    expected_kinds: list[str],
) -> None:
    failing_since = None if failing_hours is None else T0 - timedelta(hours=failing_hours)
    flag, notices = feed_notices(
        "eurasianet",
        "Eurasianet",
        failing_since=failing_since,
        down_notified=down_notified,
        now=T0,
        settings=ALERTS,
    )
    assert flag is expected_flag
    assert [n.kind for n in notices] == expected_kinds
    assert all(n.theatre_id is None and not n.urgent for n in notices)


def test_feed_down_key_names_the_outage() -> None:
    since = T0 - timedelta(hours=30)

    def down_key(now: datetime, failing_since: datetime) -> str:
        _, [notice] = feed_notices(
            "eurasianet",
            "Eurasianet",
            failing_since=failing_since,
            down_notified=False,
            now=now,
            settings=ALERTS,
        )
        return notice.dedup_key

    assert down_key(T0, since) == down_key(T0 + timedelta(hours=1), since)
    assert down_key(T0, since) == f"feed:eurasianet:down@{to_iso(since)}"
    assert down_key(T0, since) != down_key(T0, since - timedelta(days=3))


# ---------------------------------------------------------------------------
# Properties

HIGH = next(level for level in LEVELS if level.name == "high")
CRITICAL = next(level for level in LEVELS if level.name == "critical")
gaps = st.integers(min_value=1, max_value=12 * HOUR)


@given(
    st.lists(
        st.tuples(gaps, st.floats(HIGH.exit, HIGH.enter, exclude_max=True)), min_size=1, max_size=60
    )
)
def test_band_between_exit_and_enter_gives_at_most_one_level_up(
    ticks: list[tuple[int, float]],
) -> None:
    minutes = 0
    steps = []
    for gap, index in ticks:
        minutes += gap
        steps.append(Step(minutes, index))
    assert sum(d.kind == "level_up" for _, d in run(steps).sent) <= 1


@given(
    st.floats(HIGH.enter, CRITICAL.enter, exclude_max=True),
    st.lists(st.tuples(gaps, st.floats(HIGH.exit, CRITICAL.enter, exclude_max=True)), max_size=60),
)
def test_oscillating_around_enter_after_entering_gives_one_level_up(
    first: float, ticks: list[tuple[int, float]]
) -> None:
    steps, minutes = [Step(0, first)], 0
    for gap, index in ticks:
        minutes += gap
        steps.append(Step(minutes, index))
    assert [(k, level) for _, k, level in run(steps).kinds()] == [("level_up", "high")]


@given(
    st.lists(
        st.tuples(gaps, st.floats(0.0, 100.0), st.none() | st.floats(-50.0, 50.0)),
        max_size=80,
    )
)
def test_no_situation_repeats_within_the_interval_and_keys_are_unique(
    ticks: list[tuple[int, float, float | None]],
) -> None:
    """A situation is said again within the repeat interval only when the level moved the
    other way in between, and that move was said too (the reader's last word is current)."""
    steps, minutes = [], 0
    for gap, index, change in ticks:
        minutes += gap
        steps.append(Step(minutes, index, change))
    result = run(steps)
    keys = [d.dedup_key for _, d in result.sent]
    assert len(set(keys)) == len(keys)
    direction = {"level_up": 1, "level_down": -1, "resolved": -1}
    last_seen: dict[str, int] = {}  # situation -> position in result.sent
    for position, (at, d) in enumerate(result.sent):
        situation = d.dedup_key.split("@")[0]
        if situation in last_seen:
            before = last_seen[situation]
            earlier_at = result.sent[before][0]
            reversed_between = d.kind in direction and any(
                direction.get(between.kind) == -direction[d.kind]
                for _, between in result.sent[before + 1 : position]
            )
            assert reversed_between or ((at - earlier_at) * 60 >= ALERTS.repeat_interval_seconds)
        last_seen[situation] = position
    levels = [d for _, d in result.sent if d.kind in direction]
    for earlier, later in itertools.pairwise(levels):
        # Consecutive level announcements chain: each starts where the previous one ended.
        assert later.previous_level == earlier.level
