"""The CLI reads and never writes: read-only connections, another user with read access
only, a stopped daemon with no -wal/-shm files, and a writer holding a transaction."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor import db
from monitor.cli.app import cli
from monitor.config import bundled_indicators_text
from monitor.errors import DatabaseError
from monitor.models import ScorePoint
from tests.support.cli import START, add_articles, build_database

NOBODY = 65534
QUERIES = [
    ["history", "--since", "2022-09-01", "--until", "2022-10-01", "--format", "json"],
    ["alerts", "--format", "json"],
    ["articles", "--search", "Batken", "--format", "json"],
    ["explain", "-t", "kg-tj", "--format", "json"],
    ["feeds", "--format", "json"],
]


def invoke(path: Path | str, args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", str(path), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's own tmp dirs are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="monitor-ro-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_as_nobody(func: Callable[[], Any]) -> Any:
    """Run `func` in a forked child that has become uid/gid 65534; return its result.

    Forked, not exec'd: the interpreter may live where that user cannot read (and the
    modules the commands need are imported by the parent first)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            payload = {"result": func()}
        except BaseException as exc:
            payload = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_end, "w") as out:
            json.dump(payload, out)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as incoming:
        text = incoming.read()
    os.waitpid(pid, 0)
    payload = json.loads(text)
    if "error" in payload:
        raise AssertionError(f"in the child: {payload['error']}")
    return payload["result"]


def plain_readonly_open(path: Path) -> str:
    """What a bare `mode=ro` connection says (the gap the fallback closes)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return "ok"
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()


needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="switching to another uid needs root (run the suite as root to cover this)",
)


def test_writes_through_the_cli_connection_fail_with_readonly(tmp_path: Path) -> None:
    path = build_database(tmp_path / "m.db")
    with db.Store.open(path, readonly=True) as store:
        for sql in (
            "INSERT INTO meta VALUES ('k', 'v')",
            "UPDATE scores SET score = 0",
            "DELETE FROM alerts",
            "CREATE TABLE x (y)",
        ):
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                store.conn.execute(sql)


@needs_root
def test_another_user_with_read_access_only_can_query_a_stopped_database(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watch list where the deployment keeps it, readable by the group (/etc/monitor):
    # the checkout (the built-in list of an editable install) may sit where `nobody`
    # cannot enter, e.g. a private temporary directory.
    watch_list = shared_dir / "indicators.yaml"
    watch_list.write_text(bundled_indicators_text(), encoding="utf-8")
    watch_list.chmod(0o644)
    monkeypatch.setenv("MONITOR_INDICATORS", str(watch_list))
    path = add_articles(build_database(shared_dir / "m.db"))
    path.chmod(0o644)
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    # What root reads (and every module the commands import), from a copy: root's
    # read-only connection would leave an empty -wal and a -shm beside the original.
    twin = shutil.copy(path, Path(tempfile.mkdtemp(dir=shared_dir)) / "m.db")
    expected = {tuple(args): invoke(twin, args) for args in QUERIES}
    invoke(twin, ["status", "--format", "json"])

    def queries() -> dict[str, Any]:
        answers = {" ".join(args): list(invoke(path, args)) for args in QUERIES}
        code, out, _ = invoke(path, ["status", "--format", "json"])
        answers["status"] = [code, json.loads(out)["reasons"]]
        with db.Store.open(path, readonly=True) as store:
            try:
                store.conn.execute("INSERT INTO meta VALUES ('k', 'v')")
                answers["write"] = "written"
            except sqlite3.OperationalError as exc:
                answers["write"] = str(exc)
        answers["uid"] = os.getuid()
        answers["plain"] = plain_readonly_open(path)
        return answers

    before = path.read_bytes()
    answers = run_as_nobody(queries)
    assert answers["uid"] == NOBODY
    assert answers["plain"] == "attempt to write a readonly database"  # without the fallback
    for args, (code, out, err) in expected.items():
        assert code == 0, err
        assert answers[" ".join(args)] == [0, out, ""], args
    assert answers["status"][0] == 2  # no cycle recorded: down, but answered
    assert "readonly" in answers["write"]
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


@needs_root
def test_a_leftover_wal_is_never_skipped(shared_dir: Path) -> None:
    """A -wal left by a killed writer holds committed rows the main file lacks: reading
    the main file alone (immutable) would hide them, so the reader must refuse."""
    source = build_database(shared_dir / "live.db")
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO meta VALUES ('only-in-wal', '1')")
    crashed = shared_dir / "crashed.db"
    shutil.copy(source, crashed)
    shutil.copy(f"{source}-wal", f"{crashed}-wal")  # as a kill -9 leaves it (no -shm)
    writer.close()
    for name in (crashed, Path(f"{crashed}-wal")):
        name.chmod(0o644)

    def open_it() -> str:
        try:
            db.Store.open(crashed, readonly=True).close()
            return "opened"
        except DatabaseError as exc:
            return str(exc)

    message = run_as_nobody(open_it)
    assert "-wal file holds changes" in message and "start the daemon" in message


@needs_root
def test_an_empty_wal_left_by_a_reader_is_no_obstacle(shared_dir: Path) -> None:
    """The service user's own read-only query leaves an empty -wal and a -shm behind;
    another user who cannot read that -shm still gets answers."""
    path = build_database(shared_dir / "m.db")
    code, out, _ = invoke(path, QUERIES[0])  # root reads: leaves m.db-wal (empty), m.db-shm
    assert code == 0 and Path(f"{path}-wal").stat().st_size == 0
    Path(f"{path}-shm").chmod(0o600)
    path.chmod(0o644)
    answer = run_as_nobody(lambda: [plain_readonly_open(path), *invoke(path, QUERIES[0])])
    assert answer[0] != "ok"  # a bare mode=ro reader fails here
    assert answer[1:] == [0, out, ""]


def test_a_query_while_a_writer_holds_a_transaction(tmp_path: Path) -> None:
    """The daemon is mid-transaction (BEGIN IMMEDIATE, rows written, not committed): every
    query answers at once, without "database is locked", and without the uncommitted row."""
    path = add_articles(build_database(tmp_path / "m.db"))
    in_transaction, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def daemon() -> None:
        try:
            with db.Store.open(path) as writer, writer.transaction():
                writer.insert_score(
                    ScorePoint("kg-tj", START + timedelta(days=29, hours=23), 50.0, 99.0,
                               "critical", "1")
                )  # fmt: skip
                in_transaction.set()
                release.wait(timeout=60)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    late = ["history", "--since", "2022-09-30T22:00Z", "--until", "2022-10-01", "--format", "json"]
    thread = threading.Thread(target=daemon)
    thread.start()
    try:
        assert in_transaction.wait(timeout=30)
        for args in [*QUERIES, ["status", "--format", "json"]]:
            code, _, err = invoke(path, args)
            assert code in (0, 2) and err == "", (args, err)  # status: 2 = no cycle recorded
        code, out, _ = invoke(path, late)
        assert code == 0 and [row["score"] for row in json.loads(out)] == []
    finally:
        release.set()
        thread.join(timeout=30)
    assert failures == []
    code, out, _ = invoke(path, late)
    assert code == 0 and [row["score"] for row in json.loads(out)] == [99.0]  # now committed
