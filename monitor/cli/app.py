"""The `monitor` command: a thin click layer over the library.

Each command parses its options, calls one library function and prints. Errors the
library raises on purpose (`MonitorError`) reach the user as one line on stderr with the
error's exit status (2 for configuration errors), never as a traceback.

Start-up is part of every command's latency (issue 17): this module and what it imports
at the top load no HTTP client, scheduler, feed parser, YAML or numpy. A command imports
the library it calls in its own body. The commands of the other modules
(`query_commands`, `ops_commands`, `data_commands`, and `replay`, which needs the whole
pipeline) are imported only when one of them runs: `--help` lists them by the help
recorded in LAZY_COMMANDS (tests/cli/test_cli_startup.py checks both).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from monitor import __version__
from monitor.cli import output
from monitor.cli.common import Context, format_option, handle_errors, time_option, utcnow
from monitor.cli.conventions import (
    TIME_HELP,
    check_theatre,
    chosen_theatre,
    old_positional_theatre,
    theatre_option,
    time_window,
)

# `monitor run --once` exits with this (EX_TEMPFAIL in sysexits.h, "status=75/TEMPFAIL" in
# systemctl) when every feed it polled failed, so the round stored nothing: a timer unit
# then shows the failure. 1 is any other error, 2 a configuration error.
EXIT_ALL_FEEDS_FAILED = 75


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Read-only queries whose code logs nothing (tests/cli/test_query_imports.py checks that
# they never import `logging`): without -v or MONITOR_LOG_LEVEL they configure no logging,
# which would only cost its import (issue 17).
LOGLESS_COMMANDS = frozenset({"history", "alerts", "explain", "articles", "feeds"})


def _setup_logging(verbose: int) -> None:
    import logging  # here, not at the top: `monitor --help` configures no logging

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    wanted = os.environ.get("MONITOR_LOG_LEVEL", "").strip()
    if wanted:
        if wanted.upper() not in LOG_LEVELS:
            click.echo(
                f"monitor: MONITOR_LOG_LEVEL: unknown level {wanted!r} "
                f"(use {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]})",
                err=True,
            )
            sys.exit(2)
        level = getattr(logging, wanted.upper())
    logging.basicConfig(
        level=level,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _print_version(ctx: click.Context, value: bool) -> None:
    """`monitor --version`: the version, and whether the matcher runs compiled."""
    if not value or ctx.resilient_parsing:
        return
    from monitor.detect.build_info import matcher_build

    click.echo(f"monitor, version {__version__}")
    click.echo(f"matcher: {matcher_build()}")
    ctx.exit()


class LazyGroup(click.Group):
    """A group whose commands in other modules are imported when they run, not when listed.

    `lazy_commands` maps a command's name to ("module:attribute", the first paragraph of
    its help). `monitor --help` lists such a command by a stand-in made from that text,
    which click shortens to the same line as the command's own help; running the command
    (or asking for its own `--help`) imports its module and nothing else's.
    """

    def __init__(self, *args: Any, lazy_commands: dict[str, tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            target, summary = self.lazy_commands[cmd_name]
            if self._listing:  # `monitor --help`: a stand-in with the recorded help
                return click.Command(cmd_name, help=summary)
            self.add_command(load_command(target), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


def load_command(target: str) -> click.Command:
    """The command at "module:attribute". (Through `__import__`, the import statement's
    own path, so that `python -X importtime` lists the module: `importlib.import_module`
    is not reported there.)"""
    module, attribute = target.split(":")
    command = getattr(__import__(module, fromlist=[attribute]), attribute)
    assert isinstance(command, click.Command), target
    return command


# The commands that live in their own modules: name -> ("module:attribute", the first
# paragraph of the command's help, on one line). Each module is imported only when one of
# its commands runs, so `monitor --help` and every command start without the others
# (issue 17); tests/cli/test_cli_startup.py keeps these texts equal to the commands' own.
LAZY_COMMANDS = {
    "articles": (
        "monitor.cli.query_commands:articles",
        "Stored articles, newest first, with the indicators detected in each (default: all, "
        "the newest --limit).",
    ),
    "backup": (
        "monitor.cli.data_commands:backup_command",
        "Copy the database to PATH (a new file) while the daemon may be writing, then check "
        "the copy with PRAGMA integrity_check.",
    ),
    "chart": (
        "monitor.cli.query_commands:chart",
        "Draw a theatre's score over time with level bands, alerts and top stories.",
    ),
    "config": (
        "monitor.cli.ops_commands:config_group",
        "The configuration in force (`monitor check-config` validates it).",
    ),
    "feeds": (
        "monitor.cli.ops_commands:feeds",
        "Each feed's name, URL and state: status, last success, last error, failures, next "
        "check. Subcommands change the watch list: add, remove, import, export.",
    ),
    "init": (
        "monitor.cli.ops_commands:init",
        "Write a commented monitor.toml and a copy of the built-in indicators.yaml into "
        "FOLDER (default: here). Never overwrites: exits 1 if either file exists.",
    ),
    "poll-now": (
        "monitor.cli.ops_commands:poll_now",
        "Make FEED (id, URL or name), or --all feeds, due now: a running daemon polls them at "
        "its next look for due feeds (schedule.poll_tick_seconds), else the next `run --once`. "
        "Needs write access to the database (run it as the daemon's user).",
    ),
    "prune": (
        "monitor.cli.data_commands:prune_command",
        "Apply the [retention] settings now: downsample old score points, drop old text, "
        "matches that never counted, sent email bodies and old job log rows.",
    ),
    "replay": (
        "monitor.cli.replay_command:replay_command",
        "Replay a dated corpus through matching, scoring and alert rules; send nothing.",
    ),
    "status": (
        "monitor.cli.query_commands:status",
        "Is the service alive and well? Prints a report; the exit status says it.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _print_version(ctx, value),
    help="Show the version and which matcher this install runs, then exit.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Deployment settings (monitor.toml). Default: $MONITOR_CONFIG, else built-in defaults.",
)
@click.option(
    "--indicators",
    "indicators_path",
    type=click.Path(dir_okay=False),
    help="What to watch. Default: $MONITOR_INDICATORS, ./indicators.yaml, else the built-in list.",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    help="The SQLite database. Default: settings, $MONITOR_DB, $STATE_DIRECTORY/monitor.db or ./monitor.db.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    indicators_path: str | None,
    db_path: str | None,
    verbose: int,
) -> None:
    """monitor: escalation-risk early warning from news feeds."""
    if (
        verbose
        or os.environ.get("MONITOR_LOG_LEVEL", "").strip()
        or ctx.invoked_subcommand not in LOGLESS_COMMANDS
    ):
        _setup_logging(verbose)
    ctx.obj = Context(config_path, indicators_path, db_path)


def main() -> None:
    cli(prog_name="monitor")


# ---------------------------------------------------------------------------
# Running


@cli.command()
@click.option(
    "--once",
    is_flag=True,
    help="Run one full cycle (poll, score, send) and exit: 0 done, "
    f"{EXIT_ALL_FEEDS_FAILED} every feed polled failed (nothing stored), 1 error, "
    "2 configuration error.",
)
@click.pass_obj
@handle_errors
def run(obj: Context, once: bool) -> None:
    """Run the daemon (or one cycle with --once)."""
    import asyncio
    import logging

    from monitor.service.daemon import Daemon, run_once

    config = obj.config  # fails fast, before anything runs, on a bad configuration
    if once:
        if not logging.getLogger().isEnabledFor(logging.INFO):
            logging.getLogger().setLevel(logging.INFO)
        summary = asyncio.run(run_once(config))
        poll, delivery = summary.poll, summary.delivery
        click.echo(
            f"polled {poll.feeds} feeds ({poll.ok} new content, {poll.not_modified} unchanged, "
            f"{poll.errors} failed); {poll.new_articles} new articles, {poll.events} signs; "
            f"sent {delivery.sent}, retrying {delivery.retried}, dead {delivery.dead}"
        )
        for name, routed in summary.channels.items():
            click.echo(
                f"  route {name}: sent {routed.sent}, retrying {routed.retried}, dead {routed.dead}"
            )
        for point in summary.score.points:
            click.echo(f"  {point.theatre_id}: {point.index:.0f} ({point.level})")
        if poll.feeds and poll.errors == poll.feeds:
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(poll.errors_by_kind.items()))
            click.echo(
                f"monitor: every feed polled failed ({poll.errors} of {poll.feeds}; {kinds}); "
                f"nothing was stored (exit {EXIT_ALL_FEEDS_FAILED}; see `monitor feeds`)",
                err=True,
            )
            sys.exit(EXIT_ALL_FEEDS_FAILED)
        return
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)
    sys.exit(Daemon(config, reload_config=obj.load).run())


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="Where the demo writes its database and the emails it receives.",
)
@click.pass_obj
@handle_errors
def demo(obj: Context, out_dir: str) -> None:
    """Run the whole pipeline offline on bundled sample feeds and a simulated clock."""
    from pathlib import Path

    from monitor.lab.demo import run_demo

    run_demo(Path(out_dir), db_path=Path(obj.db_path) if obj.db_path else None, echo=click.echo)


@cli.command("check-config")
@click.pass_obj
@handle_errors
def check_config(obj: Context) -> None:
    """Validate the configuration and print a summary (and warn when alerts would go nowhere)."""
    from monitor.service.status import config_delivery_problem

    config = obj.config
    settings = config.settings
    click.echo(f"indicators: {config.indicators_path}")
    click.echo(f"settings:   {config.settings_path or '(built-in defaults and environment)'}")
    click.echo(f"database:   {settings.db_path}")
    smtp = settings.smtp
    recipients = ", ".join(smtp.recipients) or "(none configured)"
    trust = f", CAs from {smtp.ca_file}" if smtp.ca_file else ""
    click.echo(f"smtp:       {smtp.host}:{smtp.port} ({smtp.security}{trust}) → {recipients}")
    if settings.routes:
        from monitor.deliver.channels.settings import describe_route

        click.echo(f"routes ({len(settings.routes)}):")
        for route in settings.routes:
            click.echo(f"  {describe_route(route)}")
    from monitor.config import RELOAD_NOTE

    click.echo(f"reload:     {RELOAD_NOTE}")
    click.echo(f"feeds ({len(config.feeds)}):")
    for feed in config.feeds:
        click.echo(f"  {feed.id:<18} {feed.url}")
    click.echo(f"theatres ({len(config.rules.theatres)}):")
    for theatre in config.rules.theatres.values():
        click.echo(f"  {theatre.id:<18} {theatre.name} ({theatre.kind})")
    click.echo(f"indicators ({len(config.rules.indicators)}):")
    for indicator in config.rules.indicators.values():
        flag = " critical" if indicator.severity == "critical" else ""
        click.echo(f"  {indicator.id:<28} weight {indicator.weight:+g}{flag}")
    problem = config_delivery_problem(config)
    if problem:
        # Valid (the daemon runs and stores alerts), but nobody would hear of them.
        click.echo(f"WARNING: {problem}", err=True)
    click.echo("configuration OK" + (", with 1 warning (on stderr)" if problem else ""))


# ---------------------------------------------------------------------------
# Querying


@cli.command()
@theatre_option("One theatre (default: all).")
@click.option("--since", default="30d", show_default=True, help=f"From. {TIME_HELP}.")
@click.option("--until", default=None, help="To (default: now).")
@click.option(
    "--every",
    type=click.Choice(["1h", "1d", "1w"]),
    help="One row per period: its peak score, the level at the peak and at the period's end.",
)
@format_option
@click.pass_obj
@handle_errors
def history(
    obj: Context, theatre: str | None, since: str, until: str | None, every: str | None, fmt: str
) -> None:
    """A theatre's score history (default: the last 30 days, every theatre)."""
    from monitor.cli.query import history_report

    now = utcnow()
    start, end = time_window(since, until, now=now)
    assert start is not None
    with obj.open_readonly() as store:
        check_theatre(obj, store, theatre)
        click.echo(
            history_report(
                store, theatre_id=theatre, since=start, until=end or now, every=every, fmt=fmt
            )
        )


@cli.command()
@theatre_option("One theatre (default: all).")
@click.option(
    "--since", default=None, help=f"Created at or after (default: no limit). {TIME_HELP}."
)
@click.option("--until", default=None, help="Created at or before (default: no limit).")
@click.option(
    "--status", type=click.Choice(["pending", "sent", "dead", "digest"]), help="Delivery status."
)
@format_option
@click.pass_obj
@handle_errors
def alerts(
    obj: Context,
    theatre: str | None,
    since: str | None,
    until: str | None,
    status: str | None,
    fmt: str,
) -> None:
    """Alerts and their delivery, newest first (default: all of them, every theatre)."""
    from monitor import db

    start, end = time_window(since, until, now=utcnow())
    with obj.open_readonly() as store:
        check_theatre(obj, store, theatre)
        rows = db.alert_rows(store, theatre_id=theatre, since=start, until=end, status=status)
        # people read the table: indicators by name, not by id (the ids from the database:
        # compiling the watch list's patterns would cost more than the query)
        ids = db.indicator_ids(store) if fmt == "table" else ()
    columns = [
        "created_at",
        "kind",
        "theatre_id",
        "level",
        "score",
        "delivery",
        "attempts",
        "reason",
    ]
    from monitor.db.channels import deliveries_by_key

    with obj.open_readonly() as store:
        routed = deliveries_by_key(store, [row["dedup_key"] for row in rows])
    if routed:
        columns.insert(columns.index("attempts") + 1, "channels")
    for row in rows:
        found = routed.get(row["dedup_key"], [])
        if fmt == "table":
            row["channels"] = ", ".join(
                f"{d['route']}:{d['status']}" + (f"×{d['attempts']}" if d["attempts"] > 1 else "")
                for d in found
            )
        else:
            row["channels"] = found
    if fmt != "table":
        columns += ["sent_at", "last_error", "subject", "dedup_key"]
    else:
        from monitor.deliver.content import name_indicators

        named: dict[str, str] = {}  # reasons repeat ("entered HIGH"): each named once
        for row in rows:
            reason = row["reason"] or ""
            if reason not in named:
                named[reason] = name_indicators(reason, ids)
            row["reason"] = named[reason]
    click.echo(output.render_rows(rows, columns=columns, fmt=fmt, empty="(no alerts)"))


@cli.command()
@theatre_option("The theatre (required).")
@old_positional_theatre
@click.option(
    "--at",
    "at_text",
    default=None,
    help="The score point at or before this time (default: the latest).",
)
@format_option
@click.pass_obj
@handle_errors
def explain(
    obj: Context, theatre: str | None, old_theatre: str | None, at_text: str | None, fmt: str
) -> None:
    """Why a theatre has its score: the contributing stories, largest first."""
    from monitor.cli.query import explain_report

    theatre_id = chosen_theatre(theatre, old_theatre, command="explain")
    at = time_option(at_text)
    with obj.open_readonly() as store:
        check_theatre(obj, store, theatre_id)
        click.echo(explain_report(store, theatre_id=theatre_id, at=at, fmt=fmt))


@cli.command("eval")
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--show-errors", "show_errors", is_flag=True, help="List each miss and false alarm.")
@click.option(
    "--verbose",
    "old_verbose",
    is_flag=True,
    hidden=True,
    help="Deprecated: --show-errors (the global -v is more log output).",
)
@click.option(
    "--fail-under",
    "fail_under",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Exit 1 when macro F1, overall or in any language, is below this (e.g. 0.90).",
)
@click.pass_obj
@handle_errors
def eval_command(
    obj: Context,
    corpus: str,
    fmt: str,
    show_errors: bool,
    old_verbose: bool,
    fail_under: float | None,
) -> None:
    """Measure detection against a labelled corpus (precision, recall, F1).

    Items whose gold theatre is not a configured one are reported apart, not as misses.
    """
    from monitor.cli.progress import progress_bar
    from monitor.lab.corpus import load_corpus
    from monitor.lab.evaluation import evaluate, fail_under_message, render_report

    if old_verbose:
        click.echo(
            "monitor: note: `eval --verbose` is deprecated; use `eval --show-errors`", err=True
        )
        show_errors = True
    items = load_corpus(corpus)
    rules = obj.config.rules
    with progress_bar(len(items), label="matching") as advance:
        report = evaluate(items, rules, progress=advance)
    click.echo(render_report(report, fmt=fmt, verbose=show_errors))
    failed = None if fail_under is None else fail_under_message(report, fail_under)
    if failed is not None:
        click.echo(failed, err=True)
        sys.exit(1)


@cli.command("test-email")
@click.pass_obj
@handle_errors
def test_email(obj: Context) -> None:
    """Send a test message through the configured SMTP server and say what happened."""
    from monitor.pipeline import send_test_email

    click.echo(send_test_email(obj.config, now=utcnow()))


@cli.command("test-notify")
@click.argument("route", required=False)
@click.pass_obj
@handle_errors
def test_notify(obj: Context, route: str | None) -> None:
    """Send a test message through each route (or ROUTE) now, bypassing the outbox; exit 1
    if any failed."""
    from monitor.deliver.channels.testing import send_test_messages

    lines, failed = send_test_messages(obj.config.settings.routes, route, now=utcnow())
    for line in lines:
        click.echo(line)
    if failed:
        sys.exit(1)


@cli.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The folder to write the site into (replaced whole, atomically).",
)
@click.option(
    "--at",
    "at_text",
    default=None,
    help="The moment the report describes (default: the newest score point).",
)
@theatre_option("Only this theatre (default: every theatre of the watch list).")
@click.pass_obj
@handle_errors
def report(obj: Context, out_dir: str, at_text: str | None, theatre: str | None) -> None:
    """Write a static risk report (HTML, no JavaScript) of the database into a folder.

    \b
    Open OUT/index.html in a browser, or serve the folder with any web server.
    Charts need matplotlib (pip install 'monitor[chart]'); without it, tables only.
    """
    from monitor.report.build import build_report, report_time

    at = time_option(at_text)
    config = obj.config
    with obj.open_readonly() as store:
        if theatre is not None and theatre not in config.rules.theatres:
            check_theatre(obj, store, theatre)  # the database's ids, listed if unknown there too
            raise click.BadParameter(
                f"theatre {theatre!r} is not in the watch list "
                f"(the report's theatres: {', '.join(config.rules.theatres)})",
                param_hint="'--theatre' / '-t'",
            )
        now = at or report_time(store, utcnow())
        from pathlib import Path

        result = build_report(store, config, Path(out_dir), now=now, theatre_id=theatre)
    note = "" if result.charts_available else " (no charts: pip install 'monitor[chart]')"
    click.echo(f"wrote {result.pages} pages and {result.charts} charts{note}")
    click.echo(str(result.index.resolve()))


@cli.command()
@click.argument("database", type=click.Path(exists=True, dir_okay=False))
@click.argument("datasette_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def datasette(database: str, datasette_args: tuple[str, ...]) -> None:
    """Serve DATABASE with Datasette and monitor's metadata (titles, descriptions, units,
    canned queries). Needs pip install 'monitor[datasette]'. Extra arguments go to
    `datasette serve` (e.g. --port 8002)."""
    from pathlib import Path

    from monitor.report.datasette import serve

    serve(Path(database), list(datasette_args))


if __name__ == "__main__":  # pragma: no cover
    main()
