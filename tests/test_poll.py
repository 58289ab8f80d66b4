"""A poll cycle through the real stages: a local HTTP server, the parser workers, a SQLite
file. Issue 17: the event loop only waits (matching in the workers, storing in one writer
thread), and a stopped poll leaves every feed recorded whole or not at all."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.config import Config, load_config
from monitor.db import Store
from monitor.detect.matcher import match_article
from monitor.fetch.fetcher import Fetcher
from monitor.fetch.parse_sandbox import ParserPool
from monitor.models import ArticleText, from_iso
from tests.support.daemon import CLASH_ITEMS, rss, write_deployment
from tests.support.http import FeedServer, Reply, hang

NOW = datetime.now(UTC).replace(microsecond=0)
TIMEOUT = 60.0
QUIET_ITEMS = (
    ("Bishkek hosts a regional trade fair", "Exhibitors from five countries showed textiles."),
    ("Osh airport extends its runway", "The work will finish next spring, the operator said."),
)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feed_server:
        yield feed_server


def deployment_config(tmp_path: Path, feeds: dict[str, str], *, patient: bool = False) -> Config:
    """`patient`: a fetch may last five minutes, so a hanging feed keeps the poll running
    however slowly a busy machine records the others."""
    deployment = write_deployment(
        tmp_path / "deploy",
        feeds=feeds,
        smtp_port=1,
        fetch_deadline_seconds=300.0 if patient else 10.0,
    )
    return load_config(
        indicators_path=deployment.indicators, settings_path=deployment.settings, env={}
    )


def test_a_poll_matches_in_the_workers_and_stores_what_in_process_matching_gives(
    tmp_path: Path, server: FeedServer
) -> None:
    feeds = {}
    for n in range(6):
        items = CLASH_ITEMS if n % 2 else QUIET_ITEMS
        server.route(f"/f{n}.xml", Reply(200, rss(items, now=NOW, base=f"https://o{n}.org")))
        feeds[f"feed{n}"] = server.url(f"/f{n}.xml")
    config = deployment_config(tmp_path, feeds)

    async def poll(store: Store) -> pipeline.PollSummary:
        async with Fetcher(config.settings.http) as fetcher, ParserPool(workers=2) as parsers:
            return await pipeline.poll_feeds(
                store, config, fetcher, parsers, now=NOW, rng=random.Random(1)
            )

    with Store.open(config.settings.db_path) as store:
        store.sync_feeds(config.feeds, now=NOW)
        summary = asyncio.run(poll(store))
        articles = store.query("SELECT id, title, summary, language, published_at FROM articles")
        stored = {
            (row["article_id"], row["indicator_id"], row["theatre_id"], row["confidence"])
            for row in store.query(
                "SELECT article_id, indicator_id, theatre_id, confidence FROM matches"
            )
        }
    assert (summary.feeds, summary.ok, summary.new_articles) == (6, 6, 12)
    assert summary.matched_here == 0  # every article was matched in a parser worker
    expected = {
        (row["id"], match.indicator_id, match.theatre_id, match.confidence)
        for row in articles
        for match in match_article(
            ArticleText(
                row["title"], row["summary"], row["language"], from_iso(row["published_at"])
            ),
            config.rules,
        )
    }
    assert stored == expected and summary.matches == len(expected) > 0
    assert summary.events > 0 and summary.theatres_touched == {"kg-tj"}
    # the writer's CPU per step, for the poll bench's profile
    assert set(summary.cpu) == set(pipeline.WRITER_STEPS)
    assert all(seconds >= 0 for seconds in summary.cpu.values())
    assert summary.cpu["grouping"] > 0 and summary.cpu["articles"] > 0
    assert summary.cpu["matches"] > 0


def test_a_cancelled_poll_leaves_every_feed_recorded_whole_or_not_at_all(
    tmp_path: Path, server: FeedServer
) -> None:
    """SIGTERM cancels a running poll: feeds already recorded stay recorded (articles,
    matches and state together), feeds in flight are not recorded at all, the writer
    thread ends, and the database is sound."""
    feeds = {}
    for n in range(6):
        server.route(f"/f{n}.xml", Reply(200, rss(CLASH_ITEMS, now=NOW, base=f"https://o{n}.org")))
        feeds[f"feed{n}"] = server.url(f"/f{n}.xml")
    for n in range(2):
        server.script(f"/stuck{n}.xml", hang)
        feeds[f"stuck{n}"] = server.url(f"/stuck{n}.xml")
    # The stuck feeds must still hang when the six are recorded: under load that may take
    # longer than the deployment's 10 s fetch deadline (a failure seen once on a busy host).
    config = deployment_config(tmp_path, feeds, patient=True)
    db_path = config.settings.db_path

    def polled() -> int:
        with Store.open(db_path, readonly=True) as reader:
            return int(reader.query("SELECT count(*) AS n FROM feeds WHERE polls > 0")[0]["n"])

    async def cancel_mid_poll(store: Store) -> None:
        async with Fetcher(config.settings.http) as fetcher, ParserPool(workers=2) as parsers:
            task = asyncio.create_task(
                pipeline.poll_feeds(store, config, fetcher, parsers, now=NOW, rng=random.Random())
            )
            for _ in range(int(TIMEOUT / 0.05)):
                if polled() >= 6 or task.done():
                    break
                await asyncio.sleep(0.05)
            assert not task.done()  # the stuck feeds keep it running
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=TIMEOUT)
            assert done and task.cancelled()

    others = {t for t in threading.enumerate() if t.name == "store-writer"}

    def writer_alive() -> bool:  # this poll's writer (not one another test left ending)
        return any(t.name == "store-writer" and t not in others for t in threading.enumerate())

    with Store.open(db_path) as store:
        store.sync_feeds(config.feeds, now=NOW)
        asyncio.run(cancel_mid_poll(store))
        # The poll waits 5 s for the writer's last batch, then leaves it to end alone (a
        # stop must not hang); on a busy host that batch may take longer: wait for the
        # thread's real end, bounded, before reading what it left.
        deadline = time.monotonic() + TIMEOUT
        while writer_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not writer_alive()
        rows = store.query(
            "SELECT f.id, f.polls, (SELECT count(*) FROM articles a WHERE a.feed_id = f.id) AS "
            "articles, (SELECT count(*) FROM matches m JOIN articles a ON a.id = m.article_id "
            "WHERE a.feed_id = f.id) AS matches FROM feeds f ORDER BY f.id"
        )
        assert store.integrity_check() == "ok"
    by_id = {row["id"]: row for row in rows}
    for n in range(6):
        assert (by_id[f"feed{n}"]["polls"], by_id[f"feed{n}"]["articles"]) == (1, 2)
        assert by_id[f"feed{n}"]["matches"] > 0
    for n in range(2):
        assert (by_id[f"stuck{n}"]["polls"], by_id[f"stuck{n}"]["articles"]) == (0, 0)
