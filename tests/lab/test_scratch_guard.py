"""`monitor demo` and `monitor replay` keep out of a deployment's database.

Before issue 15, `monitor --db PROD.db demo` wrote 45 demo articles and 32 alerts into a
production database, even while the daemon ran. Now both refuse, in one line with exit 2,
a database that a daemon holds (its instance lock), that `monitor run` has run on (the
`deployment` meta row, or its job log for older files), that holds a watch list's feeds,
or that is not a monitor database; and nothing is written into it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import monitor
from monitor import db
from monitor.cli.app import cli
from monitor.lab.mailsink import MailSink
from monitor.service.deployment import DEPLOYMENT_META_KEY, deployment_reason
from monitor.service.instance_lock import acquire_instance_lock
from tests.support.cli import START, build_database
from tests.support.daemon import CLASH_ITEMS, DaemonProcess, Deployment, rss, write_deployment
from tests.support.http import FeedServer, Reply

DEMO_ITEMS = Path(monitor.__file__).resolve().parent / "lab" / "demo_data" / "items.jsonl"


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def fingerprint(path: Path) -> str:
    """The database's content (every row of every table), whatever the file layout."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ):
            for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY 1'):
                digest.update(repr(row).encode())
        return digest.hexdigest()
    finally:
        conn.close()


def assert_refused(code: int, out: str, err: str, path: Path, reason: str) -> None:
    assert code == 2, (out, err)
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert line.startswith(f"monitor: {path}: refused: "), line
    assert reason in line, line


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.route(
            "/wire.xml", Reply(200, rss(CLASH_ITEMS), (("Content-Type", "application/rss+xml"),))
        )
        yield server


@pytest.fixture
def deployment(tmp_path: Path, feed_server: FeedServer) -> Iterator[Deployment]:
    with MailSink(tmp_path / "mail") as sink:
        yield write_deployment(
            tmp_path / "deploy", feeds={"wire": feed_server.url("/wire.xml")}, smtp_port=sink.port
        )


def test_demo_refuses_the_database_of_a_running_daemon(
    deployment: Deployment, tmp_path: Path
) -> None:
    daemon = DaemonProcess(deployment)
    try:
        daemon.wait_for_log("poll cycle", timeout=60)
        code, out, err = invoke(["--db", str(deployment.db), "demo", "--out", str(tmp_path / "o")])
        assert_refused(code, out, err, deployment.db, "deployment's database")
        with db.Store.open(deployment.db, readonly=True) as store:
            assert store.get_meta("demo_clock") is None
            feeds = {row["id"] for row in store.query("SELECT id FROM feeds")}
        assert feeds == {"wire"}
        code, out, err = invoke(
            ["--db", str(deployment.db), "replay", str(DEMO_ITEMS), "--tick", "7d"]
        )
        assert_refused(code, out, err, deployment.db, "deployment's database")
    finally:
        assert daemon.stop() == 0
    with db.Store.open(deployment.db, readonly=True) as store:
        assert store.get_meta("demo_clock") is None and store.get_meta("replay_corpus") is None
        assert {row["feed_id"] for row in store.query("SELECT feed_id FROM articles")} == {"wire"}


def test_demo_refuses_a_deployment_after_its_daemon_stopped(deployment: Deployment) -> None:
    result = subprocess.run(
        deployment.args("run", "--once"), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    before = fingerprint(deployment.db)
    code, out, err = invoke(
        ["--db", str(deployment.db), "demo", "--out", str(deployment.folder / "demo")]
    )
    assert_refused(code, out, err, deployment.db, "`monitor run` has run on it since ")
    assert fingerprint(deployment.db) == before


def test_demo_refuses_a_database_whose_lock_a_daemon_holds(tmp_path: Path) -> None:
    """A daemon that has not written a thing yet (the lock is all there is)."""
    path = tmp_path / "fresh.db"
    with acquire_instance_lock(path):
        code, out, err = invoke(["--db", str(path), "demo", "--out", str(tmp_path / "o")])
        assert_refused(code, out, err, path, "a monitor daemon is running on this database (pid ")
        code, out, err = invoke(["--db", str(path), "replay", str(DEMO_ITEMS)])
        assert_refused(code, out, err, path, "a monitor daemon is running on this database")
    assert not path.exists() or path.stat().st_size == 0


def old_deployment(path: Path) -> Path:
    """A deployment from before the marker: a watch list's feed and the daemon's job log."""
    build_database(path)
    with db.Store.open(path) as store:
        store.record_run("poll", started_at=START, finished_at=START, ok=True)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            old_deployment,
            "it is a deployment's database (its job log holds 1 rounds of `monitor run`)",
            id="job-log",
        ),
        pytest.param(
            build_database, "it holds feeds of a watch list (wire)", id="watch-list-feeds"
        ),
    ],
)
def test_demo_refuses_a_database_with_a_deployments_traces(
    tmp_path: Path, make: object, reason: str
) -> None:
    path = make(tmp_path / "prod.db")  # type: ignore[operator]
    before = fingerprint(path)
    code, out, err = invoke(["--db", str(path), "demo", "--out", str(tmp_path / "o")])
    assert_refused(code, out, err, path, reason)
    assert fingerprint(path) == before


def test_demo_refuses_files_that_are_not_monitor_databases(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (text)")
    conn.commit()
    conn.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100, encoding="utf-8")
    for path, reason in ((other, "it is not a monitor database"), (text, "it cannot be read")):
        before = path.read_bytes()
        code, out, err = invoke(["--db", str(path), "demo", "--out", str(tmp_path / "o")])
        assert_refused(code, out, err, path, reason)
        assert path.read_bytes() == before


def test_replay_names_a_deployment_and_leaves_it_untouched(tmp_path: Path) -> None:
    path = old_deployment(tmp_path / "prod.db")
    with db.Store.open(path) as store, store.transaction():
        store.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            (DEPLOYMENT_META_KEY, '{"first_run_at": "2024-01-01T00:00:00Z"}'),
        )
    before = fingerprint(path)
    code, out, err = invoke(["--db", str(path), "replay", str(DEMO_ITEMS)])
    assert_refused(code, out, err, path, "`monitor run` has run on it since 2024-01-01T00:00:00Z")
    assert fingerprint(path) == before


def test_the_demos_own_database_is_not_a_deployment(tmp_path: Path) -> None:
    """What the demo wrote (its feeds, its clock) lets it resume; a fresh file is fine."""
    assert deployment_reason(tmp_path / "missing.db", own_feed_ids=()) is None
    path = tmp_path / "demo.db"
    with db.Store.open(path) as store, store.transaction():
        store.set_meta("demo_clock", "2025-01-01T00:00:00Z")
        store.conn.execute(
            "INSERT INTO feeds (id, name, url, configured_url) VALUES ('ria', 'RIA', 'u', 'u')"
        )
    assert deployment_reason(path, own_feed_ids={"ria"}) is None
    assert deployment_reason(path, own_feed_ids={"tass"}) == "it holds feeds of a watch list (ria)"
