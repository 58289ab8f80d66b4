"""Channel delivery across a kill -9 and a daemon stop (issue 13), with real receivers.

- kill -9 between the receiver's 2xx and the `sent` commit: that one row is sent again
  at the next start, with the same key (at most one repeat); nothing is lost.
- SIGTERM while a receiver hangs: the daemon exits 0 within its stop promise, the row
  stays pending (no attempt counted), and is delivered once after a restart.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import db
from monitor.db import Store
from monitor.models import to_iso
from monitor.pipeline import deliver_route
from tests.support.channels import channel_rows, route, routes_config
from tests.support.crash import REPO, ChildProcess, record_alerts
from tests.support.daemon import CLASH_ITEMS, DaemonProcess, rss, write_deployment
from tests.support.http import FeedServer, Reply
from tests.support.receiver import HANG, Receiver

T0 = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)
STOP_PROMISE_SECONDS = 10.0  # README: "`SIGTERM` stops within 10 seconds"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def test_kill_9_between_the_receivers_200_and_the_commit_repeats_one_row_with_its_key(
    tmp_path: Path, receiver: Receiver
) -> None:
    db_path = tmp_path / "monitor.db"
    hook = route("hook", "webhook", receiver.url("/hook"))
    with Store.open(db_path) as store:
        config = routes_config(db_path, hook)
        decisions = record_alerts(store, config, 3, at=T0)
    keys = [d.dedup_key for d in decisions]
    child = ChildProcess.python(
        "-m", "tests.support.channel_child", str(db_path), hook.url, to_iso(T0), "2", cwd=REPO
    )
    try:
        line = child.wait_for_line("accepted ")
        assert line == f"accepted {keys[1]}"
    finally:
        child.kill()
    with Store.open(db_path) as store:
        assert store.integrity_check() == "ok"
        rows = channel_rows(store)
        assert [(r["status"], r["attempts"]) for r in rows] == [
            ("sent", 1),
            ("pending", 0),  # the receiver has it; the commit never happened
            ("pending", 0),
        ]
        # The next start sends the unconfirmed row again, and the rest once.
        assert deliver_route(store, hook, now=T0).sent == 2
        assert [r["status"] for r in channel_rows(store)] == ["sent"] * 3
    received = [r.json()["key"] for r in receiver.at("/hook")]
    assert received == [keys[0], keys[1], keys[1], keys[2]]
    headers = [r.headers["idempotency-key"] for r in receiver.at("/hook")]
    assert headers == received, "a repeat carries the same key, so a receiver can drop it"
    repeats = {key: received.count(key) for key in keys}
    print(f"\nkill -9 in the 2xx window: deliveries per key {repeats} (the held one repeated once)")
    assert sorted(repeats.values()) == [1, 1, 2]


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.route(
            "/wire.xml", Reply(200, rss(CLASH_ITEMS), (("Content-Type", "application/rss+xml"),))
        )
        yield server


def test_sigterm_while_a_receiver_hangs_exits_within_the_promise_then_delivers_once(
    tmp_path: Path, feed_server: FeedServer, receiver: Receiver
) -> None:
    deployment = write_deployment(
        tmp_path / "deploy", feeds={"wire": feed_server.url("/wire.xml")}, smtp_port=1
    )
    text = deployment.settings.read_text(encoding="utf-8")
    # A timeout longer than the stop promise, as a slow production receiver might need.
    text = text.replace(
        "\n[smtp]",
        f"""
[[routes]]
name = "hook"
channel = "webhook"
url = "{receiver.url("/hook")}"
timeout_seconds = 60

[smtp]""",
        1,
    )
    deployment.settings.write_text(text, encoding="utf-8")
    receiver.script("/hook", [HANG])
    daemon = DaemonProcess(deployment)
    try:
        receiver.wait_for(1, path="/hook", timeout=60)
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        try:
            code = daemon.process.wait(timeout=STOP_PROMISE_SECONDS + 20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {STOP_PROMISE_SECONDS + 20:g} s of SIGTERM")
        elapsed = time.monotonic() - started
        print(f"\nSIGTERM with a webhook receiver hanging: exit {code} in {elapsed:.2f} s")
        assert code == 0, daemon.log()
        assert elapsed < STOP_PROMISE_SECONDS, f"exit took {elapsed:.1f} s:\n{daemon.log()}"
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
        else:
            daemon.stop()
    assert "Traceback" not in daemon.log()
    with db.Store.open(deployment.db, readonly=True) as store:
        rows = channel_rows(store)
    assert rows and all(r["status"] == "pending" for r in rows), rows
    assert rows[0]["attempts"] == 0, "the abandoned send counts no attempt"
    first_key = receiver.at("/hook")[0].json()["key"]

    # Restart with a receiver that answers: every row goes out, once each after the hang.
    receiver.stop()
    receiver.script("/hook", [Reply(200)])
    receiver.start()
    restarted = DaemonProcess(deployment)
    try:
        deadline = time.monotonic() + 60
        while True:
            with db.Store.open(deployment.db, readonly=True) as store:
                rows = channel_rows(store)
            if all(r["status"] == "sent" for r in rows):
                break
            assert time.monotonic() < deadline, f"not delivered: {rows}\n{restarted.log()}"
            time.sleep(0.1)  # polling the database for the daemon's commits, bounded
        assert restarted.stop(timeout=STOP_PROMISE_SECONDS + 20) == 0
    finally:
        if restarted.process.poll() is None:
            restarted.kill()
    received = [r.json()["key"] for r in receiver.at("/hook")]
    assert received[0] == first_key and sorted(set(received)) == sorted(
        r["dedup_key"] for r in rows
    )
    assert len(received) == len(rows) + 1, "only the hung request is repeated"
