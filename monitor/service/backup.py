"""`monitor backup PATH`: a consistent copy of the live database, checked before it counts.

SQLite's online backup API (`sqlite3.Connection.backup`) copies the database in one step
under one read transaction: in WAL mode the daemon keeps writing meanwhile, and the copy is
the database as of one commit (never half a transaction). The copy goes to a hidden
temporary file beside PATH; it must pass `PRAGMA integrity_check` and carry a monitor
schema; it is switched to a rollback journal (one self-contained file, no -wal/-shm), made
durable (fsync), and only then given its name, without ever replacing a file (a hard link,
which fails if PATH appeared meanwhile). On any failure the temporary file is removed and
nothing is left at PATH.

In one step, not page by page: a stepped backup starts again from the first page whenever
another connection writes, so under a busy daemon it might never finish.

Owns: the copy and its checks. Must not: write to the source (it is opened read-only),
overwrite anything, leave a partial file behind.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import MonitorError


class BackupError(MonitorError):
    """The copy could not be made or failed its check (exit 1: try again, or fix the disk)."""


class BackupTargetError(MonitorError):
    """PATH cannot be a backup: it exists, or its folder does not (exit 2: a usage error)."""

    exit_code = 2


@dataclass(frozen=True)
class BackupResult:
    source: Path
    target: Path
    size_bytes: int
    pages: int
    schema_version: int
    seconds: float


def backup_database(source: Path, target: Path) -> BackupResult:
    """Copy the database at `source` to the new file `target`, checked; see the module."""
    from monitor import db  # the read-only opener copes with a stopped daemon's file

    _check_target(target)
    started = time.monotonic()
    reader = db.Store.open(source, readonly=True)  # DatabaseError: missing, not monitor's
    try:
        temporary = _temporary_beside(target)
        try:
            pages, version = _copy(reader.conn, temporary, target)
            # The source's permissions (e.g. 0640: group monitor may read), not mkstemp's 0600.
            os.chmod(temporary, stat.S_IMODE(source.stat().st_mode))
            _link_into_place(temporary, target)
        finally:
            _remove_quietly(temporary)
    finally:
        reader.close()
    return BackupResult(
        source=source,
        target=target,
        size_bytes=target.stat().st_size,
        pages=pages,
        schema_version=version,
        seconds=time.monotonic() - started,
    )


def _check_target(target: Path) -> None:
    if os.path.lexists(target):
        raise BackupTargetError(
            f"{target}: already exists; a backup never replaces a file: name a new one "
            "(e.g. with the date) or remove it first"
        )
    folder = target.parent
    if not folder.is_dir():
        raise BackupTargetError(f"{target}: the folder {folder} does not exist; create it first")


def _temporary_beside(target: Path) -> Path:
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target.parent
        )
    except OSError as exc:
        raise BackupError(
            f"{target}: cannot write into {target.parent}: {exc.strerror or exc}"
        ) from None
    os.close(handle)
    return Path(name)


def _copy(source: sqlite3.Connection, temporary: Path, target: Path) -> tuple[int, int]:
    """Back up into `temporary`, check it, make it one durable file; (pages, schema)."""
    copy = sqlite3.connect(str(temporary), isolation_level=None)
    try:
        source.backup(copy)  # pages=-1: the whole database in one step (one snapshot)
        verdict = [str(row[0]) for row in copy.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise BackupError(
                f"{target}: the copy failed its integrity check ({'; '.join(verdict[:3])}); "
                "nothing was kept: run `monitor backup` again, and check the source with "
                "sqlite3 PRAGMA integrity_check if it fails again"
            )
        version = copy.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        copy.execute("PRAGMA journal_mode = DELETE")  # one file: no -wal/-shm beside it
        pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
    except sqlite3.Error as exc:
        raise BackupError(f"{target}: backup failed: {_explain(exc)}; nothing was kept") from None
    finally:
        copy.close()
    try:
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
    except OSError as exc:
        raise BackupError(
            f"{target}: backup failed: {exc.strerror or exc}; nothing was kept"
        ) from None
    return pages, int(version or 0)


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "full" in text or "I/O" in text:
        return f"{text} (is the disk full?)"
    return text


def _link_into_place(temporary: Path, target: Path) -> None:
    """Give the checked copy its name without ever replacing a file."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise BackupTargetError(
            f"{target}: appeared while the backup ran; nothing was replaced"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise BackupError(f"{target}: cannot name the copy: {exc.strerror or exc}") from None
        if os.path.lexists(target):  # a file system without hard links
            raise BackupTargetError(
                f"{target}: appeared while the backup ran; nothing was replaced"
            ) from None
        os.replace(temporary, target)
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    for name in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            name.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass
