"""`monitor run --once` stopped by SIGTERM mid-poll (systemd stopping monitor-once.service):
it exits 143 with one line saying what happened, every feed it recorded stays recorded
whole (state, articles, matches), the feeds in flight are not recorded at all, and the
database is sound. A real process, a real feed server, a real SQLite file."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.crash import WAIT, ChildProcess
from tests.support.daemon import CLASH_ITEMS, rss, write_deployment
from tests.support.http import FeedServer, Reply, hang

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feed_server:
        yield feed_server


def polled(db: Path) -> int:
    """Feeds recorded so far (0 while the file is not there yet)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM feeds WHERE polls > 0").fetchone()[0])
    except sqlite3.Error:
        return 0  # created but not yet migrated


def test_sigterm_stops_run_once_and_keeps_what_it_recorded(
    tmp_path: Path, server: FeedServer
) -> None:
    feeds = {}
    for n in range(4):
        server.route(f"/f{n}.xml", Reply(200, rss(CLASH_ITEMS, now=NOW, base=f"https://o{n}.org")))
        feeds[f"feed{n}"] = server.url(f"/f{n}.xml")
    server.script("/stuck.xml", hang)  # keeps the cycle in its poll until the signal
    feeds["stuck"] = server.url("/stuck.xml")
    deployment = write_deployment(
        tmp_path / "deploy", feeds=feeds, smtp_port=1, fetch_deadline_seconds=300.0
    )
    child = ChildProcess(deployment.args("run", "--once"), cwd=tmp_path)
    try:
        deadline = time.monotonic() + WAIT * 2
        while polled(deployment.db) < 4:
            assert child.process.poll() is None, child.stderr()[-2000:]
            assert time.monotonic() < deadline, "the four answering feeds were not recorded"
            time.sleep(0.05)
        child.process.send_signal(signal.SIGTERM)
        code = child.wait(timeout=WAIT)
    finally:
        if child.process.poll() is None:
            child.kill()
    assert code == 143, child.stderr()[-2000:]
    assert "stopped by SIGTERM during the cycle" in child.stderr()
    with sqlite3.connect(deployment.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {
            feed: (polls, articles, matches)
            for feed, polls, articles, matches in conn.execute(
                "SELECT f.id, f.polls, (SELECT count(*) FROM articles a WHERE a.feed_id = f.id),"
                " (SELECT count(*) FROM matches m JOIN articles a ON a.id = m.article_id"
                "  WHERE a.feed_id = f.id) FROM feeds f"
            )
        }
    for n in range(4):
        polls, articles, matches = rows[f"feed{n}"]
        assert (polls, articles) == (1, 2) and matches > 0
    assert rows["stuck"] == (0, 0, 0)
