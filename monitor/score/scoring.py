"""Risk scoring: the matches of a window become one explained score point per theatre.

Owns how much a match counts (indicator weight, confidence, outlet weight, corroboration,
decay with a half-life), how one story is counted once per indicator, the 0–100 index and
its named levels with hysteresis, and how a point moved (24 h and 7 d changes, a
weekend-aware baseline, the surge above it).

Must not read the clock, touch the database, files or the network, or log: every function
is a pure function of its arguments and an explicit `now`, so that `replay` re-scores
history honestly and the tests can go table by table.

Choices (see docs/decisions.md):

- A match below `EVENT_CONFIDENCE` (negated, hypothetical, historical…) counts 0 points:
  it is kept as evidence of what was *not* counted, never as a fraction of an event.
- One story counts once per indicator: of several matches of one (story, indicator) the
  one with the most points (by absolute value) counts; ties go to the lowest match id.
  More outlets strengthen a story only through `ScoredMatch.sources` (corroboration).
- The raw score is summed with `math.fsum`, so the result does not depend on input order.
- Changes: `change_24h` / `change_7d` compare with the history point nearest to 24 h / 7 d
  before `now`, if one lies within an eighth of that span (±3 h, ±21 h); else None.
- Baseline: mean of daily mean indexes over the `baseline_days` whole days before
  `now`'s day, counting only days of the same type as today (weekday vs Saturday/Sunday),
  because news volume, and so the index, drops at weekends. Days are calendar days in
  `settings.timezone` (a Saturday in Bishkek starts at 18:00 UTC on Friday). Fewer than
  two such days: None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.models import (
    EVENT_CONFIDENCE,
    Contribution,
    Level,
    ScoredMatch,
    ScorePoint,
    ScoringSettings,
    utc,
)

__all__ = ["contribution_points", "level_for", "score_theatre"]

_CHANGE_TOLERANCE = 1 / 8  # a reference point may be this share of the span off target
_MIN_BASELINE_DAYS = 2  # fewer days of the same type give no baseline


def contribution_points(m: ScoredMatch, *, now: datetime, settings: ScoringSettings) -> float:
    """Signed raw points `m` adds at `now`.

    weight × confidence × source_weight × corroboration(sources) × 0.5^(age / half-life),
    with the indicator's half-life if set, else `settings.half_life_hours`. Zero for a
    match after `now`, older than `settings.window_days`, or below `EVENT_CONFIDENCE`.
    Raises ValueError for a match whose numbers make no sense (NaN, confidence outside 0..1).
    """
    _check_match(m)
    age_hours = (utc(now) - utc(m.occurred_at)).total_seconds() / 3600.0
    if age_hours < 0 or age_hours > settings.window_days * 24.0:
        return 0.0
    if m.confidence < EVENT_CONFIDENCE or m.weight == 0:
        return 0.0
    half_life = m.half_life_hours if m.half_life_hours is not None else settings.half_life_hours
    if not half_life > 0:
        raise ValueError(
            f"match {m.match_id} ({m.indicator_id}): half-life must be > 0 hours, got {half_life!r}"
        )
    decay = 0.5 ** (age_hours / half_life)
    return m.weight * m.confidence * m.source_weight * _corroboration(m.sources, settings) * decay


def level_for(index: float, previous_level: str | None, levels: Sequence[Level]) -> str:
    """The level of `index`, with hysteresis against `previous_level`.

    Upward: the highest level whose `enter` the index reaches, at once. Downward: a level
    is left only when the index falls below its `exit`, one level at a time, so a fall
    from "high" to 27 (elevated: enter 30, exit 25) lands in "elevated". No previous level
    (or one no longer configured) gives the level by `enter` thresholds alone.
    """
    ordered = _ordered_levels(levels)
    names = [level.name for level in ordered]
    reached = 0
    for position, level in enumerate(ordered):
        if index >= level.enter:
            reached = position
    if previous_level not in names:
        return names[reached]
    position = names.index(previous_level)
    if reached > position:
        return names[reached]
    while position > 0 and index < ordered[position].exit:
        position -= 1
    return names[position]


def score_theatre(
    theatre_id: str,
    matches: Sequence[ScoredMatch],
    *,
    now: datetime,
    settings: ScoringSettings,
    history: Sequence[tuple[datetime, float]] = (),
    previous_level: str | None = None,
) -> ScorePoint:
    """Score `theatre_id` at `now` from `matches` (those of other theatres are ignored).

    `history` holds earlier (at, index) points of this theatre in any order; points at or
    after `now` are ignored. `previous_level` is the level of the theatre's last point.
    """
    if not settings.saturation > 0:
        raise ValueError(f"scoring.saturation must be > 0, got {settings.saturation!r}")
    now = utc(now)
    strongest: dict[tuple[int, str], tuple[float, ScoredMatch]] = {}
    for m in matches:
        if m.theatre_id != theatre_id:
            continue
        points = contribution_points(m, now=now, settings=settings)
        if points == 0.0:
            continue
        key = (m.story_id, m.indicator_id)
        held = strongest.get(key)
        if held is None or _strength(points, m) < _strength(*held):
            strongest[key] = (points, m)
    ordered = sorted(
        strongest.items(), key=lambda item: (_strength(*item[1]), item[0][1], item[0][0])
    )
    contributions = [
        Contribution(story_id=story_id, match_id=m.match_id, indicator_id=indicator_id, points=p)
        for (story_id, indicator_id), (p, m) in ordered
    ]
    raw = max(0.0, math.fsum(c.points for c in contributions))
    index = min(100.0, max(0.0, -100.0 * math.expm1(-raw / settings.saturation)))

    earlier = [(utc(at), float(value)) for at, value in history if utc(at) < now]
    baseline = _baseline(now, earlier, settings.baseline_days, ZoneInfo(settings.timezone))
    return ScorePoint(
        theatre_id=theatre_id,
        at=now,
        raw=raw,
        index=index,
        level=level_for(index, previous_level, settings.levels),
        methodology_version=settings.methodology_version,
        contributions=tuple(contributions),
        change_24h=_change(now, index, earlier, timedelta(hours=24)),
        change_7d=_change(now, index, earlier, timedelta(days=7)),
        baseline=baseline,
        surge=None if baseline is None else index - baseline,
    )


# ---------------------------------------------------------------------------
# Helpers


def _check_match(m: ScoredMatch) -> None:
    if not math.isfinite(m.weight):
        raise ValueError(f"match {m.match_id} ({m.indicator_id}): weight is {m.weight!r}")
    if not 0.0 <= m.confidence <= 1.0:
        raise ValueError(
            f"match {m.match_id} ({m.indicator_id}): confidence must be within 0..1, "
            f"got {m.confidence!r}"
        )
    if not (math.isfinite(m.source_weight) and m.source_weight >= 0):
        raise ValueError(
            f"match {m.match_id} ({m.indicator_id}): source_weight must be >= 0, "
            f"got {m.source_weight!r}"
        )


def _corroboration(sources: int, settings: ScoringSettings) -> float:
    """1 for one outlet, + `corroboration` per further distinct outlet, up to the cap."""
    counted = max(1, min(sources, settings.corroboration_cap))
    return 1.0 + settings.corroboration * (counted - 1)


def report_order(m: ScoredMatch) -> tuple[datetime, str, str]:
    """A match's place among equals by what it reports (the earlier report, then its link
    and title), used before ids, which follow the order in which feeds happened to
    finish: the same news reads and ranks the same from run to run."""
    return (m.occurred_at, m.url or "", m.title)


def _strength(points: float, m: ScoredMatch) -> tuple[float, float, datetime, str, str, int]:
    """Sort key: smaller is stronger (most points by size), then `report_order`."""
    return (-abs(points), points, *report_order(m), m.match_id)


def _ordered_levels(levels: Sequence[Level]) -> list[Level]:
    if not levels:
        raise ValueError("scoring.levels: at least one level is needed")
    ordered = sorted(levels, key=lambda level: (level.enter, level.exit, level.name))
    names = [level.name for level in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"scoring.levels: level names must be unique, got {names}")
    for level in ordered:
        if level.exit > level.enter:
            raise ValueError(
                f"scoring.levels.{level.name}: exit ({level.exit}) must not be above "
                f"enter ({level.enter}), or the level would flap"
            )
    return ordered


def _change(
    now: datetime, index: float, earlier: Sequence[tuple[datetime, float]], span: timedelta
) -> float | None:
    """Index minus the history point nearest to `now - span`, if one is near enough."""
    target = now - span
    tolerance = span * _CHANGE_TOLERANCE
    near = [(abs(at - target), at, value) for at, value in earlier if abs(at - target) <= tolerance]
    if not near:
        return None
    return index - min(near)[2]


def _is_weekend(day: date) -> bool:
    return day.weekday() >= 5  # Saturday, Sunday: the weekend in KG, TJ, AM, AZ and RU


def _baseline(
    now: datetime, earlier: Sequence[tuple[datetime, float]], baseline_days: int, zone: ZoneInfo
) -> float | None:
    today = now.astimezone(zone).date()
    first = today - timedelta(days=baseline_days)
    weekend = _is_weekend(today)
    by_day: dict[date, list[float]] = {}
    for at, value in earlier:
        day = at.astimezone(zone).date()
        if first <= day < today and _is_weekend(day) == weekend:
            by_day.setdefault(day, []).append(value)
    if len(by_day) < _MIN_BASELINE_DAYS:
        return None
    daily_means = [math.fsum(values) / len(values) for _, values in sorted(by_day.items())]
    return math.fsum(daily_means) / len(daily_means)
