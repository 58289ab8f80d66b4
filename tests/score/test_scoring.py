"""Tests of monitor.score.scoring: tables for each rule, properties for the whole score."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import ScoredMatch, ScorePoint, ScoringSettings
from monitor.score.scoring import contribution_points, level_for, score_theatre

NOW = datetime(2024, 9, 18, 12, 0, tzinfo=UTC)  # a Wednesday
SETTINGS = ScoringSettings()
LEVELS = SETTINGS.levels
THEATRE = "kg-tj"


def scored(
    match_id: int = 1,
    *,
    story_id: int | None = None,
    indicator_id: str = "border_clash",
    theatre_id: str = THEATRE,
    weight: float = 10.0,
    confidence: float = 1.0,
    source_weight: float = 1.0,
    sources: int = 1,
    age_hours: float = 0.0,
    half_life_hours: float | None = None,
    now: datetime = NOW,
) -> ScoredMatch:
    return ScoredMatch(
        match_id=match_id,
        story_id=match_id if story_id is None else story_id,
        article_id=match_id,
        indicator_id=indicator_id,
        theatre_id=theatre_id,
        weight=weight,
        confidence=confidence,
        source_weight=source_weight,
        sources=sources,
        occurred_at=now - timedelta(hours=age_hours),
        half_life_hours=half_life_hours,
    )


def points(m: ScoredMatch, now: datetime = NOW) -> float:
    return contribution_points(m, now=now, settings=SETTINGS)


def index_of(raw: float, saturation: float = SETTINGS.saturation) -> float:
    return 100.0 * (1.0 - math.exp(-raw / saturation))


# ---------------------------------------------------------------------------
# contribution_points


def test_fresh_single_source_match_counts_weight_times_confidence_and_outlet() -> None:
    m = scored(weight=12.0, confidence=0.8, source_weight=0.7)
    assert points(m) == pytest.approx(12.0 * 0.8 * 0.7)


@pytest.mark.parametrize(
    ("indicator_half_life", "age_hours", "expected_share"),
    [
        (None, 72.0, 0.5),
        (None, 144.0, 0.25),
        (None, 36.0, 2**-0.5),
        (24.0, 24.0, 0.5),
        (24.0, 72.0, 0.125),
    ],
    ids=[
        "default-half-life-halves",
        "two-half-lives-quarter",
        "half-a-half-life",
        "indicator-half-life-halves",
        "indicator-half-life-overrides-default",
    ],
)
def test_half_life(indicator_half_life: float | None, age_hours: float, expected_share: float):
    fresh = points(scored(half_life_hours=indicator_half_life))
    aged = points(scored(half_life_hours=indicator_half_life, age_hours=age_hours))
    assert aged / fresh == pytest.approx(expected_share)


@pytest.mark.parametrize(
    ("sources", "expected_factor"),
    [(0, 1.0), (1, 1.0), (2, 1.25), (3, 1.5), (5, 2.0), (6, 2.0), (50, 2.0)],
    ids=["zero-as-one", "one", "two", "three", "at-cap", "over-cap", "far-over-cap"],
)
def test_corroboration_per_distinct_source_capped(sources: int, expected_factor: float) -> None:
    # indicators.yaml: each extra outlet adds a quarter, up to five outlets.
    single = points(scored(sources=1))
    assert points(scored(sources=sources)) == pytest.approx(single * expected_factor)


@pytest.mark.parametrize(
    ("age_hours", "counts"),
    [
        (30 * 24 - 0.01, True),
        (30 * 24, True),
        (30 * 24 + 0.01, False),
        (90 * 24, False),
        (-0.01, False),
        (0.0, True),
    ],
    ids=[
        "just-inside-window",
        "at-window-edge",
        "just-past-window",
        "far-past-window",
        "after-now",
        "at-now",
    ],
)
def test_window_cut_off(age_hours: float, counts: bool) -> None:
    assert (points(scored(age_hours=age_hours)) > 0) is counts


@pytest.mark.parametrize(
    ("confidence", "counts"),
    [(0.0, False), (0.49, False), (0.5, True), (1.0, True)],
    ids=["zero", "below-event", "event-threshold", "certain"],
)
def test_non_events_count_nothing(confidence: float, counts: bool) -> None:
    assert (points(scored(confidence=confidence)) > 0) is counts


def test_de_escalation_is_negative() -> None:
    assert points(scored(weight=-8.0)) == pytest.approx(-8.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"confidence": 1.5},
        {"confidence": -0.1},
        {"weight": math.nan},
        {"source_weight": -1.0},
        {"half_life_hours": 0.0},
    ],
    ids=["confidence-above-1", "confidence-negative", "weight-nan", "source-weight-neg", "hl-0"],
)
def test_bad_match_is_a_clear_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="match 7"):
        points(replace(scored(7), **bad))


# ---------------------------------------------------------------------------
# score_theatre


def score(
    matches: Sequence[ScoredMatch],
    *,
    now: datetime = NOW,
    settings: ScoringSettings = SETTINGS,
    history: Sequence[tuple[datetime, float]] = (),
    previous_level: str | None = None,
) -> ScorePoint:
    return score_theatre(
        THEATRE,
        matches,
        now=now,
        settings=settings,
        history=history,
        previous_level=previous_level,
    )


def test_story_counted_once_per_indicator_strongest_match_wins() -> None:
    weak = scored(1, story_id=5, confidence=0.6, sources=3)
    strong = scored(2, story_id=5, confidence=0.9, sources=3)
    point = score([weak, strong])
    assert [(c.story_id, c.match_id) for c in point.contributions] == [(5, 2)]
    assert point.raw == pytest.approx(points(strong))


def test_ties_are_broken_by_the_reports_not_by_ids_that_follow_feed_order() -> None:
    # One story in two languages (equal points), and two stories of equal points: the
    # story's evidence and the order of the stories are the same whichever ids the
    # articles got (ids follow the order in which feeds happened to finish).
    def evidence(ids: tuple[int, int, int]) -> list[str]:
        english = replace(scored(ids[0], story_id=7), url="https://a.example/en", title="Clash")
        russian = replace(scored(ids[1], story_id=7), url="https://b.example/ru", title="Бой")
        other = replace(scored(ids[2]), url="https://c.example/x", title="Other")
        by_id = {m.match_id: m.title for m in (english, russian, other)}
        return [by_id[c.match_id] for c in score([english, russian, other]).contributions]

    assert evidence((1, 2, 3)) == evidence((2, 1, 3)) == evidence((3, 2, 1))
    assert evidence((2, 1, 3)) == ["Clash", "Other"]


@pytest.mark.parametrize(
    ("pairs", "expected_contributions"),
    [
        ([(5, "border_clash"), (5, "border_clash"), (5, "border_clash")], 1),
        ([(5, "border_clash"), (5, "troops_massing")], 2),
        ([(5, "border_clash"), (6, "border_clash")], 2),
        ([(5, "border_clash"), (6, "border_clash"), (6, "troops_massing")], 3),
    ],
    ids=[
        "one-story-one-indicator-many-articles",
        "one-story-two-indicators",
        "two-stories-one-indicator",
        "mixed",
    ],
)
def test_contributions_per_story_and_indicator(
    pairs: list[tuple[int, str]], expected_contributions: int
) -> None:
    matches = [
        scored(i, story_id=story, indicator_id=indicator)
        for i, (story, indicator) in enumerate(pairs, 1)
    ]
    assert len(score(matches).contributions) == expected_contributions


def test_de_escalation_pulls_down_and_raw_never_below_zero() -> None:
    rise = scored(1, weight=10.0)
    calm = scored(2, indicator_id="talks", weight=-4.0)
    assert score([rise, calm]).raw == pytest.approx(6.0)
    only_calm = score([calm])
    assert only_calm.raw == 0.0
    assert only_calm.index == 0.0
    assert only_calm.level == "low"
    assert [c.points for c in only_calm.contributions] == [pytest.approx(-4.0)]


def test_index_maps_raw_through_saturation() -> None:
    point = score([scored(weight=SETTINGS.saturation)])
    assert point.raw == pytest.approx(SETTINGS.saturation)
    assert point.index == pytest.approx(100.0 * (1 - 1 / math.e))


def test_contributions_sorted_by_size_and_explain_the_raw_score() -> None:
    matches = [
        scored(1, weight=3.0),
        scored(2, weight=-9.0, indicator_id="talks"),
        scored(3, weight=6.0),
        scored(4, weight=12.0, age_hours=24.0),
    ]
    point = score(matches)
    sizes = [abs(c.points) for c in point.contributions]
    assert sizes == sorted(sizes, reverse=True)
    assert math.fsum(c.points for c in point.contributions) == pytest.approx(point.raw)


def test_other_theatres_and_old_matches_are_left_out() -> None:
    point = score(
        [
            scored(1, theatre_id="am-az", weight=30.0),
            scored(2, age_hours=31 * 24, weight=30.0),
            scored(3, weight=2.0),
        ]
    )
    assert [c.match_id for c in point.contributions] == [3]


def test_point_carries_time_theatre_and_methodology() -> None:
    custom = replace(SETTINGS, methodology_version="7b")
    point = score([scored()], settings=custom)
    assert (point.theatre_id, point.at, point.methodology_version) == (THEATRE, NOW, "7b")


@pytest.mark.parametrize(
    ("index", "previous", "expected"),
    [
        (0.0, None, "low"),
        (29.9, None, "low"),
        (30.0, None, "elevated"),
        (55.0, None, "high"),
        (80.0, None, "critical"),
        (30.0, "low", "elevated"),
        (29.9, "low", "low"),
        (27.0, "elevated", "elevated"),
        (25.0, "elevated", "elevated"),
        (24.9, "elevated", "low"),
        (50.0, "high", "high"),
        (47.9, "high", "elevated"),
        (27.0, "high", "elevated"),
        (20.0, "high", "low"),
        (100.0, "low", "critical"),
        (73.0, "critical", "critical"),
        (71.9, "critical", "high"),
        (27.0, "severe", "low"),
    ],
    ids=[
        "fresh-zero",
        "fresh-below-elevated",
        "fresh-enters-elevated",
        "fresh-enters-high",
        "fresh-enters-critical",
        "enter-elevated-at-threshold",
        "stay-low-below-enter",
        "hold-elevated-between-exit-and-enter",
        "hold-elevated-at-exit",
        "exit-elevated-below-exit",
        "hold-high-between-exit-and-enter",
        "exit-high-into-elevated",
        "fall-from-high-lands-in-elevated-band",
        "fall-from-high-through-elevated",
        "jump-straight-to-critical",
        "hold-critical",
        "exit-critical",
        "unknown-previous-level",
    ],
)
def test_level_hysteresis(index: float, previous: str | None, expected: str) -> None:
    assert level_for(index, previous, LEVELS) == expected


def test_levels_that_would_flap_are_refused() -> None:
    bad = (*LEVELS[:2], replace(LEVELS[2], exit=60.0))
    with pytest.raises(ValueError, match="high"):
        level_for(50.0, None, bad)


def test_score_uses_previous_level() -> None:
    m = scored(weight=-SETTINGS.saturation * math.log(1 - 0.27))  # index 27
    assert score([m]).index == pytest.approx(27.0)
    assert score([m]).level == "low"
    assert score([m], previous_level="elevated").level == "elevated"


# --- changes and baseline


def hourly(
    start: datetime, end: datetime, value_at: Callable[[datetime], float]
) -> list[tuple[datetime, float]]:
    out: list[tuple[datetime, float]] = []
    at = start
    while at < end:
        out.append((at, value_at(at)))
        at += timedelta(hours=1)
    return out


@pytest.mark.parametrize(
    ("history_hours_ago", "expected_24h", "expected_7d"),
    [
        ({24.0: 30.0, 168.0: 10.0}, -30.0, -10.0),
        ({26.0: 30.0}, -30.0, None),
        ({28.0: 30.0}, None, None),
        ({25.0: 20.0, 23.5: 30.0}, -30.0, None),
        ({21.0: 20.0, 27.0: 30.0}, -30.0, None),
        ({168.0 + 20.0: 12.0}, None, -12.0),
        ({168.0 + 24.0: 12.0}, None, None),
        ({}, None, None),
        ({-1.0: 50.0, 0.0: 40.0}, None, None),
    ],
    ids=[
        "exact-24h-and-7d",
        "gap-within-tolerance",
        "gap-too-wide",
        "nearest-point-wins",
        "equally-near-earlier-wins",
        "7d-gap-within-tolerance",
        "7d-gap-too-wide",
        "no-history",
        "points-at-or-after-now-ignored",
    ],
)
def test_changes_with_gaps(
    history_hours_ago: dict[float, float], expected_24h: float | None, expected_7d: float | None
) -> None:
    history = [(NOW - timedelta(hours=h), v) for h, v in history_hours_ago.items()]
    point = score([], history=history)  # index 0: the change is minus the reference
    assert point.index == 0.0
    assert point.change_24h == (None if expected_24h is None else pytest.approx(expected_24h))
    assert point.change_7d == (None if expected_7d is None else pytest.approx(expected_7d))


def weekday_40_weekend_10(at: datetime) -> float:
    return 10.0 if at.weekday() >= 5 else 40.0


@pytest.mark.parametrize(
    ("now", "expected_baseline"),
    [
        (datetime(2024, 9, 18, 12, tzinfo=UTC), 40.0),
        (datetime(2024, 9, 21, 12, tzinfo=UTC), 10.0),
        (datetime(2024, 9, 22, 0, 30, tzinfo=UTC), 10.0),
        (datetime(2024, 9, 23, 9, tzinfo=UTC), 40.0),
    ],
    ids=["wednesday-vs-weekdays", "saturday-vs-weekends", "sunday-early", "monday-vs-weekdays"],
)
def test_baseline_compares_same_day_type(now: datetime, expected_baseline: float) -> None:
    history = hourly(now - timedelta(days=40), now, weekday_40_weekend_10)
    point = score([], now=now, history=history)
    assert point.baseline == pytest.approx(expected_baseline)
    assert point.surge == pytest.approx(point.index - expected_baseline)


def test_baseline_days_are_local_days() -> None:
    """Saturday 03:00 in Bishkek is still Friday in UTC: with the desk's time zone the
    baseline compares with weekends, as the desk lives them."""
    bishkek = ZoneInfo("Asia/Bishkek")

    def local_weekday_40_weekend_10(at: datetime) -> float:
        return 10.0 if at.astimezone(bishkek).weekday() >= 5 else 40.0

    now = datetime(2024, 9, 21, 3, tzinfo=bishkek)  # Friday 21:00 UTC
    history = hourly(now - timedelta(days=40), now, local_weekday_40_weekend_10)
    local = replace(SETTINGS, timezone="Asia/Bishkek")
    assert score([], now=now, history=history, settings=local).baseline == pytest.approx(10.0)
    in_utc = score([], now=now, history=history).baseline  # UTC Fridays: mostly weekday hours
    assert in_utc is not None and in_utc > 30.0


def test_baseline_leaves_out_today_and_days_beyond_the_window() -> None:
    today_start = NOW.replace(hour=0)
    window_start = today_start - timedelta(days=SETTINGS.baseline_days)
    history = [
        *hourly(window_start, today_start, lambda at: 20.0),
        *hourly(today_start, NOW, lambda at: 95.0),  # today's own rise is not its baseline
        *hourly(window_start - timedelta(days=5), window_start, lambda at: 99.0),
    ]
    assert score([], history=history).baseline == pytest.approx(20.0)


def test_baseline_weighs_days_not_samples() -> None:
    busy_day = NOW.replace(hour=0) - timedelta(days=7)  # a Wednesday, sampled every 15 min
    quiet_day = NOW.replace(hour=0) - timedelta(days=1)  # a Tuesday, sampled once
    history = [(busy_day + timedelta(minutes=15 * i), 10.0) for i in range(96)]
    history.append((quiet_day + timedelta(hours=3), 40.0))
    assert score([], history=history).baseline == pytest.approx(25.0)


def test_baseline_needs_two_days_of_the_same_type() -> None:
    yesterday = NOW.replace(hour=0) - timedelta(days=1)
    history = hourly(yesterday, NOW.replace(hour=0), lambda at: 30.0)
    point = score([], history=history)
    assert (point.baseline, point.surge) == (None, None)


# ---------------------------------------------------------------------------
# Properties

INDICATORS = {  # id: (weight, half-life or None for the default)
    "border_clash": (12.0, None),
    "troops_massing": (8.0, 48.0),
    "rhetoric": (3.0, 24.0),
    "talks": (-6.0, None),
    "ceasefire": (-10.0, 96.0),
}
RISING = tuple(name for name, (weight, _) in INDICATORS.items() if weight > 0)
CALMING = tuple(name for name, (weight, _) in INDICATORS.items() if weight < 0)


@st.composite
def match_lists(
    draw: st.DrawFn, indicators: tuple[str, ...] = tuple(INDICATORS), min_age: float = -5.0
) -> list[ScoredMatch]:
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(1, 6),  # story: few, so stories share indicators
                st.sampled_from(indicators),
                st.floats(0.0, 1.0),
                st.floats(0.1, 2.0),
                st.integers(1, 8),
                st.floats(min_age, 800.0),
                st.sampled_from([THEATRE, THEATRE, "csto"]),
            ),
            max_size=25,
        )
    )
    return [
        ScoredMatch(
            match_id=i,
            story_id=story,
            article_id=i,
            indicator_id=indicator,
            theatre_id=theatre,
            weight=INDICATORS[indicator][0],
            confidence=confidence,
            source_weight=source_weight,
            sources=sources,
            occurred_at=NOW - timedelta(hours=age),
            half_life_hours=INDICATORS[indicator][1],
        )
        for i, (story, indicator, confidence, source_weight, sources, age, theatre) in enumerate(
            rows, 1
        )
    ]


histories = st.lists(
    st.tuples(
        st.floats(0.0, 40 * 24.0).map(lambda h: NOW - timedelta(hours=h)), st.floats(0.0, 100.0)
    ),
    max_size=40,
)


@given(match_lists(), st.sampled_from([None, "low", "elevated", "high", "critical"]))
def test_index_stays_within_0_and_100(matches: list[ScoredMatch], previous: str | None) -> None:
    point = score(matches, previous_level=previous)
    assert 0.0 <= point.index <= 100.0
    assert point.raw >= 0.0
    assert point.level in {level.name for level in LEVELS}


@given(
    match_lists(indicators=RISING, min_age=0.0),
    st.floats(0.0, 2000.0),
    st.floats(0.0, 2000.0),
)
def test_index_decays_when_nothing_new_arrives(
    matches: list[ScoredMatch], later_hours: float, even_later_hours: float
) -> None:
    t1 = NOW  # every match is at or before t1
    t2 = t1 + timedelta(hours=later_hours)
    t3 = t2 + timedelta(hours=even_later_hours)
    indexes = [score(matches, now=t).index for t in (t1, t2, t3)]
    assert indexes[0] >= indexes[1] >= indexes[2]


@settings(max_examples=60)
@given(st.data(), match_lists(), histories)
def test_score_does_not_depend_on_input_order(
    data: st.DataObject, matches: list[ScoredMatch], history: list[tuple[datetime, float]]
) -> None:
    shuffled_matches = data.draw(st.permutations(matches))
    shuffled_history = data.draw(st.permutations(history))
    assert score(shuffled_matches, history=shuffled_history) == score(matches, history=history)


@given(
    match_lists(),
    st.integers(1, 8),
    st.sampled_from(CALMING),
    st.floats(0.0, 1.0),
    st.floats(0.0, 100.0),
    st.sampled_from([None, "low", "elevated", "high", "critical"]),
)
def test_adding_a_de_escalation_never_raises_the_score(
    matches: list[ScoredMatch],
    story_id: int,
    indicator: str,
    confidence: float,
    age_hours: float,
    previous: str | None,
) -> None:
    calm = scored(
        10_000,
        story_id=story_id,
        indicator_id=indicator,
        weight=INDICATORS[indicator][0],
        half_life_hours=INDICATORS[indicator][1],
        confidence=confidence,
        age_hours=age_hours,
    )
    without = score(matches, previous_level=previous)
    with_calm = score([*matches, calm], previous_level=previous)
    assert with_calm.raw <= without.raw
    assert with_calm.index <= without.index
    names = [level.name for level in LEVELS]
    assert names.index(with_calm.level) <= names.index(without.level)
