"""Alert decisions: previous alert state + a new score point → alerts to record.

Owns when an alert is due (level up at once, down only after a minimum time in a level,
resolved, surge, critical matches, no repeat within the repeat interval), the stable
`dedup_key` of each alert, feed down/recovered notices, quiet hours and digest slots.

Must not read the clock, touch the database, SMTP, files or the network, or log: every
function is a pure function of its arguments and an explicit `now`. Recording decisions
(the outbox) and sending them belong to `db` and `notify`.

Choices (see docs/decisions.md):

- Keys read `<situation>@<instance>`: the part before "@" names a situation that can
  repeat ("kg-tj:level_up:high"), the part after pins this occurrence (the time of the
  score point that caused it, `to_iso`). Repeat suppression compares situations; the
  outbox's UNIQUE(dedup_key) compares whole keys. Keys depend only on the inputs that
  describe the situation (never on `now` where a score time exists), so re-running a
  decision after a crash gives the same key.
    level_up     kg-tj:level_up:high@2024-09-14T08:30:00Z      (time the level was entered)
    level_down   kg-tj:level_down:elevated@<time of the fall>
    resolved     kg-tj:resolved@<time of the fall>
    surge        kg-tj:surge@<time of the score point>
    critical     kg-tj:critical:stories:<story_id>+<story_id>…   (the new critical stories of
                 one cycle in one email; each story's situation
                 kg-tj:critical:story:<story_id>:<indicator_id> is remembered, so it never
                 alerts twice; folded into a level_up or surge of the same cycle)
    feed_down    feed:<feed_id>:down@<failing_since>
    recovered    feed:<feed_id>:recovered@<now>
    digest       digest@<slot>
- The alert level follows `point.level` (already hysteresis-bound by `scoring`) upward at
  once and downward only after `min_level_seconds` in the current level. No state yet
  (or a level no longer configured) starts from the lowest level, so a theatre first
  seen at "high" raises a level_up.
- Surge: `point.change_24h >= surge_points_24h`. Surge against the baseline is shown in
  the reason but not a trigger: it stays up for days and would repeat daily. A surge that
  comes with a level_up is folded into it (one email) and its situation is remembered,
  so it does not follow on the next tick.
- Critical: the (story, indicator) groups among `critical_matches` that are events
  (confidence >= EVENT_CONFIDENCE) and not alerted before make ONE email per cycle, or
  ride on the cycle's level_up/surge email (a busy reader gets one message, not four);
  the caller passes the critical matches new in this cycle and not alerted before (it
  keeps the alerted (story, indicator) pairs for good: `alerted_signs` names the pairs a
  decision carries). Within the repeat interval `last_sent` deduplicates stories too.
- Repeats are dropped FIRST, and a critical sign rides only on a level_up or surge that
  actually goes out; otherwise it is an email of its own. Nothing is remembered as said
  unless it was said.
- A level change clears what was said in the other direction: after "resolved", a
  return to HIGH within the repeat interval is a new level_up (the last email the reader
  saw said "calmed"), and a fall after a fresh rise is a new resolved/level_down.
- Urgent: level_up, surge, critical, resolved. level_down, feed_down, feed_recovered go
  into the digest (urgent=False).
- Quiet hours hold urgent alerts other than "critical" (and the digest and test emails,
  sent when the operator asked) until `release_time`; the caller asks `send_after`.
  Equal start and end mean no quiet hours.
- Digest: only the latest slot not yet done is due; missed days collapse into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.models import (
    EVENT_CONFIDENCE,
    AlertDecision,
    AlertKind,
    AlertSettings,
    AlertState,
    Level,
    ScoredMatch,
    ScorePoint,
    to_iso,
    utc,
)
from monitor.score.scoring import report_order

__all__ = [
    "alerted_signs",
    "decide_alerts",
    "digest_due",
    "digest_key",
    "feed_notices",
    "is_quiet_time",
    "release_time",
    "send_after",
]

_REASON_MAX = 200  # characters of a one-line reason
_NEVER_HELD: frozenset[AlertKind] = frozenset({"critical", "digest", "test"})  # by quiet hours


def decide_alerts(
    state: AlertState | None,
    point: ScorePoint,
    *,
    now: datetime,
    settings: AlertSettings,
    levels: Sequence[Level],
    critical_matches: Sequence[ScoredMatch] = (),
) -> tuple[AlertState, list[AlertDecision]]:
    """The theatre's new alert state and the alerts `point` calls for at `now`.

    Decisions suppressed as repeats are left out; the state still follows the level.
    """
    now = utc(now)
    at = utc(point.at)
    theatre = point.theatre_id
    rank = _level_ranks(levels)
    lowest = min(rank, key=rank.__getitem__)
    if point.level not in rank:
        raise ValueError(f"score point of {theatre}: unknown level {point.level!r}")
    if state is not None and state.theatre_id != theatre:
        raise ValueError(f"alert state of {state.theatre_id!r} given for a point of {theatre!r}")

    if state is not None and state.level in rank:
        level, since = state.level, utc(state.level_since)
    else:
        level, since = lowest, at
    repeat = timedelta(seconds=settings.repeat_interval_seconds)
    recent = [
        (key, utc(when))
        for key, when in (state.last_sent if state else ())
        if now - utc(when) < repeat
    ]
    recent_situations = {_situation(key) for key, _ in recent}

    remembered: list[str] = []  # situations covered by another alert

    def decision(
        key: str,
        kind: AlertKind,
        *,
        urgent: bool,
        reason: str,
        level: str,
        previous_level: str | None = None,
        match_ids: tuple[int, ...] = (),
    ) -> AlertDecision:
        return AlertDecision(
            dedup_key=key,
            kind=kind,
            theatre_id=theatre,
            created_at=now,
            urgent=urgent,
            level=level,
            previous_level=previous_level,
            index=point.index,
            change_24h=point.change_24h,
            reason=_one_line(reason),
            match_ids=match_ids,
        )

    new_level, new_since = level, since
    level_change: AlertDecision | None = None
    went_up = rank[point.level] > rank[level]
    if went_up:
        new_level, new_since = point.level, at
        level_change = decision(
            f"{theatre}:level_up:{new_level}@{to_iso(at)}",
            "level_up",
            urgent=True,
            level=new_level,
            previous_level=level,
            reason=f"entered {new_level.upper()} at {_points(point)}",
        )
    elif rank[point.level] < rank[level] and (now - since).total_seconds() >= (
        settings.min_level_seconds
    ):
        new_level, new_since = point.level, at
        if new_level == lowest:
            level_change = decision(
                f"{theatre}:resolved@{to_iso(at)}",
                "resolved",
                urgent=True,
                level=new_level,
                previous_level=level,
                reason=f"calmed: back to {new_level.upper()} at {_points(point)}"
                f", from {level.upper()}",
            )
        else:
            level_change = decision(
                f"{theatre}:level_down:{new_level}@{to_iso(at)}",
                "level_down",
                urgent=False,
                level=new_level,
                previous_level=level,
                reason=f"fell to {new_level.upper()} at {_points(point)}, from {level.upper()}",
            )
    if new_level != level:
        # A level change ends what was said in the other direction: after "calmed", a
        # return to HIGH within the repeat interval is news again, and so is a fall after
        # a fresh rise.
        recent = [
            (key, when)
            for key, when in recent
            if not _is_undone_by(_situation(key), theatre, new_level, rank, went_up=went_up)
        ]
        recent_situations = {_situation(key) for key, _ in recent}

    # Repeats are dropped first: a critical sign rides only on an email that goes out.
    sent: list[AlertDecision] = []
    if level_change is not None and _situation(level_change.dedup_key) not in recent_situations:
        sent.append(level_change)

    if point.change_24h is not None and point.change_24h >= settings.surge_points_24h:
        surge_key = f"{theatre}:surge@{to_iso(at)}"
        if any(d.kind == "level_up" for d in sent):
            remembered.append(surge_key)  # the level-up email shows the rise
        elif _situation(surge_key) not in recent_situations:
            baseline = "" if point.baseline is None else f", baseline {point.baseline:.0f}"
            sent.append(
                decision(
                    surge_key,
                    "surge",
                    urgent=True,
                    level=new_level,
                    reason=f"surge: {point.change_24h:+.0f} in 24 h to {point.index:.0f}{baseline}",
                )
            )

    fresh = [
        (f"{theatre}:critical:story:{story_id}:{indicator_id}", group)
        for (story_id, indicator_id), group in _critical_groups(theatre, critical_matches)
        if f"{theatre}:critical:story:{story_id}:{indicator_id}" not in recent_situations
    ]
    if fresh:
        # One email per cycle however many critical stories arrived, and none of its own
        # when a level_up or surge of the same cycle goes out: that email names the
        # critical sign. Each story is remembered, so it never alerts twice.
        remembered.extend(key for key, _ in fresh)
        match_ids = tuple(m.match_id for _, group in fresh for m in group)
        first = fresh[0][1][0]
        sign = f"critical sign {first.indicator_id}: {first.title or first.evidence}"
        if first.outlet:
            sign += f" ({first.outlet})"
        if len(fresh) > 1:
            sign += f" and {len(fresh) - 1} more"
        carriers = [d for d in sent if d.kind in ("level_up", "surge")]
        if carriers:
            carrier = carriers[0]
            sent[sent.index(carrier)] = replace(
                carrier,
                reason=_one_line(f"{carrier.reason}; {sign}"),
                match_ids=carrier.match_ids + match_ids,
            )
        else:
            stories = "+".join(key.rsplit(":", 2)[-2] for key, _ in fresh)
            sent.append(
                decision(
                    f"{theatre}:critical:stories:{stories}",
                    "critical",
                    urgent=True,
                    level=new_level,
                    match_ids=match_ids,
                    reason=sign,
                )
            )

    last_sent = recent + [(d.dedup_key, now) for d in sent]
    known = {_situation(key) for key, _ in last_sent}
    last_sent += [(key, now) for key in dict.fromkeys(remembered) if _situation(key) not in known]
    new_state = AlertState(
        theatre_id=theatre,
        level=new_level,
        level_since=new_since,
        last_sent=tuple(sorted(last_sent, key=lambda entry: (entry[1], entry[0]))),
    )
    return new_state, sent


def alerted_signs(
    decision: AlertDecision, critical_matches: Sequence[ScoredMatch]
) -> list[tuple[int, str]]:
    """The (story, indicator) pairs of `critical_matches` that `decision` carries out."""
    carried = set(decision.match_ids)
    return sorted({(m.story_id, m.indicator_id) for m in critical_matches if m.match_id in carried})


def feed_notices(
    feed_id: str,
    feed_name: str,
    *,
    failing_since: datetime | None,
    down_notified: bool,
    now: datetime,
    settings: AlertSettings,
) -> tuple[bool, list[AlertDecision]]:
    """The new `down_notified` flag and the notice due for a feed, if any.

    Call it after each fetch of the feed: a first failure sets `failing_since` to the
    fetch time, so a single failure never raises a notice; "feed_down" needs the feed to
    be failing for longer than `feed_down_after_seconds`, and comes once per outage.
    "feed_recovered" follows only a down notice.
    """
    now = utc(now)
    label = f"{_one_line(feed_name)} ({feed_id})"
    if failing_since is not None:
        failing_since = utc(failing_since)
        failing_for = (now - failing_since).total_seconds()
        if down_notified or failing_for <= settings.feed_down_after_seconds:
            return down_notified, []
        notice = AlertDecision(
            dedup_key=f"feed:{feed_id}:down@{to_iso(failing_since)}",
            kind="feed_down",
            theatre_id=None,
            created_at=now,
            urgent=False,
            reason=_one_line(
                f"feed {label} failing since {to_iso(failing_since)} ({failing_for / 3600:.0f} h)"
            ),
        )
        return True, [notice]
    if not down_notified:
        return False, []
    notice = AlertDecision(
        dedup_key=f"feed:{feed_id}:recovered@{to_iso(now)}",
        kind="feed_recovered",
        theatre_id=None,
        created_at=now,
        urgent=False,
        reason=_one_line(f"feed {label} works again"),
    )
    return False, [notice]


def is_quiet_time(now: datetime, settings: AlertSettings) -> bool:
    """Whether `now` lies within the quiet hours (local time in `settings.timezone`)."""
    if settings.quiet_hours is None:
        return False
    start, end = (_clock(text, "alerts.quiet_hours") for text in settings.quiet_hours)
    clock = utc(now).astimezone(_zone(settings)).time().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # across midnight


def release_time(now: datetime, settings: AlertSettings) -> datetime:
    """When the quiet hours around `now` end, as UTC; `now` itself if they do not hold."""
    now = utc(now)
    if not is_quiet_time(now, settings):
        return now
    assert settings.quiet_hours is not None  # is_quiet_time said so
    start, end = (_clock(text, "alerts.quiet_hours") for text in settings.quiet_hours)
    zone = _zone(settings)
    local = now.astimezone(zone)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        day += timedelta(days=1)  # quiet since the evening: it ends tomorrow morning
    return utc(datetime.combine(day, end, tzinfo=zone))


def send_after(decision: AlertDecision, *, now: datetime, settings: AlertSettings) -> datetime:
    """The earliest time `decision` may be sent: quiet hours hold urgent alerts, except
    "critical" and what the operator asked for at that time ("digest", "test").

    Non-urgent decisions wait for the digest anyway; for them this is `now`.
    """
    if decision.urgent and decision.kind not in _NEVER_HELD:
        return release_time(now, settings)
    return utc(now)


def digest_due(
    last_digest_at: datetime | None, now: datetime, settings: AlertSettings
) -> datetime | None:
    """The latest digest slot at or before `now` (UTC) if no digest was done since, else None.

    `last_digest_at` is the slot (or send time) of the last digest done; None (never)
    makes the latest slot due. Missed slots are not made up one by one.
    """
    now = utc(now)
    digest_clock = _clock(settings.digest_time, "alerts.digest_time")
    zone = _zone(settings)
    day = now.astimezone(zone).date()
    slot = utc(datetime.combine(day, digest_clock, tzinfo=zone))
    if slot > now:
        slot = utc(datetime.combine(day - timedelta(days=1), digest_clock, tzinfo=zone))
    if last_digest_at is not None and utc(last_digest_at) >= slot:
        return None
    return slot


def digest_key(slot: datetime) -> str:
    """The dedup key of the digest for `slot`."""
    return f"digest@{to_iso(slot)}"


# ---------------------------------------------------------------------------
# Helpers


def _situation(key: str) -> str:
    return key.split("@", 1)[0]


def _is_undone_by(
    situation: str, theatre: str, new_level: str, rank: dict[str, int], *, went_up: bool
) -> bool:
    """Whether a move to `new_level` makes a remembered level alert no longer current."""
    parts = situation.split(":")
    if len(parts) < 2 or parts[0] != theatre:
        return False
    kind = parts[1]
    named = parts[2] if len(parts) > 2 else None
    if went_up:  # "calmed" and "fell to X" below the new level are no longer true
        return kind == "resolved" or (
            kind == "level_down" and named in rank and rank[named] < rank[new_level]
        )
    return kind == "level_up" and named in rank and rank[named] > rank[new_level]


def _level_ranks(levels: Sequence[Level]) -> dict[str, int]:
    if not levels:
        raise ValueError("scoring.levels: at least one level is needed")
    ordered = sorted(levels, key=lambda level: (level.enter, level.exit, level.name))
    return {level.name: position for position, level in enumerate(ordered)}


def _critical_groups(
    theatre: str, matches: Sequence[ScoredMatch]
) -> list[tuple[tuple[int, str], list[ScoredMatch]]]:
    """Critical event matches by (story, indicator), in `scoring.report_order` of each
    group's strongest match: ids follow the order in which feeds happened to finish, so
    ordering by them made the same news read differently from one run to the next."""
    groups: dict[tuple[int, str], list[ScoredMatch]] = {}
    for m in matches:
        if m.theatre_id == theatre and m.confidence >= EVENT_CONFIDENCE:
            groups.setdefault((m.story_id, m.indicator_id), []).append(m)
    ordered = [
        (key, sorted(group, key=lambda m: (-m.confidence, *report_order(m), m.match_id)))
        for key, group in groups.items()
    ]
    return sorted(ordered, key=lambda item: (*report_order(item[1][0]), item[0][1], item[0][0]))


def _points(point: ScorePoint) -> str:
    text = f"{point.index:.0f}"
    if point.change_24h is not None:
        text += f" ({point.change_24h:+.0f} in 24 h)"
    return text


def _one_line(text: str) -> str:
    line = " ".join(text.split())  # feed text may carry CR, LF, tabs
    return line if len(line) <= _REASON_MAX else line[: _REASON_MAX - 1] + "…"


def _clock(text: str, key: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{key}: expected a local time HH:MM, got {text!r}") from None


def _zone(settings: AlertSettings) -> tzinfo:
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"alerts.timezone: unknown time zone {settings.timezone!r} (use an IANA name "
            "such as Asia/Bishkek)"
        ) from None
