"""Soak: the real daemon, the shipped poll : score schedule compressed, every critical sign
alerted exactly once (issue 11).

The shipped schedule polls every 60 s and scores every 900 s, so at every score tick the
two jobs fire in the same instant. Here they run at 2 s : 30 s (`MONITOR_SOAK_POLL`,
`MONITOR_SOAK_SCORE` change it) for `MONITOR_SOAK_TICKS` score ticks (30 by default),
while a local feed server publishes a new critical clash every second or two. At the
end, every critical story the daemon stored must have been carried by exactly one alert,
and that alert's email must have been accepted by the local SMTP server.

Slow (about 16 minutes at the defaults): `pytest -m slow tests/test_soak_alerts.py -s`.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.lab.mailsink import MailSink
from tests.support.daemon import CLASH_HEADLINES as HEADLINES
from tests.support.daemon import DaemonProcess, write_deployment
from tests.support.http import FeedServer, RecordedRequest, Reply

POLL_SECONDS = int(os.environ.get("MONITOR_SOAK_POLL", "2"))
SCORE_SECONDS = int(os.environ.get("MONITOR_SOAK_SCORE", "30"))
SCORE_TICKS = int(os.environ.get("MONITOR_SOAK_TICKS", "30"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SCORE_TICKS * SCORE_SECONDS * 4 + 900)]
FEEDS = ("wire-a", "wire-b", "wire-c")
ITEMS_PER_FEED = 40  # a feed shows its latest items, as real feeds do


class Wire:
    """Feeds that gain a new critical clash now and then; each item a story of its own."""

    def __init__(self) -> None:
        self.items: dict[str, list[tuple[str, str, str, datetime]]] = {f: [] for f in FEEDS}
        self.lock = threading.Lock()
        self.published = 0
        self._rng = random.Random(11)

    def publish(self) -> None:
        rng = self._rng
        # Words of its own make each title a separate story (no near-duplicate titles).
        words = " ".join(
            "".join(rng.choice(string.ascii_lowercase) for _ in range(7)) for _ in range(10)
        )
        headline = rng.choice(HEADLINES)
        title = f"{headline}: {words}"
        body = f"{headline}, officials said on {datetime.now(UTC):%A}."
        with self.lock:
            feed = FEEDS[self.published % len(FEEDS)]
            self.published += 1
            guid = f"https://news.example.org/{feed}/{self.published}"
            self.items[feed].append((guid, title, body, datetime.now(UTC)))
            del self.items[feed][:-ITEMS_PER_FEED]

    def reply(self, feed: str) -> Reply:
        with self.lock:
            items = list(self.items[feed])
        parts = [
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{feed}</title>"
        ]
        for guid, title, body, published in reversed(items):
            parts.append(
                f"<item><title>{escape(title)}</title><link>{guid}</link><guid>{guid}</guid>"
                f"<pubDate>{format_datetime(published)}</pubDate>"
                f"<description>{escape(body)}</description></item>"
            )
        parts.append("</channel></rss>")
        return Reply(200, "".join(parts).encode(), (("Content-Type", "application/rss+xml"),))


@pytest.fixture
def wire() -> Iterator[tuple[Wire, FeedServer]]:
    feeds = Wire()
    with FeedServer() as server:
        for feed in FEEDS:

            def responder(_: RecordedRequest, feed: str = feed) -> Reply:
                return feeds.reply(feed)

            server.route(f"/{feed}.xml", responder)
        yield feeds, server


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def score_ticks(db: Path) -> int:
    """Runs of the score job (the poll job also scores at once when it finds a sign)."""
    if not db.exists():
        return 0
    try:
        return int(query(db, "SELECT count(*) FROM runs WHERE job = 'score' AND ok = 1")[0][0])
    except sqlite3.OperationalError:
        return 0  # not migrated yet


def wait_until(condition: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_every_critical_sign_is_alerted_exactly_once_under_the_shipped_schedule(
    tmp_path: Path, wire: tuple[Wire, FeedServer]
) -> None:
    feeds, server = wire
    with MailSink(tmp_path / "mail") as sink:
        deployment = write_deployment(
            tmp_path / "deploy",
            feeds={feed: server.url(f"/{feed}.xml") for feed in FEEDS},
            smtp_port=sink.port,
            poll_tick_seconds=POLL_SECONDS,
            score_tick_seconds=SCORE_SECONDS,
        )
        daemon = DaemonProcess(deployment)
        stop_publishing = threading.Event()

        def publish() -> None:
            rng = random.Random(5)
            while not stop_publishing.wait(rng.uniform(0.5, 2.0)):
                feeds.publish()

        publisher = threading.Thread(target=publish, daemon=True)
        try:
            daemon.wait_for_log("started db=", timeout=60)
            publisher.start()
            started = score_ticks(deployment.db)
            wait_until(
                lambda: score_ticks(deployment.db) >= started + SCORE_TICKS,
                timeout=SCORE_TICKS * SCORE_SECONDS * 3 + 120,
                what=f"{SCORE_TICKS} score ticks",
            )
            stop_publishing.set()
            publisher.join(timeout=10)
            # Two more ticks, so the last polls are scored; then the outbox drains.
            last = score_ticks(deployment.db)
            wait_until(
                lambda: score_ticks(deployment.db) >= last + 2,
                timeout=SCORE_SECONDS * 6 + 60,
                what="the closing score ticks",
            )
            wait_until(
                lambda: (
                    query(deployment.db, "SELECT count(*) FROM outbox WHERE status != 'sent'")[0][0]
                    == 0
                ),
                timeout=120,
                what="the outbox to drain",
            )
            assert daemon.stop(timeout=30) == 0
        finally:
            stop_publishing.set()
            if daemon.process.poll() is None:
                daemon.kill()

        critical = dict(
            query(
                deployment.db,
                "SELECT id, story_id FROM matches WHERE indicator_id = 'border_clash' "
                "AND theatre_id = 'kg-tj' AND confidence >= 0.5",
            )
        )
        carried: list[int] = []
        sent_keys = set()
        for key, match_ids, status in query(
            deployment.db,
            "SELECT a.dedup_key, a.match_ids, o.status FROM alerts a "
            "LEFT JOIN outbox o ON o.alert_id = a.id ORDER BY a.id",
        ):
            stories = {critical[i] for i in json.loads(str(match_ids or "[]")) if i in critical}
            carried.extend(stories)
            if stories:
                assert status == "sent", key
                sent_keys.add(key)
        produced = set(critical.values())
        ticks = score_ticks(deployment.db) - started
        print(
            f"\nsoak: {POLL_SECONDS} s : {SCORE_SECONDS} s, {ticks} score ticks, "
            f"{feeds.published} items published, {len(produced)} critical stories stored, "
            f"{len(set(carried))} alerted ({len(carried)} alert carryings), "
            f"{len(sent_keys)} alert emails with critical signs, {len(sink.received())} emails"
        )
        assert len(produced) >= SCORE_TICKS, "the soak produced too few critical signs"
        assert sorted(carried) == sorted(produced), "every critical story alerted exactly once"
        assert "Traceback" not in daemon.log()
