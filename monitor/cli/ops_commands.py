"""`monitor init`, `monitor config dump`, `monitor feeds …` and `monitor poll-now`: starting
and shaping a deployment.

A thin click layer like `monitor.cli.app` (which lists these in `LAZY_COMMANDS` and
imports this module when one of them runs): parse, call `monitor.ops` (files, feed list,
OPML, dump) or the database, print. Only `feeds` with no subcommand and `config dump`
read; `init`, `feeds add/remove/import` write files and `poll-now` writes the database. Imports stay light for `monitor --help`
and for `monitor feeds` (a query command, tests/cli/test_cli_startup.py): the library is
imported in the command bodies.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from monitor.cli.common import Context, format_option, handle_errors, utcnow

if TYPE_CHECKING:
    from pathlib import Path

# What the output of every feed-list edit says: the daemon reloads its watch list on
# SIGHUP (config.RELOAD_NOTE); `run --once` syncs it at its start.
APPLY_NOTE = (
    "a running daemon applies it on reload: `systemctl reload monitor` (SIGHUP); "
    "`monitor run --once` uses it at once"
)


# ---------------------------------------------------------------------------
# init


@click.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
@handle_errors
def init(folder: str) -> None:
    """Write a commented monitor.toml and a copy of the built-in indicators.yaml into
    FOLDER (default: here). Never overwrites: exits 1 if either file exists."""
    from pathlib import Path

    from monitor.ops.files import init_deployment

    result = init_deployment(Path(folder))
    click.echo(f"wrote {result.settings}: where state lives and how to send (all defaults)")
    click.echo(f"wrote {result.indicators}: what to watch (feeds, theatres, indicators)")
    click.echo(
        f"next: edit both, then run `monitor --config {result.settings} "
        f"--indicators {result.indicators} check-config`"
    )


# ---------------------------------------------------------------------------
# config


@click.group("config")
def config_group() -> None:
    """The configuration in force (`monitor check-config` validates it)."""


@config_group.command("dump")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["toml", "json"]),
    default="toml",
    show_default=True,
    help="toml reads back as a monitor.toml.",
)
@click.pass_obj
@handle_errors
def config_dump(obj: Context, fmt: str) -> None:
    """Print the deployment settings in force, after monitor.toml and the MONITOR_*
    environment, with secrets masked."""
    from monitor.config import load_deployment, resolve_indicators_path
    from monitor.ops.dump import dump_json, dump_toml

    settings, settings_file = load_deployment(settings_path=obj.config_path, db_path=obj.db_path)
    watch_list = resolve_indicators_path(obj.indicators_path, os.environ)
    variables = sorted(
        name for name in os.environ if name.startswith("MONITOR_") or name in _SYSTEMD_VARS
    )
    sources = {
        "settings file": settings_file or "(none: built-in defaults)",
        "environment": ", ".join(variables) or "(no MONITOR_* setting)",
        "watch list": str(watch_list) if watch_list else "indicators.yaml (built-in)",
    }
    if obj.db_path:
        sources["database"] = "--db option"
    render = dump_json if fmt == "json" else dump_toml
    click.echo(render(settings, sources=sources), nl=fmt == "json")


_SYSTEMD_VARS = ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")  # they change settings too


# ---------------------------------------------------------------------------
# feeds


@click.group(invoke_without_command=True)
@format_option
@click.pass_context
@handle_errors
def feeds(ctx: click.Context, fmt: str) -> None:
    """Each feed's name, URL and state: status, last success, last error, failures, next
    check. Subcommands change the watch list: add, remove, import, export."""
    if ctx.invoked_subcommand is not None:
        return
    from monitor.cli.query import feeds_report

    obj: Context = ctx.obj
    with obj.open_readonly() as store:
        click.echo(feeds_report(store, fmt=fmt))


def _editable_watch_list(obj: Context) -> Path:
    from monitor.config import resolve_indicators_path
    from monitor.ops.feedlist import FeedListError

    path = resolve_indicators_path(obj.indicators_path, os.environ)
    if path is None:
        raise FeedListError(
            "no watch list file to edit: the built-in indicators.yaml is in use; "
            "`monitor init DIR` writes a copy to edit, then give it with --indicators, "
            "$MONITOR_INDICATORS, or run from DIR"
        )
    return path


def _allowed_networks(obj: Context) -> tuple[str, ...]:
    return obj.settings.http.allow_private_networks


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="The outlet, as emails show it (default: the id).")
@click.option("--id", "feed_id", help="Its key in the database (default: from the name or host).")
@click.option("--language", help="en or ru: for items whose language is unclear.")
@click.option("--interval", type=float, help="Minutes between polls (default: the schedule's).")
@click.pass_obj
@handle_errors
def feeds_add(
    obj: Context,
    url: str,
    name: str | None,
    feed_id: str | None,
    language: str | None,
    interval: float | None,
) -> None:
    """Add the feed at URL to the watch list, checked as loading the configuration checks
    it; every other line of the file stays as it was."""
    from monitor.ops.feedlist import (
        FeedListError,
        FeedRequest,
        add_feeds,
        read_text_exact,
        write_text_atomically,
    )

    path = _editable_watch_list(obj)
    text = read_text_exact(path)
    request = FeedRequest(
        url=url, name=name, feed_id=feed_id, language=language, interval_minutes=interval
    )
    edit = add_feeds(
        text, [request], source=str(path), allow_private_networks=_allowed_networks(obj)
    )
    if edit.refused:
        raise FeedListError(f"feed not added: {edit.refused[0].reason}")
    write_text_atomically(path, edit.text, expected_old=text)
    [feed] = edit.added
    click.echo(f"added feed {feed.id!r} ({feed.name}, {feed.url}) to {path}")
    click.echo(APPLY_NOTE)


@feeds.command("remove")
@click.argument("feed")
@click.pass_obj
@handle_errors
def feeds_remove(obj: Context, feed: str) -> None:
    """Remove FEED (its id, URL or name) from the watch list. Its articles and history stay
    in the database; the daemon stops polling it after a reload."""
    from monitor.ops.feedlist import read_text_exact, remove_feed, write_text_atomically

    path = _editable_watch_list(obj)
    text = read_text_exact(path)
    edit = remove_feed(text, feed, source=str(path))
    write_text_atomically(path, edit.text, expected_old=text)
    [gone] = edit.removed
    click.echo(f"removed feed {gone.id!r} ({gone.url}) from {path}; its stored history stays")
    click.echo(APPLY_NOTE)


@feeds.command("import")
@click.argument("opml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Say what would be added; change nothing.")
@click.pass_obj
@handle_errors
def feeds_import(obj: Context, opml_file: str, dry_run: bool) -> None:
    """Add the feeds of an OPML file (a feed reader's export) to the watch list.

    Feeds already watched, repeated, or with an address that is refused are skipped, each
    with a reason on stderr; the others are added in one edit."""
    from pathlib import Path

    from monitor.ops.feedlist import add_feeds, read_text_exact, write_text_atomically
    from monitor.ops.opml import read_opml

    outlines = read_opml(Path(opml_file))
    path = _editable_watch_list(obj)
    text = read_text_exact(path)
    edit = add_feeds(
        text,
        [outline.request for outline in outlines],
        source=str(path),
        allow_private_networks=_allowed_networks(obj),
    )
    lines = {id(o.request): o.line for o in outlines}
    for refusal in edit.refused:
        click.echo(f"skipped (line {lines[id(refusal.request)]}): {refusal.reason}", err=True)
    verb = "would add" if dry_run else "added"
    for feed in edit.added:
        click.echo(f"{verb} {feed.id!r} ({feed.name}, {feed.url})")
    if edit.added and not dry_run:
        write_text_atomically(path, edit.text, expected_old=text)
    click.echo(
        f"{opml_file}: {len(outlines)} feeds; {verb} {len(edit.added)} to {path}, "
        f"skipped {len(edit.refused)}" + (" (dry run: nothing written)" if dry_run else "")
    )
    if edit.added and not dry_run:
        click.echo(APPLY_NOTE)


@feeds.command("export")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (default: standard output).",
)
@click.pass_obj
@handle_errors
def feeds_export(obj: Context, out_file: str | None) -> None:
    """Write the watch list's feeds as OPML 2.0, for a feed reader or another monitor."""
    from monitor.ops.opml import write_opml

    config = obj.config
    document = write_opml(
        config.feeds, title=f"monitor feeds ({config.indicators_path})", now=utcnow()
    )
    if out_file is None:
        click.echo(document, nl=False)
        return
    try:
        from pathlib import Path

        Path(out_file).write_text(document, encoding="utf-8")
    except OSError as exc:
        from monitor.errors import MonitorError

        raise MonitorError(f"{out_file}: cannot write: {exc.strerror or exc}") from None
    click.echo(f"wrote {len(config.feeds)} feeds to {out_file}")


# ---------------------------------------------------------------------------
# poll-now


@click.command("poll-now")
@click.argument("feed_keys", nargs=-1, metavar="[FEED]...")
@click.option("--all", "every", is_flag=True, help="Every configured feed.")
@click.pass_obj
@handle_errors
def poll_now(obj: Context, feed_keys: tuple[str, ...], every: bool) -> None:
    """Make FEED (id, URL or name), or --all feeds, due now: a running daemon polls them at
    its next look for due feeds (schedule.poll_tick_seconds), else the next `run --once`.
    Needs write access to the database (run it as the daemon's user)."""
    import sqlite3

    from monitor import db
    from monitor.errors import DatabaseError
    from monitor.models import Feed
    from monitor.ops.feedlist import FeedListError, find_feed

    if every == bool(feed_keys):
        raise click.UsageError("give one or more feeds, or --all (not both)")
    path = obj.db_path_for_reading()
    if not path.exists():
        raise DatabaseError(f"{path}: no database here yet (run `monitor run` first)")
    now = utcnow()
    with db.Store.open(path, migrate=False) as store:
        store.check_schema()
        rows = [row for row in store.feeds_report() if row["configured"]]
        known = [Feed(id=r["id"], url=r["url"], name=r["name"] or r["id"]) for r in rows]
        chosen = known if every else [find_feed(known, key) for key in feed_keys]
        disabled = {r["id"] for r in rows if r["disabled"]}
        made_due = []
        try:
            for feed in chosen:
                if feed.id in disabled:
                    click.echo(
                        f"{feed.id}: disabled after 410 Gone; not made due (fix its URL)",
                        err=True,
                    )
                    continue
                store.make_due(feed.id, now=now)
                made_due.append(feed.id)
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"{path}: cannot write ({exc}); poll-now needs write access to the database: "
                "run it as the daemon's user (sudo -u monitor monitor poll-now …)"
            ) from None
    if not made_due:
        if not known:
            raise FeedListError(f"{path}: no configured feeds in this database yet")
        sys.exit(1)
    tick = obj.settings.schedule.poll_tick_seconds
    click.echo(
        f"due now: {', '.join(made_due)}; a running daemon polls "
        f"{'it' if len(made_due) == 1 else 'them'} within {tick} s, "
        "else the next `monitor run --once`"
    )
