"""Opening the database file: WAL, `synchronous=FULL`, a busy timeout; readers `mode=ro`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import DatabaseError

if TYPE_CHECKING:
    pass


BUSY_TIMEOUT_MS = 10_000


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the file with our settings. Read-only connections cannot write anything."""
    target = Path(path)
    try:
        if readonly:
            if not target.exists():
                raise DatabaseError(
                    f"{target}: no database here yet (run `monitor run` or `monitor demo` first)"
                )
            conn = _connect_readonly(target)
        else:
            if target.parent and not target.parent.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(target), isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.Error as exc:
        raise DatabaseError(f"{target}: cannot open the database: {exc}") from exc
    except OSError as exc:
        raise DatabaseError(f"{target}: cannot open the database: {exc.strerror}") from exc


def _connect_readonly(target: Path) -> sqlite3.Connection:
    """Open `target` with `mode=ro`; fall back to `immutable=1` only when that is safe.

    A reader of a WAL database needs the `-shm` file. While a writer has the file open it
    exists; when nobody has, SQLite must create it, which a user without write access to
    the directory cannot ("attempt to write a readonly database", or "unable to open").
    No `-wal` file beside the database (or an empty one: a read-only connection of the
    service user leaves one behind) means that every committed change is in the main
    file and no writer is live (the last connection to close removes the file), so
    `immutable=1` (no locks, no `-shm`) reads it correctly. A writer that starts during a
    query is the one remaining risk: its changes reach the main file only at a checkpoint
    (after ~1000 pages, or when it closes), so a query of milliseconds would have to
    straddle that moment. A `-wal` with content is never skipped.
    """
    uri = target.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        _probe(conn)
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if not _is_permission_error(exc):
            raise
        wal = _wal_path(target)
        if wal.exists() and wal.stat().st_size > 0:
            raise DatabaseError(
                f"{target}: cannot read the database: {exc}. Its -wal file holds changes that "
                f"only a writer can merge (the daemon was stopped uncleanly?): start the daemon, "
                f"or run the query as the service user"
            ) from exc
    conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)
    try:
        _probe(conn)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()


def _is_permission_error(exc: sqlite3.Error) -> bool:
    """SQLITE_READONLY or SQLITE_CANTOPEN (and their extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
    return "readonly" in str(exc) or "unable to open" in str(exc)


def _wal_path(target: Path) -> Path:
    return target.with_name(target.name + "-wal")
