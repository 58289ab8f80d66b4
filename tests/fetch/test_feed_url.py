"""The stored feed URL: changed only by a permanent redirect, and never back to an address
the configuration no longer names (a reload that corrects a URL while its fetch is in
flight), then or after a restart."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db, pipeline
from monitor.config import Config, load_config
from monitor.fetch.fetcher import Fetcher
from monitor.fetch.parse_sandbox import ParserPool
from monitor.models import Feed, FetchResult
from tests.support.daemon import CLASH_ITEMS, rss, write_deployment
from tests.support.http import Exchange, FeedServer, Reply

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OLD = Feed(id="wire", url="https://old.example.org/rss", name="Wire")
NEW = Feed(id="wire", url="https://new.example.org/rss", name="Wire")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[db.Store]:
    with db.Store.open(tmp_path / "m.db") as opened:
        yield opened


def poll_result(**fields: object) -> FetchResult:
    values: dict[str, object] = {
        "feed_id": "wire",
        "outcome": "not_modified",
        "fetched_at": NOW,
        "http_status": 304,
    }
    values.update(fields)
    return FetchResult(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "moved_to", [None, "https://old.example.org/moved"], ids=["no-redirect", "permanent-redirect"]
)
def test_a_poll_in_flight_across_a_reload_keeps_the_corrected_url(
    store: db.Store, moved_to: str | None
) -> None:
    store.sync_feeds([OLD], now=NOW)
    [state] = store.due_feeds(now=NOW)  # the poll starts on the old address
    store.sync_feeds([NEW], now=NOW + timedelta(seconds=1))  # SIGHUP corrects it
    new_state = state if moved_to is None else type(state)(**{**_fields(state), "url": moved_to})
    new_state = type(state)(
        **{**_fields(new_state), "etag": '"old"', "next_check_at": NOW + timedelta(hours=1)}
    )
    with store.transaction():
        store.record_poll(
            new_state, poll_result(permanent_url=moved_to, etag='"old"'), None, entries_seen=0
        )
    for _restart in range(2):
        stored = store.feed_state("wire")
        assert stored is not None
        assert stored.url == NEW.url
        assert stored.etag is None  # the old address's validators are not sent to the new one
        assert [s.url for s in store.due_feeds(now=NOW + timedelta(seconds=1))] == [NEW.url]
        store.sync_feeds([NEW], now=NOW + timedelta(seconds=2))  # a restart


def _fields(state: object) -> dict[str, object]:
    return {name: getattr(state, name) for name in state.__dataclass_fields__}  # type: ignore[attr-defined]


def test_a_permanent_redirect_moves_the_url_and_a_temporary_one_does_not(
    store: db.Store,
) -> None:
    store.sync_feeds([OLD], now=NOW)
    [state] = store.due_feeds(now=NOW)
    with store.transaction():
        store.record_poll(state, poll_result(), None, entries_seen=0)
    assert store.feed_state("wire").url == OLD.url  # type: ignore[union-attr]
    moved = type(state)(**{**_fields(state), "url": "https://old.example.org/moved"})
    with store.transaction():
        store.record_poll(
            moved, poll_result(permanent_url="https://old.example.org/moved"), None, entries_seen=0
        )
    assert store.feed_state("wire").url == "https://old.example.org/moved"  # type: ignore[union-attr]


def test_the_real_poll_records_after_a_reload_corrected_the_url(tmp_path: Path) -> None:
    """The daemon's sequence on real parts: the poll fetches the old URL (which answers a
    301, then holds its reply), the reload syncs the corrected URL meanwhile, the poll
    records. The feed stays on the corrected URL, also after a restart."""
    release = threading.Event()

    def held(ex: Exchange) -> None:
        release.wait(60)
        body = rss(CLASH_ITEMS)
        ex.send_head(
            200, (("Content-Type", "application/rss+xml"), ("Content-Length", str(len(body))))
        )
        ex.write(body)

    with FeedServer() as server:
        server.route("/old.xml", Reply(301, b"", (("Location", server.url("/moved.xml")),)))
        server.script("/moved.xml", held)
        server.route(
            "/new.xml", Reply(200, rss(CLASH_ITEMS), (("Content-Type", "application/rss+xml"),))
        )
        old = configure(tmp_path / "old", {"wire": server.url("/old.xml")})
        new = configure(
            tmp_path / "new", {"wire": server.url("/new.xml")}, db_path=old.settings.db_path
        )

        async def scenario() -> None:
            with db.Store.open(old.settings.db_path) as store:
                now = datetime.now(UTC)
                store.sync_feeds(old.feeds, now=now)
                parsers = ParserPool.for_settings(old.settings.http)
                try:
                    async with Fetcher(old.settings.http) as fetcher:
                        poll = asyncio.create_task(
                            pipeline.poll_feeds(
                                store, old, fetcher, parsers, now=now, rng=random.Random(1)
                            )
                        )
                        deadline = time.monotonic() + 30
                        while not server.hits("/moved.xml"):
                            assert time.monotonic() < deadline, "the fetch never reached /moved.xml"
                            await asyncio.sleep(0.02)
                        store.sync_feeds(new.feeds, now=datetime.now(UTC))  # the SIGHUP
                        release.set()
                        summary = await asyncio.wait_for(poll, timeout=60)
                finally:
                    parsers.close()
                assert summary.feeds == 1
                assert store.feed_state("wire").url == server.url("/new.xml")  # type: ignore[union-attr]
            with db.Store.open(old.settings.db_path) as restarted:
                restarted.sync_feeds(new.feeds, now=datetime.now(UTC))
                [due] = restarted.due_feeds(now=datetime.now(UTC))
                assert due.url == server.url("/new.xml")

        asyncio.run(scenario())


def configure(folder: Path, feeds: dict[str, str], *, db_path: Path | None = None) -> Config:
    deployment = write_deployment(folder, feeds=feeds, smtp_port=1)
    return load_config(
        settings_path=deployment.settings,
        indicators_path=deployment.indicators,
        db_path=db_path or deployment.db,
        env={},
    )
