"""One border clash reported in English and in Russian, the feeds that carry it, and a
poll of them recorded the way the writer records one (`pipeline.record_feed_result`):
shared by `tests/db/test_cross_language.py` and `tests/db/test_fts_index.py`."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from monitor import db, pipeline
from monitor.config import Config, load_config
from monitor.models import Entry, Feed, FetchResult, ParseResult

WIRE = Feed(id="wire", url="https://wire.example/rss", name="Wire", language="en")
NEWS = Feed(id="news", url="https://news.example/rss", name="Новости", language="ru")
OTHER = Feed(id="other", url="https://other.example/rss", name="Other Wire", language="en")

CLASH_EN = (
    "Kyrgyz and Tajik border troops exchange fire near Batken",
    "Kyrgyz and Tajik border guards exchanged fire near Batken and Isfara on Friday, "
    "officials in Bishkek said. Two soldiers were killed.",
)
CLASH_RU = (
    "Кыргызские и таджикские пограничники открыли огонь у Баткена",
    "Кыргызские и таджикские пограничники в пятницу обменялись огнем у Баткена и Исфары, "
    "сообщили в Бишкеке. Погибли двое военнослужащих.",
)


def config_with(*feeds: Feed) -> Config:
    """The built-in configuration (the shipped rules) watching `feeds`."""
    return replace(load_config(indicators_path=None, settings_path=None, env={}), feeds=feeds)


@contextmanager
def store_for(path: Path, config: Config, *, now: datetime) -> Iterator[db.Store]:
    """A new database at `path` that knows the configuration's feeds."""
    with db.Store.open(path) as store:
        store.sync_feeds(list(config.feeds), now=now)
        yield store


def record_poll(
    store: db.Store, config: Config, feed: Feed, entries: Sequence[Entry], *, now: datetime
) -> pipeline.PollSummary:
    """Record one successful poll of `feed` bringing `entries` (matched here)."""
    state = store.feed_state(feed.id)
    assert state is not None
    summary = pipeline.PollSummary()
    pipeline.record_feed_result(
        store,
        config,
        feed,
        state,
        FetchResult(feed_id=feed.id, outcome="ok", fetched_at=now, http_status=200),
        ParseResult(entries=tuple(entries), status="ok"),
        now=now,
        rng=random.Random(0),
        summary=summary,
    )
    return summary
