"""Which databases are a real deployment's, so that the lab tools keep out of them.

`monitor demo` and `monitor replay` write sample or replayed articles, scores and alerts
(with their emails, in the outbox). In a deployment's database those would be mixed with
the real history, and a daemon would send the emails. So both refuse a database that

- a daemon (or `run --once`) holds right now: its instance lock (`instance_lock`); the
  tool then keeps the lock for its whole run, so no daemon can start on its file either;
- is a deployment's: `monitor run` and `run --once` write the `meta` row
  `deployment` (when the first round ran) before anything else; a database from before
  that row existed is recognised by its job log (`runs`, which only they write);
- holds feeds that are not the tool's own (a watch list was polled into it);
- is some other SQLite file (no monitor schema) or not SQLite at all.

There is no "yes, really" switch on purpose: the tools never need a deployment's file
(`monitor backup` makes a copy to play with).

Owns: the marker and the checks. Must not: write anything into a file it refuses.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from monitor.errors import AlreadyRunningError, MonitorError
from monitor.models import to_iso

DEPLOYMENT_META_KEY = "deployment"


class ScratchDatabaseError(MonitorError):
    """A lab tool (demo, replay) was pointed at a database that is not its own."""

    exit_code = 2


def mark_deployment(store: object, *, now: datetime) -> None:
    """Record once (the first round's time) that this database is a deployment's.

    `store` is a `monitor.db.Store` (typed loosely so this module imports no database code).
    """
    conn: sqlite3.Connection = store.conn  # type: ignore[attr-defined]
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
        (DEPLOYMENT_META_KEY, json.dumps({"first_run_at": to_iso(now)})),
    )


def deployment_reason(path: Path, *, own_feed_ids: Collection[str] | None) -> str | None:
    """Why the database at `path` is not a scratch database a lab tool may write into,
    or None when it may (missing, empty, or holding only the tool's own feeds).
    `own_feed_ids=None` skips the feed check (the tool refuses other files on its own)."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return None
    if not path.is_file():
        return "it is not a file"
    from monitor import db  # the read-only opener (it copes with a stopped daemon's file)

    try:
        conn = db.connect(path, readonly=True)
    except MonitorError as exc:
        return f"it cannot be read ({str(exc).split(': ', 1)[-1]})"
    try:
        return _reason(conn, own_feed_ids)
    except sqlite3.DatabaseError as exc:
        return f"it is not a monitor database ({exc})"
    finally:
        conn.close()


def _reason(conn: sqlite3.Connection, own_feed_ids: Collection[str] | None) -> str | None:
    tables = {
        str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if "schema_migrations" not in tables:
        return "it is not a monitor database" if tables else None
    if "meta" in tables:
        row = conn.execute(
            "SELECT value FROM meta WHERE key = ?", (DEPLOYMENT_META_KEY,)
        ).fetchone()
        if row is not None:
            since = _first_run(row[0])
            return "it is a deployment's database (`monitor run` has run on it" + (
                f" since {since})" if since else ")"
            )
    if "runs" in tables:
        rounds = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
        if rounds:
            return f"it is a deployment's database (its job log holds {rounds} rounds of `monitor run`)"
    if "feeds" in tables and own_feed_ids is not None:
        foreign = sorted(
            str(row[0])
            for row in conn.execute("SELECT id FROM feeds")
            if str(row[0]) not in own_feed_ids
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (
                f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            )
            return f"it holds feeds of a watch list ({shown})"
    return None


def _first_run(value: str) -> str | None:
    try:
        first = json.loads(value).get("first_run_at")
    except (ValueError, AttributeError):
        return None
    return str(first) if first else None


@contextmanager
def scratch_database(
    path: Path, *, tool: str, own_feed_ids: Collection[str] | None, hint: str
) -> Iterator[None]:
    """Hold `path`'s instance lock while `tool` writes into it, after checking that it is
    not a deployment's database; ScratchDatabaseError (one line, exit 2) otherwise.

    `hint` says what to do instead (e.g. "leave out --db").
    """
    from monitor.service.instance_lock import acquire_instance_lock

    def refuse(reason: str) -> ScratchDatabaseError:
        return ScratchDatabaseError(
            f"{path}: refused: {reason}; {tool} writes sample data and alerts into its "
            f"database; {hint}"
        )

    # First without the lock: a deployment's file is refused even by a user who could not
    # create its lock file (and nothing is created beside it).
    reason = deployment_reason(path, own_feed_ids=own_feed_ids)
    if reason is not None:
        raise refuse(reason)
    try:
        lock = acquire_instance_lock(path)
    except AlreadyRunningError as exc:
        text = str(exc)
        holder = text.split("(", 1)[1].split(" holds ", 1)[0] if "(" in text else ""
        raise refuse(
            "a monitor daemon is running on this database" + (f" ({holder})" if holder else "")
        ) from None
    with lock:
        # Again under the lock: a daemon may have started (and marked it) in between.
        reason = deployment_reason(path, own_feed_ids=own_feed_ids)
        if reason is not None:
            raise refuse(reason)
        yield
