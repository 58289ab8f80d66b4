"""Stopping and killing the real daemon (`monitor run`) while the mail server misbehaves.

Issue 11, section 2: SIGTERM while the SMTP server holds its reply to DATA. The daemon must
keep its promise (exit 0 within 10 s; README, systemd's TimeoutStopSec=15), leave the message
unsent, and send it exactly once after a restart.
Issue 11, section 3: the row is committed `sent` right after the server's 250, before the
reply to QUIT; a kill -9 while QUIT is unanswered does not send the message again.

Real parts: the daemon as a subprocess, a local feed server, aiosmtpd on 127.0.0.1, the
SQLite file read from the test's own connection. Every wait is bounded.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import time
from pathlib import Path

import pytest

from monitor import db
from monitor.lab.mailsink import MailSink
from tests.support.crash import WAIT, message_id_of
from tests.support.daemon import DaemonProcess, Deployment, write_deployment
from tests.support.http import FeedServer
from tests.support.smtp import SlowQuitHandler, StallingHandler

STOP_PROMISE_SECONDS = 10.0  # README: "`SIGTERM` stops within 10 seconds"
SMTP_TIMEOUT_SECONDS = 30.0  # the default: longer than the promise, as in production


def _deployment(folder: Path, feed_server: FeedServer, smtp_port: int) -> Deployment:
    deployment = write_deployment(
        folder, feeds={"wire": feed_server.url("/wire.xml")}, smtp_port=smtp_port
    )
    text = deployment.settings.read_text(encoding="utf-8")
    assert "timeout_seconds = 5.0" in text
    deployment.settings.write_text(
        text.replace("timeout_seconds = 5.0", f"timeout_seconds = {SMTP_TIMEOUT_SECONDS}"),
        encoding="utf-8",
    )
    return deployment


def _outbox(deployment: Deployment) -> list[dict[str, object]]:
    with db.Store.open(deployment.db, readonly=True) as store:
        return store.query("SELECT message_id, status, attempts, last_error FROM outbox")


def _wait(condition: object, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.05)


def test_sigterm_while_the_server_holds_its_reply_to_data_exits_0_within_10_s_then_sends_once(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    with MailSink(tmp_path / "mail", handler_factory=StallingHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, StallingHandler)
        deployment = _deployment(tmp_path / "deploy", feed_server, sink.port)
        daemon = DaemonProcess(deployment)
        try:
            assert handler.stalled.wait(WAIT), f"no DATA reached the server:\n{daemon.log()}"
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            try:
                code = daemon.process.wait(timeout=STOP_PROMISE_SECONDS + 20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"no exit within {STOP_PROMISE_SECONDS + 20:g} s of SIGTERM")
            elapsed = time.monotonic() - started
            print(
                f"\nSIGTERM with the SMTP server stalled after DATA: exit {code} in {elapsed:.2f} s"
            )
            assert code == 0, daemon.log()
            assert elapsed < STOP_PROMISE_SECONDS, f"exit took {elapsed:.1f} s:\n{daemon.log()}"
        finally:
            if daemon.process.poll() is None:
                daemon.kill()
            else:
                daemon.stop()
        log = daemon.log()
        assert "Traceback" not in log
        assert "delivery interrupted" in log
        [row] = _outbox(deployment)
        assert (row["status"], row["attempts"]) == ("pending", 0), row
        assert sink.received() == [], "the stalled copy was never accepted"

        # Restart: the server now accepts; the message goes out exactly once.
        restarted = DaemonProcess(deployment)
        try:
            [received] = sink.wait_for(1, timeout=WAIT)
            restarted.wait_for_log("outbox sent=1")
            assert restarted.stop(timeout=STOP_PROMISE_SECONDS + 20) == 0
        finally:
            if restarted.process.poll() is None:
                restarted.kill()
        assert len(sink.received()) == 1
    [row] = _outbox(deployment)
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert message_id_of(received.raw) == row["message_id"]
    assert handler.data_attempts == 2


def test_kill_9_while_quit_is_unanswered_does_not_send_the_message_again(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    holding = functools.partial(SlowQuitHandler, hold_seconds=WAIT)
    with MailSink(tmp_path / "mail", handler_factory=holding) as sink:
        handler = sink.handler
        assert isinstance(handler, SlowQuitHandler)
        deployment = _deployment(tmp_path / "deploy", feed_server, sink.port)
        daemon = DaemonProcess(deployment)
        try:
            assert handler.quit_received.wait(WAIT), f"no QUIT reached the server:\n{daemon.log()}"
            # read from another connection while the daemon still waits for QUIT's reply
            [row] = _outbox(deployment)
            assert (row["status"], row["attempts"]) == ("sent", 1), row
            daemon.kill()  # SIGKILL with QUIT unanswered
        finally:
            if daemon.process.poll() is None:
                daemon.kill()
            handler.release()
        assert len(sink.received()) == 1

        # The next start (a one-shot round: poll, score, drain the outbox) sends nothing.
        again = subprocess.run(
            deployment.args("run", "--once"), capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert "sent 0" in again.stdout, again.stdout
        assert len(sink.received()) == 1
    [row] = _outbox(deployment)
    assert row["status"] == "sent"
    assert message_id_of(sink.received()[0].raw) == row["message_id"]
