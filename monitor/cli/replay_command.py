"""`monitor replay`: the command, and the replay's report as a table or JSON.

The replay itself (`monitor.lab.replay.replay_corpus`: a dated corpus through the
production pipeline on a simulated clock) and the event lead times live in the lab; this
module parses the options, runs it, and prints what it found.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from monitor.cli import output
from monitor.cli.common import Context, handle_errors
from monitor.cli.progress import progress_bar
from monitor.cli.timeparse import parse_duration
from monitor.lab.corpus import load_corpus
from monitor.models import from_iso, to_iso

__all__ = [
    "WARNING_KINDS",
    "EventOutcome",
    "HistoryMark",
    "LeadSummary",
    "ReplayError",
    "ReplayEvent",
    "ReplayResult",
    "compact_history",
    "corpus_entry",
    "event_outcomes",
    "lead_summary",
    "load_events",
    "render_json",
    "render_table",
    "replay_command",
    "replay_corpus",
    "replay_feeds",
]

from monitor.lab.replay import (
    WARNING_KINDS,
    EventOutcome,
    HistoryMark,
    LeadSummary,
    ReplayError,
    ReplayEvent,
    ReplayResult,
    compact_history,
    corpus_entry,
    duration_text,
    event_outcomes,
    lead_summary,
    load_events,
    replay_corpus,
    replay_feeds,
)

# ---------------------------------------------------------------------------
# Reports


NOT_SENT = "no email was sent: replay records alerts and their emails in its own database's outbox and never delivers them"


def _when(moment: datetime) -> str:
    return (
        moment.strftime("%Y-%m-%d")
        if (moment.hour, moment.minute) == (0, 0)
        else moment.strftime("%Y-%m-%d %H:%M")
    )


def _summary(result: ReplayResult) -> dict[str, Any]:
    return {
        "corpus": result.corpus,
        "items": result.items_total,
        "replayed": result.items_replayed,
        "undated_skipped": result.undated_skipped,
        "approximate_dates": result.approximate_dates,
        "feeds": result.feeds,
        "tick": duration_text(result.tick),
        "start": to_iso(result.start) if result.start else None,
        "end": to_iso(result.end) if result.end else None,
        "moments": result.moments,
        "score_points": result.score_points,
        "new_articles": result.new_articles,
        "matches": result.matches,
        "database": result.db_path,
        "emails_sent": 0,
        "outbox": dict(sorted(result.outbox.items())),
    }


def render_json(result: ReplayResult) -> str:
    document: dict[str, Any] = {
        "replay": _summary(result),
        "note": NOT_SENT,
        "history": [mark.as_dict() for mark in result.history],
        "alerts": [
            {key: alert[key] for key in ("at", "kind", "theatre", "level", "score", "reason")}
            for alert in result.alerts
        ],
    }
    if result.events is not None:
        document["events"] = [outcome.as_dict() for outcome in result.events]
        document["events_summary"] = lead_summary(result.events).as_dict()
    return json.dumps(document, ensure_ascii=False, indent=2)


def render_table(result: ReplayResult, *, lookback: timedelta, lag: timedelta) -> str:
    lines = [
        f"monitor replay: {result.corpus}: {result.items_total} items, {result.items_replayed} "
        f"replayed in {result.feeds} feeds (one per source)",
    ]
    if result.undated_skipped:
        lines.append(f"  {result.undated_skipped} undated item(s) skipped")
    if result.approximate_dates:
        lines.append(
            f"  {result.approximate_dates} item(s) dated only to a month or year, placed at its start"
        )
    if result.start is None or result.end is None:
        lines.append("nothing to replay (no dated items)")
        return "\n".join(lines)
    lines.append(
        f"simulated clock {_when(result.start)} to {_when(result.end)}, every item's time and a "
        f"{duration_text(result.tick)} tick ({result.moments} moments; quiet stretches skipped); "
        f"{result.new_articles} articles, {result.matches} matches, {result.score_points} score points"
    )
    lines.append(f"database: {result.db_path or 'temporary (deleted after the run)'}")
    lines += ["", "Score history (level changes and the peak of each episode):"]
    lines.append(
        output.render_rows(
            [
                {
                    "date": _when(m.at),
                    "theatre": m.theatre_id,
                    "score": m.score,
                    "level": m.level,
                    "note": m.note,
                }
                for m in result.history
            ],
            columns=["date", "theatre", "score", "level", "note"],
            empty="(every score stayed at 0)",
        )
    )
    lines += ["", f"Alerts ({len(result.alerts)}; {NOT_SENT}):"]
    lines.append(
        output.render_rows(
            [{**a, "date": _when(from_iso(str(a["at"])))} for a in result.alerts],
            columns=["date", "kind", "theatre", "level", "score", "reason"],
            empty="(no alerts)",
        )
    )
    if result.events is not None:
        lines += [
            "",
            f"Known events: first warning ({', '.join(WARNING_KINDS)}) of the theatre within "
            f"{duration_text(lookback)} before, else within {duration_text(lag)} after:",
        ]
        rows = []
        for outcome in result.events:
            if outcome.status == "ahead":
                verdict = f"{outcome.days} d ahead"
            elif outcome.status == "same day":
                verdict = "same day"
            elif outcome.status == "after":
                verdict = f"{outcome.days} d late"
            else:
                verdict = "no warning"
            rows.append(
                {
                    "date": outcome.event.day.isoformat(),
                    "theatre": outcome.event.theatre_id,
                    "warning": verdict,
                    "alert": f"{_when(outcome.alert_at)} {outcome.alert_kind}"
                    if outcome.alert_at
                    else "",
                    "event": outcome.event.description[:70],
                }
            )
        lines.append(
            output.render_rows(rows, columns=["date", "theatre", "warning", "alert", "event"])
        )
        lines += _lead_lines(lead_summary(result.events))
    return "\n".join(lines)


def _days_text(days: float) -> str:
    return f"{days:g} d"


def _lead_lines(summary: LeadSummary) -> list[str]:
    lines = [
        f"{summary.events} events: {summary.ahead} warned ahead, {summary.same_day} the same "
        f"day, {summary.late} late, {summary.unwarned} without warning"
    ]
    if summary.median_lead_days is not None:
        lines.append(
            f"median lead {_days_text(summary.median_lead_days)} over the {summary.ahead} "
            "warned ahead"
        )
    if summary.events:
        median = (
            "no warning"
            if summary.median_all_unwarned or summary.median_all_days is None
            else _days_text(summary.median_all_days)
        )
        lines.append(
            f"median over all {summary.events} events: {median} (ahead positive, same day 0, "
            "late negative; an event never warned ranks below every late one)"
        )
    return lines


# ---------------------------------------------------------------------------
# The command


def _duration_option(name: str, text: str) -> timedelta:
    try:
        span = parse_duration(text)
    except ValueError as exc:
        raise ReplayError(f"{name}: {exc}") from None
    if span <= timedelta(0):
        raise ReplayError(f"{name}: must be more than 0")
    return span


@click.command("replay")
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    hidden=True,
    help="Deprecated: the global option, `monitor --db NEW.db replay`.",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Known events (TSV: date, theatre, description): report each one's warning lead time.",
)
@click.option("--tick", default="1d", show_default=True, help="Score this often between items.")
@click.option(
    "--lookback", default="30d", show_default=True, help="How far before an event a warning counts."
)
@click.option(
    "--lag",
    default="7d",
    show_default=True,
    help="How far after an event a late warning is reported.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_obj
@handle_errors
def replay_command(
    obj: Context,
    corpus: str,
    db_path: str | None,
    events_path: str | None,
    tick: str,
    lookback: str,
    lag: str,
    fmt: str,
) -> None:
    """Replay a dated corpus through matching, scoring and alert rules; send nothing.

    \b
    The database is a temporary one, deleted after the run, unless the global
    option names a NEW file to keep it in: `monitor --db NEW.db replay CORPUS`.
    """
    if db_path is not None:
        click.echo(
            "monitor: note: `replay --db FILE` is deprecated; use `monitor --db FILE replay`",
            err=True,
        )
    tick_span = _duration_option("--tick", tick)
    lookback_span = _duration_option("--lookback", lookback)
    lag_span = _duration_option("--lag", lag)
    config = obj.config
    events = (
        load_events(events_path, list(config.rules.theatres)) if events_path is not None else None
    )
    items = load_corpus(corpus)
    target = db_path or obj.db_path
    name = Path(corpus).name
    dated = sum(1 for item in items if item.published_at is not None)
    with progress_bar(dated, label="replaying") as advance:
        if target is not None:
            result = replay_corpus(
                config,
                items,
                db_path=Path(target),
                corpus_name=name,
                tick=tick_span,
                progress=advance,
            )
            result.db_path = str(target)
        else:
            with tempfile.TemporaryDirectory(prefix="monitor-replay-") as folder:
                result = replay_corpus(
                    config,
                    items,
                    db_path=Path(folder) / "replay.db",
                    corpus_name=name,
                    tick=tick_span,
                    progress=advance,
                )
    if events is not None:
        result.events = event_outcomes(events, result.alerts, lookback=lookback_span, lag=lag_span)
    if fmt == "json":
        click.echo(render_json(result))
    else:
        click.echo(render_table(result, lookback=lookback_span, lag=lag_span))
