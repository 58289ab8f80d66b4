"""One `monitor run` per database: an exclusive flock(2) on `<db>.lock`.

Owns: creating the lock file beside the database, taking the lock without
waiting, writing the holder's pid into it (for the error message of the
process that is refused), and releasing it on close.

Must not: touch the database itself (SQLite's own POSIX locks live on the db
file; this lock is on a separate file and does not interfere), wait for the
lock, or delete the lock file. Deleting it would let two processes hold locks
on two different inodes of the same name; an empty file left behind is
harmless.

The kernel drops the lock when the last descriptor of the open file closes,
so it is released on normal exit, on an exception and on SIGKILL. The
descriptor is close-on-exec, so programs the daemon execs do not keep it; a
child that is *forked* without exec (multiprocessing's "fork") does, until it
exits (systemd kills the whole cgroup on stop anyway).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

from monitor.errors import AlreadyRunningError, DatabaseError

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
LOCK_FILE_MODE = 0o640  # group monitor may read who holds it; umask may narrow further


def lock_path_for(db_path: Path) -> Path:
    """`/var/lib/monitor/monitor.db` -> `/var/lib/monitor/monitor.db.lock`."""
    return db_path.with_name(db_path.name + LOCK_SUFFIX)


class InstanceLock:
    """A held instance lock. Release it with `close()` or by leaving the `with` block.

    Deliberately no `__del__`: a lock object dropped by mistake keeps the lock
    until the process exits (a leak) rather than silently letting a second
    instance in.
    """

    def __init__(self, db_path: Path, lock_path: Path, fd: int) -> None:
        self.db_path = db_path
        self.lock_path = lock_path
        self._fd: int | None = fd

    @property
    def is_held(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        """Release the lock (idempotent). The pid is erased first, while still held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:  # a read-only or full disk must not keep the lock
            log.debug("could not clear %s: %s", self.lock_path, exc)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "held" if self.is_held else "released"
        return f"InstanceLock({str(self.lock_path)!r}, {state})"


def acquire_instance_lock(db_path: Path) -> InstanceLock:
    """Take the instance lock for `db_path`, or fail at once.

    Raises AlreadyRunningError (naming the database and the pid that holds the
    lock) when another process holds it, and DatabaseError when the lock file
    cannot be created (missing directory, no permission, read-only disk).
    """
    db_path = Path(db_path)
    lock_path = lock_path_for(db_path)
    try:
        fd = os.open(
            lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, LOCK_FILE_MODE
        )
    except OSError as exc:
        raise DatabaseError(
            f"{lock_path}: cannot create the instance lock: {exc.strerror}; "
            f"check that {lock_path.parent} exists and is writable by this user"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            who = (
                f"pid {holder}" if holder is not None else "a process whose pid is not yet recorded"
            )
            raise AlreadyRunningError(
                f"{db_path}: another monitor is already running on this database ({who} "
                f"holds {lock_path}); stop it first (systemctl stop monitor, or the timer), "
                f"or use a different --db"
            ) from exc
        raise DatabaseError(f"{lock_path}: cannot lock: {exc.strerror}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:  # the lock is ours; a missing pid only weakens the message
        log.warning("could not record our pid in %s: %s", lock_path, exc)
    return InstanceLock(db_path, lock_path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
