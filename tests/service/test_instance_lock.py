"""monitor.service.instance_lock across real processes: refused while held, free after exit or SIGKILL."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.errors import AlreadyRunningError, DatabaseError
from monitor.service.instance_lock import acquire_instance_lock, lock_path_for

WAIT_SECONDS = 20.0

# A process that takes the lock, says so, and then obeys commands on stdin:
# "release" -> close the lock; "exit" or EOF -> leave the `with` block and exit.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from monitor.service.instance_lock import acquire_instance_lock

    with acquire_instance_lock(Path(sys.argv[1])) as lock:
        print("locked", flush=True)
        for line in sys.stdin:
            if line.strip() == "release":
                lock.close()
                print("released", flush=True)
            elif line.strip() == "exit":
                break
    """
)

# A process that tries once and reports what happened.
CONTENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from monitor.errors import AlreadyRunningError
    from monitor.service.instance_lock import acquire_instance_lock

    try:
        lock = acquire_instance_lock(Path(sys.argv[1]))
    except AlreadyRunningError as exc:
        print(exc)
        sys.exit(3)
    lock.close()
    print("acquired")
    """
)


def read_line(proc: subprocess.Popen[str], timeout: float = WAIT_SECONDS) -> str:
    """The next stdout line of `proc`, waiting at most `timeout` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise TimeoutError(f"no output from pid {proc.pid} within {timeout} s")
    return proc.stdout.readline().strip()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "monitor.db"


@pytest.fixture
def holder(db_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "locked", proc.stderr.read() if proc.stderr else ""
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT_SECONDS)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def tell(proc: subprocess.Popen[str], command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()


def try_in_another_process(db_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CONTENDER, str(db_path)],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )


# ---------------------------------------------------------------------------


def test_a_second_process_is_refused_with_the_db_and_the_holders_pid(db_path: Path) -> None:
    with acquire_instance_lock(db_path) as lock:
        assert lock.is_held
        refused = try_in_another_process(db_path)
    assert refused.returncode == 3, refused.stderr
    message = refused.stdout.strip()
    assert str(db_path) in message
    assert f"pid {os.getpid()}" in message
    assert "already running" in message
    assert "\n" not in message  # one line for the CLI


def test_refused_here_while_another_process_holds_it(
    db_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(AlreadyRunningError) as refused:
        acquire_instance_lock(db_path)
    assert str(db_path) in str(refused.value)
    assert f"pid {holder.pid}" in str(refused.value)


def test_free_again_when_the_holder_closes_it(db_path: Path, holder: subprocess.Popen[str]) -> None:
    tell(holder, "release")
    assert read_line(holder) == "released"
    assert holder.poll() is None  # the holder still runs; only the lock is gone
    with acquire_instance_lock(db_path) as lock:
        assert lock.is_held


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param("exit", id="normal-exit"),
        pytest.param("eof", id="stdin-closed"),
        pytest.param(signal.SIGKILL, id="sigkill"),
        pytest.param(signal.SIGTERM, id="sigterm-no-handler"),
    ],
)
def test_free_again_after_the_holder_process_ends(
    db_path: Path, holder: subprocess.Popen[str], ending: object
) -> None:
    if ending == "exit":
        tell(holder, "exit")
    elif ending == "eof":
        assert holder.stdin is not None
        holder.stdin.close()
    else:
        assert isinstance(ending, signal.Signals)
        holder.send_signal(ending)
    holder.wait(timeout=WAIT_SECONDS)
    acquired = try_in_another_process(db_path)
    assert acquired.stdout.strip() == "acquired", acquired.stdout + acquired.stderr
    with acquire_instance_lock(db_path):
        pass


def test_the_lock_file_names_the_holder_and_is_cleared_on_close(db_path: Path) -> None:
    lock = acquire_instance_lock(db_path)
    lock_file = lock_path_for(db_path)
    assert lock_file == db_path.parent / "monitor.db.lock"
    assert lock_file.read_text() == f"{os.getpid()}\n"
    lock.close()
    assert not lock.is_held
    assert lock_file.read_text() == ""
    assert lock_file.exists()  # never deleted: see the module docstring
    lock.close()  # idempotent


def test_a_stale_pid_from_a_killed_holder_is_overwritten(
    db_path: Path, holder: subprocess.Popen[str]
) -> None:
    holder.kill()
    holder.wait(timeout=WAIT_SECONDS)
    assert lock_path_for(db_path).read_text() == f"{holder.pid}\n"  # left behind by SIGKILL
    with acquire_instance_lock(db_path):
        assert lock_path_for(db_path).read_text() == f"{os.getpid()}\n"


def test_the_same_process_cannot_take_it_twice(db_path: Path) -> None:
    with acquire_instance_lock(db_path), pytest.raises(AlreadyRunningError):
        acquire_instance_lock(db_path)


def test_a_missing_directory_is_a_clear_database_error(tmp_path: Path) -> None:
    db_path = tmp_path / "no-such-dir" / "monitor.db"
    with pytest.raises(DatabaseError) as failed:
        acquire_instance_lock(db_path)
    message = str(failed.value)
    assert str(lock_path_for(db_path)) in message
    assert "No such file or directory" in message


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    db_path = tmp_path / "monitor.db"
    target = tmp_path / "elsewhere"
    target.write_text("do not truncate me\n")
    lock_path_for(db_path).symlink_to(target)
    with pytest.raises(DatabaseError):
        acquire_instance_lock(db_path)
    assert target.read_text() == "do not truncate me\n"


def test_the_lock_does_not_block_sqlite_on_the_database(db_path: Path) -> None:
    with acquire_instance_lock(db_path):
        conn = sqlite3.connect(db_path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        assert reader.execute("SELECT x FROM t").fetchall() == [(1,)]
        reader.close()
        conn.close()
