"""The query commands `monitor articles`, `monitor chart` and `monitor status`.

A thin click layer like `monitor.cli.app` (which lists these in `LAZY_COMMANDS` and
imports this module when one of them runs): parse the options, call one library function
(`query`, `chart`, `status`), print. Shared pieces come from `monitor.cli.common`. Every
command opens the database read-only and never writes.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from monitor.cli import output
from monitor.cli.common import Context, handle_errors, utcnow
from monitor.cli.conventions import (
    TIME_HELP,
    check_theatre,
    chosen_theatre,
    old_positional_theatre,
    theatre_option,
    time_window,
)


@click.command()
@theatre_option("Only articles with a detection for this theatre.")
@click.option("--indicator", "-i", help="Only articles with this indicator detected.")
@click.option(
    "--since", default=None, help=f"Published at or after (default: no limit). {TIME_HELP}."
)
@click.option("--until", default=None, help="Published at or before (default: no limit).")
@click.option(
    "--search",
    "-s",
    help="Words that must all occur in the title or summary, in any inflected form, "
    "stemmed as the matcher stems English and Russian (clash finds clashes, граница "
    "finds границе); end a word with * for a plain prefix (границ*).",
)
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(output.FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_obj
@handle_errors
def articles(
    obj: Context,
    theatre: str | None,
    indicator: str | None,
    since: str | None,
    until: str | None,
    search: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Stored articles, newest first, with the indicators detected in each (default: all,
    the newest --limit).

    \b
    Examples:
      monitor articles --search "Batken clash" --since 2022-01-01
      monitor articles --search граница --since 30d
      monitor articles -t kg-tj --indicator border_clash --format csv
    """
    from monitor.cli.query import articles_report

    start, end = time_window(since, until, now=utcnow())
    with obj.open_readonly() as store:
        check_theatre(obj, store, theatre)
        click.echo(
            articles_report(
                store,
                theatre_id=theatre,
                indicator_id=indicator,
                since=start,
                until=end,
                search=search,
                limit=limit,
                fmt=fmt,
            )
        )


@click.command()
@theatre_option("The theatre (required).")
@old_positional_theatre
@click.option("--since", default="90d", show_default=True, help=f"From. {TIME_HELP}.")
@click.option("--until", default=None, help="To (default: now).")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The picture to write: FILE.png or FILE.svg.",
)
@click.option(
    "--top",
    type=click.IntRange(0, 10),
    default=5,
    show_default=True,
    help="How many top stories to mark.",
)
@click.pass_obj
@handle_errors
def chart(
    obj: Context,
    theatre: str | None,
    old_theatre: str | None,
    since: str,
    until: str | None,
    out_path: str,
    top: int,
) -> None:
    """Draw a theatre's score over time with level bands, alerts and top stories.

    Needs matplotlib: pip install 'monitor[chart]'.
    """
    from monitor.errors import MonitorError
    from monitor.report import plot as charts

    theatre_id = chosen_theatre(theatre, old_theatre, command="chart")
    from pathlib import Path

    out = Path(out_path)
    try:
        charts.check_output_path(out)
    except MonitorError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    charts.require_matplotlib()
    now = utcnow()
    start, until_time = time_window(since, until, now=now)
    end = until_time or now
    assert start is not None
    if start >= end:
        raise click.BadParameter(
            f"{since!r} is not before the end of the chart", param_hint="--since"
        )
    levels = obj.config.scoring.levels
    with obj.open_readonly() as store:
        check_theatre(obj, store, theatre_id)
        data = charts.chart_data(
            store, theatre_id=theatre_id, since=start, until=end, top_stories=top
        )
    charts.render_chart(data, out, levels=levels)
    click.echo(
        f"wrote {out} ({len(data.points)} score points, {len(data.alerts)} alerts, "
        f"{len(data.stories)} top stories)"
    )


STATUS_HELP = """Is the service alive and well? Prints a report; the exit status says it.

\b
  0 ok        none of the below
  1 degraded  no recipient configured (smtp.recipients empty and no maildir:
              alerts are stored but never sent); every polled feed, or more
              than half, failing (each failed every poll since its last
              success) or gone; no new article stored for longer than
              health.quiet_period_hours (24 h by default, 0: off) while feeds
              answer; a configured feed has failed for longer than
              alerts.feed_down_after_hours (24 h by default) or is gone (410);
              a message died in the outbox in the last 7 days; a pending
              message is overdue by more than 1 h (held messages, e.g. for
              quiet hours, count from their not-before time); the last run of
              a job recorded an error
  2 down      the database cannot be read; no cycle (a poll or score round of
              the daemon, or a `run --once` round) ended within --max-age
              (default 3 × schedule.score_tick_seconds, 45 min); or the daemon
              is not running although the last cycle was the daemon's (with
              the timer there is no daemon between rounds, which is normal)

\b
"Running" means a process holds the instance lock <db>.lock; it is looked up
(in /proc/locks, and by the pid written in the file), never taken.
"""


@click.command(help=STATUS_HELP)
@click.option(
    "--max-age",
    default=None,
    help="Down when no cycle ended within this long (e.g. 45m, 2h). "
    "Default: 3 × schedule.score_tick_seconds.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_obj
@handle_errors
def status(obj: Context, max_age: str | None, fmt: str) -> None:
    from monitor.cli.timeparse import parse_duration
    from monitor.errors import DatabaseError
    from monitor.service.status import (
        StatusPolicy,
        assess,
        daemon_state,
        delivery_problem,
        render_status,
    )

    # the thresholds only: compiling the watch list's patterns would cost more than the
    # whole report (issue 17); `check-config` validates the rest
    settings, alerts = obj.settings, obj.alert_settings()
    quiet_hours = settings.health.quiet_period_hours
    policy = StatusPolicy(
        max_cycle_age=parse_duration(max_age)
        if max_age
        else timedelta(seconds=3 * settings.schedule.score_tick_seconds),
        feed_failing_after=timedelta(seconds=alerts.feed_down_after_seconds),
        quiet_period=timedelta(hours=quiet_hours) if quiet_hours else None,
    )
    problems = [p for p in (delivery_problem(settings),) if p]
    db_path = obj.db_path_for_reading()
    now = utcnow()
    daemon = daemon_state(db_path)
    try:
        store = obj.open_readonly()
    except DatabaseError as exc:
        report = assess(
            None, database=str(db_path), daemon=daemon, now=now, policy=policy, open_error=str(exc)
        )
    else:
        with store:
            report = assess(
                store,
                database=str(db_path),
                daemon=daemon,
                now=now,
                policy=policy,
                config_problems=problems,
            )
    click.echo(render_status(report, fmt=fmt))
    sys.exit(report.exit_status)
