"""`monitor backup PATH`: SQLite's online backup API, an integrity check of the copy, and
one clear line (exit 2 for an unusable PATH, 1 for a failed copy) with nothing left behind.

The concurrent test backs up while a writer thread commits transactions of two rows; the
copy must pass `PRAGMA integrity_check` and hold whole transactions only (one moment).
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import db
from monitor.cli.app import cli
from monitor.service.backup import backup_database
from tests.db.test_readonly import needs_root, run_as_nobody, shared_dir  # noqa: F401
from tests.lab.test_scratch_guard import fingerprint
from tests.support.cli import add_articles, build_database

REPO = Path(__file__).resolve().parents[2]


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_backup_copies_and_checks_the_database(tmp_path: Path) -> None:
    source = add_articles(build_database(tmp_path / "live.db"))
    source.chmod(0o640)
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    target = out_dir / "monitor-2026-01-01.db"
    code, out, err = invoke(["--db", str(source), "backup", str(target)])
    assert code == 0, err
    assert out.startswith(f"backed up {source} to {target}: ") and "integrity_check ok" in out
    assert fingerprint(target) == fingerprint(source)
    assert leftovers(out_dir, {target.name}) == []  # one file: no -wal, -shm or partial
    assert (target.stat().st_mode & 0o777) == 0o640  # the source's permissions
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    # the copy is a monitor database the query commands read
    code, out, _ = invoke(["--db", str(target), "alerts", "--format", "json"])
    assert code == 0 and "level_up" in out


@pytest.mark.parametrize(
    ("make_target", "message"),
    [
        pytest.param(
            lambda folder: folder / "exists.db",
            "already exists; a backup never replaces a file",
            id="exists",
        ),
        pytest.param(
            lambda folder: folder,
            "already exists; a backup never replaces a file",
            id="a-folder",
        ),
        pytest.param(
            lambda folder: folder / "missing" / "b.db",
            "does not exist; create it first",
            id="folder-missing",
        ),
    ],
)
def test_an_unusable_path_is_one_line_and_exit_2(
    tmp_path: Path, make_target: object, message: str
) -> None:
    source = build_database(tmp_path / "live.db")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "exists.db").write_bytes(b"precious")
    target = make_target(folder)  # type: ignore[operator]
    code, out, err = invoke(["--db", str(source), "backup", str(target)])
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith(f"monitor: {target}: ") and message in err
    assert (folder / "exists.db").read_bytes() == b"precious"
    assert leftovers(folder, {"exists.db"}) == []


def test_no_database_is_exit_1(tmp_path: Path) -> None:
    code, _, err = invoke(["--db", str(tmp_path / "none.db"), "backup", str(tmp_path / "b.db")])
    assert code == 1 and "no database here yet" in err and err.count("\n") == 1
    assert not (tmp_path / "b.db").exists()


@needs_root
def test_a_folder_the_user_cannot_write_is_exit_1(shared_dir: Path) -> None:  # noqa: F811
    source = build_database(shared_dir / "live.db")
    invoke(["--db", str(source), "alerts"])  # leaves the -shm a reader needs
    for name in (source, Path(f"{source}-shm"), Path(f"{source}-wal")):
        if name.exists():
            name.chmod(0o666)
    locked = shared_dir / "locked"
    locked.mkdir()
    locked.chmod(0o755)  # root's: nobody may not write here

    answer = run_as_nobody(
        lambda: list(invoke(["--db", str(source), "backup", str(locked / "b.db")]))
    )
    code, _, err = answer
    assert code == 1
    assert err.count("\n") == 1 and f"cannot write into {locked}: Permission denied" in err
    assert leftovers(locked, set()) == []


def _limit_file_size() -> None:  # pragma: no cover (runs in the child)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, 96 * 1024))


def test_a_full_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path: Path) -> None:
    """Simulated with RLIMIT_FSIZE: every write past 96 KiB fails, as on a full disk."""
    source = add_articles(build_database(tmp_path / "live.db"))
    with db.Store.open(source) as store, store.transaction():
        store.conn.execute(  # ~1 MB, so the copy cannot fit
            "INSERT INTO meta (key, value) VALUES ('filler', ?)", ("x" * 1_000_000,)
        )
    folder = tmp_path / "out"
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--db", str(source), "backup", str(folder / "b.db")],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"monitor: {folder / 'b.db'}: backup failed: ")
    assert "nothing was kept" in result.stderr
    assert leftovers(folder, set()) == []


def test_backup_while_a_writer_commits_is_one_consistent_moment(tmp_path: Path) -> None:
    source = build_database(tmp_path / "live.db")
    with db.Store.open(source) as store, store.transaction():
        store.conn.execute("INSERT INTO meta (key, value) VALUES ('writes', '0')")
        store.conn.executemany(  # ~40 MB: the backup takes a while
            "INSERT INTO runs (job, started_at, finished_at, ok, summary) VALUES (?, ?, ?, 1, ?)",
            [("filler", "t", "t", os.urandom(4000).hex()) for _ in range(5000)],
        )
    stop = threading.Event()
    commits: list[float] = []
    failures: list[str] = []

    def writer() -> None:
        conn = db.connect(source)
        try:
            n = 0
            while not stop.is_set():
                n += 1
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO runs (job, started_at, finished_at, ok) VALUES ('w', 't', 't', 1)"
                )
                conn.execute("UPDATE meta SET value = ? WHERE key = 'writes'", (str(n),))
                conn.execute("COMMIT")
                commits.append(time.monotonic())
        except sqlite3.Error as exc:  # pragma: no cover (reported below)
            failures.append(str(exc))
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 30
    while len(commits) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    copies = []
    try:
        for index in range(3):
            began = time.monotonic()
            result = backup_database(source, tmp_path / f"copy-{index}.db")
            copies.append((began, time.monotonic(), result))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert failures == []
    for began, ended, result in copies:
        conn = sqlite3.connect(result.target)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = conn.execute("SELECT count(*) FROM runs WHERE job = 'w'").fetchone()[0]
            counter = int(conn.execute("SELECT value FROM meta WHERE key = 'writes'").fetchone()[0])
        finally:
            conn.close()
        assert rows == counter  # whole transactions only
        done_before = sum(1 for at in commits if at < began)
        done_after = sum(1 for at in commits if at <= ended)
        assert done_before <= counter <= done_after
    # the writer was not stopped by the backups: it committed while they ran
    assert any(began < at < ended for began, ended, _ in copies for at in commits)
