"""Fixtures every test folder shares: real servers on loopback.

Helpers that are not fixtures (servers with knobs, deployment writers, corpora) live in
`tests/support/`; a folder's own fixtures live in its test modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.lab.mailsink import MailSink
from tests.support.daemon import CLASH_ITEMS, rss
from tests.support.http import FeedServer, Reply


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """An HTTP server on 127.0.0.1 with no routes yet (`server.route(path, Reply(...))`)."""
    with FeedServer() as feed_server:
        yield feed_server


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """An HTTP server on 127.0.0.1 serving `/wire.xml`: an RSS feed of border-clash items."""
    with FeedServer() as running:
        running.route(
            "/wire.xml", Reply(200, rss(CLASH_ITEMS), (("Content-Type", "application/rss+xml"),))
        )
        yield running


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives."""
    with MailSink(tmp_path / "mail") as running:
        yield running
