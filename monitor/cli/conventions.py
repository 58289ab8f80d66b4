"""What every query command asks the same way: the theatre and the time window.

One convention (issue 15): the theatre is the option `--theatre/-t` everywhere, optional
where a command lists all theatres by default (`history`, `alerts`, `articles`, `report`),
required where it describes one (`explain`, `chart`; their old positional THEATRE still
works, with a deprecation note on stderr). An id that is neither in the database nor in
the watch list is a usage error (exit 2) that lists the known ids. A window is
`--since`/`--until`, each parsed by `timeparse`; a start later than its end is a usage
error too.

Must not: import the database or configuration modules at import time (`--help` stays
light, issue 17).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from monitor.cli.timeparse import parse_time

if TYPE_CHECKING:
    from monitor import db
    from monitor.cli.common import Context

F = TypeVar("F", bound=Callable[..., Any])

TIME_HELP = "7d, 12h, 2024-09-14, or an ISO time (UTC)"


def theatre_option(help_text: str) -> Callable[[F], F]:
    """`--theatre/-t THEATRE`, the same on every command."""
    return click.option("--theatre", "-t", "theatre", metavar="THEATRE", help=help_text)


class _UnlistedArgument(click.Argument):
    """A positional argument kept for old command lines only: not in the usage line."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def old_positional_theatre(func: F) -> F:
    """The positional THEATRE that `explain` and `chart` took before `-t` (deprecated)."""
    return click.argument("old_theatre", required=False, cls=_UnlistedArgument)(func)


def chosen_theatre(option: str | None, positional: str | None, *, command: str) -> str:
    """The one theatre a command describes: `-t`, else the deprecated positional."""
    if positional is not None:
        if option is not None and option != positional:
            raise click.UsageError(f"two theatres given ({positional!r} and -t {option!r})")
        click.echo(
            f"monitor: note: `{command} THEATRE` is deprecated; use `{command} -t THEATRE`",
            err=True,
        )
        return positional
    if option is None:
        raise click.UsageError("Missing option '--theatre' / '-t' (a theatre id).")
    return option


def check_theatre(obj: Context, store: db.Store, theatre_id: str | None) -> None:
    """A usage error listing the known ids when `theatre_id` is neither in the database
    nor in the watch list. The common case (the database has it) costs one index look-up
    and reads no configuration."""
    if theatre_id is None:
        return
    from monitor import db

    if db.has_theatre(store, theatre_id):
        return
    known = set(db.theatre_ids(store))
    from monitor.config import load_theatre_ids
    from monitor.errors import MonitorError

    # a broken watch list: the database's ids are still worth listing
    with contextlib.suppress(MonitorError):
        known.update(load_theatre_ids(indicators_path=obj.indicators_path))
    if theatre_id in known:
        return
    names = ", ".join(sorted(known)) or "none yet"
    raise click.BadParameter(
        f"unknown theatre {theatre_id!r} (known: {names})", param_hint="'--theatre' / '-t'"
    )


def time_window(
    since: str | None, until: str | None, *, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """`--since` and `--until` as times; a usage error when the start is after the end."""
    start = None if since is None else parse_time(since, now=now)
    end = None if until is None else parse_time(until, now=now)
    if start is not None and end is not None and start > end:
        raise click.BadParameter(
            f"{since!r} is later than --until {until!r}", param_hint="'--since'"
        )
    return start, end
