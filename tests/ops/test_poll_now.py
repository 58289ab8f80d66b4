"""`monitor poll-now`: feeds made due now, picked up by the next `run --once` (and by a
running daemon's next poll tick, which takes the due feeds from the same column)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import db
from tests.ops.support import REPO, clean_env, monitor, one_error_line
from tests.support.cli import build_database
from tests.support.daemon import CLASH_ITEMS, DaemonProcess, Deployment, rss, write_indicators
from tests.support.http import FeedServer, Reply


def write_settings(folder: Path) -> Path:
    settings = folder / "monitor.toml"
    settings.write_text(
        f"""
database_path = "{folder / "monitor.db"}"
maildir = "{folder / "mail"}"

[http]
allow_private_networks = ["127.0.0.0/8"]
per_host_min_interval_seconds = 0.0

[schedule]
default_feed_interval_seconds = 3600
""",
        encoding="utf-8",
    )
    return settings


def run_once(settings: Path, indicators: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in clean_env().items() if v is not None}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(settings),
            "--indicators",
            str(indicators),
            "run",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )


def test_a_feed_made_due_is_polled_by_the_next_run_once(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.route(
            "/wire.xml", Reply(200, rss(CLASH_ITEMS), (("Content-Type", "application/rss+xml"),))
        )
        server.route(
            "/other.xml",
            Reply(200, rss(CLASH_ITEMS[:1]), (("Content-Type", "application/rss+xml"),)),
        )
        settings = write_settings(tmp_path)
        indicators = tmp_path / "indicators.yaml"
        write_indicators(
            indicators, {"wire": server.url("/wire.xml"), "other": server.url("/other.xml")}
        )
        first = run_once(settings, indicators)
        assert first.returncode == 0, first.stderr
        assert len(server.hits("/wire.xml")) == 1
        # an hour's interval: a second round polls nothing
        second = run_once(settings, indicators)
        assert second.returncode == 0 and "polled 0 feeds" in second.stdout, second.stdout
        ran = monitor(
            "--config", str(settings), "--indicators", str(indicators), "poll-now", "wire"
        )
        assert ran.code == 0, ran.err
        assert ran.out.startswith("due now: wire; a running daemon polls it within 60 s")
        third = run_once(settings, indicators)
        assert third.returncode == 0 and "polled 1 feeds" in third.stdout, third.stdout
        assert len(server.hits("/wire.xml")) == 2
        assert len(server.hits("/other.xml")) == 1


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = build_database(tmp_path / "m.db")  # one feed, "wire" (Border Wire), last due in 2022
    with db.Store.open(path) as store:
        store.sync_feeds(
            [*_feeds()],
            now=datetime(2099, 1, 1, tzinfo=UTC),  # the new one is due far in the future
        )
    return path


def _feeds():  # type: ignore[no-untyped-def]
    from monitor.models import Feed
    from tests.support.cli import FEED

    return [FEED, Feed(id="later", url="https://later.example/rss", name="Later News")]


def next_checks(path: Path) -> dict[str, datetime | None]:
    with db.Store.open(path, readonly=True) as store:
        return {
            feed.id: state.next_check_at
            for feed in _feeds()
            if (state := store.feed_state(feed.id)) is not None
        }


@pytest.mark.parametrize("key", ["later", "Later News", "https://LATER.example/rss/"])
def test_a_feed_is_named_by_id_name_or_url(database: Path, key: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    ran = monitor("--db", str(database), "poll-now", key)
    assert ran.code == 0, ran.err
    due = next_checks(database)["later"]
    assert due is not None and before <= due <= datetime.now(UTC)


def test_all_makes_every_configured_feed_due(database: Path) -> None:
    ran = monitor("--db", str(database), "poll-now", "--all")
    assert ran.code == 0 and ran.out.startswith("due now: later, wire; a running daemon polls them")
    now = datetime.now(UTC)
    assert all(due is not None and due <= now for due in next_checks(database).values())


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["nowhere"], "no feed 'nowhere' (give an id, a URL or a name; ids: later, wire)"),
        ([], "give one or more feeds, or --all (not both)"),
        (["wire", "--all"], "give one or more feeds, or --all (not both)"),
    ],
)
def test_refusals_change_nothing(database: Path, args: list[str], reason: str) -> None:
    before = next_checks(database)
    ran = monitor("--db", str(database), "poll-now", *args)
    assert ran.code == 2
    assert reason in ran.err
    assert next_checks(database) == before


def test_no_database_is_one_line(tmp_path: Path) -> None:
    ran = monitor("--db", str(tmp_path / "none.db"), "poll-now", "--all")
    assert ran.code == 1
    assert "no database here yet" in one_error_line(ran)
    assert not (tmp_path / "none.db").exists()


def test_feeds_lists_each_feeds_name_and_url(database: Path) -> None:
    ran = monitor("--db", str(database), "feeds")
    assert ran.code == 0, ran.err
    header, *rows = [
        line for line in ran.out.splitlines() if line.strip() and set(line) - set("- ")
    ]
    assert header.split()[:4] == ["id", "name", "url", "status"]
    assert any("Border Wire" in row and "https://wire.example/rss" in row for row in rows)
    assert any("Later News" in row and "https://later.example/rss" in row for row in rows)
    as_json = monitor("--db", str(database), "feeds", "--format", "json")
    assert (
        '"name": "Border Wire"' in as_json.out
        and '"url": "https://wire.example/rss"' in as_json.out
    )


def wait_for_hits(server: FeedServer, path: str, count: int, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(server.hits(path)) < count:
        assert time.monotonic() < deadline, f"{path}: {len(server.hits(path))} hits, not {count}"
        time.sleep(0.1)


def test_a_running_daemon_polls_a_feed_made_due_and_adds_one_on_reload(tmp_path: Path) -> None:
    """The operator's loop: `poll-now` reaches the daemon at its next tick, and a feed
    added with `feeds add` is polled after `systemctl reload` (SIGHUP)."""
    with FeedServer() as server:
        for path in ("/wire.xml", "/added.xml"):
            server.route(
                path, Reply(200, rss(CLASH_ITEMS), (("Content-Type", "application/rss+xml"),))
            )
        settings = write_settings(tmp_path)
        with settings.open("a", encoding="utf-8") as handle:
            handle.write("poll_tick_seconds = 1\n")
        indicators = tmp_path / "indicators.yaml"
        write_indicators(indicators, {"wire": server.url("/wire.xml")})
        deployment = Deployment(tmp_path, settings, indicators, tmp_path / "monitor.db")
        env = {k: v for k, v in clean_env().items() if v is not None}
        daemon = DaemonProcess(deployment, env=env)
        try:
            wait_for_hits(server, "/wire.xml", 1)
            daemon.wait_for_log("poll cycle")
            ran = monitor("--config", str(settings), "poll-now", "wire")
            assert ran.code == 0, ran.err
            assert "within 1 s" in ran.out
            wait_for_hits(server, "/wire.xml", 2)

            added = monitor(
                "--config",
                str(settings),
                "--indicators",
                str(indicators),
                "feeds",
                "add",
                server.url("/added.xml"),
                "--name",
                "Added",
            )
            assert added.code == 0, added.err
            assert "systemctl reload monitor" in added.out
            daemon.signal(signal.SIGHUP)
            wait_for_hits(server, "/added.xml", 1)
            assert daemon.stop(timeout=30) == 0
        finally:
            if daemon.process.poll() is None:
                daemon.kill()
        assert "Traceback" not in daemon.log()
