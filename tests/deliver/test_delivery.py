"""Alert delivery from the outbox (`pipeline.deliver_outbox`) against a real aiosmtpd server on
127.0.0.1 and a real SQLite file; alerts are recorded with `pipeline.record_alert`, as scoring
records them. The clock is passed in: a retry is reached by moving `now` past the row's
`next_attempt_at`, never by sleeping.

Reliability guide tests 24 (outages: refused, 421, silence, 451), 25 (permanent failures,
no head-of-line blocking), 30 (hang after DATA) and the stable Message-ID of decision 6;
issue 11: a stalled send woken by the stop path, and `sent` committed before QUIT's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import mailbox
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.config import Config
from monitor.db import Store
from monitor.deliver.email_message import message_id_for
from monitor.deliver.smtp import DeliveryStop
from monitor.lab.mailsink import MailSink
from monitor.models import from_iso
from monitor.service.daemon import Daemon
from tests.support.crash import (
    RECIPIENT,
    SENDER,
    WAIT,
    BrokenSmtpServer,
    HoldingHandler,
    StagedFaults,
    alert_decision,
    delivery_config,
    message_id_of,
    outbox_rows,
    received_ids,
    record_alerts,
    same_message,
    staged,
)
from tests.support.http import refused_port
from tests.support.smtp import SlowQuitHandler, StallingHandler

T0 = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)
SHORT_TIMEOUT = 0.5  # seconds: how long the silence and hang cases wait, once per attempt


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "monitor.db") as opened:
        yield opened


# ---------------------------------------------------------------------------
# Normal delivery


def test_each_alert_is_delivered_once_with_its_stable_message_id(
    store: Store, tmp_path: Path
) -> None:
    with MailSink(tmp_path / "mail") as sink:
        config = delivery_config(Path(store.path), sink.port)
        decisions = record_alerts(store, config, 3, at=T0)
        summary = pipeline.deliver_outbox(store, config, now=T0, rng=random.Random(1))
        assert summary.as_dict() == {"sent": 3, "retried": 0, "dead": 0}
        received = sink.wait_for(3)
        again = pipeline.deliver_outbox(store, config, now=T0 + timedelta(days=1))
        assert again.as_dict() == {"sent": 0, "retried": 0, "dead": 0}
        assert len(sink.received()) == 3, "a sent row must never be sent again"
    rows = outbox_rows(store)
    domain = SENDER.rpartition("@")[2]
    assert [row["dedup_key"] for row in rows] == [d.dedup_key for d in decisions]
    assert received_ids(received) == [row["message_id"] for row in rows]
    for row, message in zip(rows, received, strict=True):
        assert row["message_id"] == message_id_for(row["dedup_key"], domain=domain)
        assert (row["status"], row["attempts"], row["sent_at"]) == (
            "sent",
            1,
            "2024-09-14T08:30:00Z",
        )
        assert message.rcpt_tos == (RECIPIENT,) and message.mail_from == SENDER
        assert same_message(row["message"], message.raw), "the stored bytes are what was sent"


def test_a_row_is_not_sent_before_its_time(store: Store, tmp_path: Path) -> None:
    with MailSink(tmp_path / "mail") as sink:
        config = delivery_config(Path(store.path), sink.port)
        record_alerts(store, config, 1, at=T0)
        early = pipeline.deliver_outbox(store, config, now=T0 - timedelta(seconds=1))
        assert early.as_dict() == {"sent": 0, "retried": 0, "dead": 0}
        assert sink.received() == []
        assert pipeline.deliver_outbox(store, config, now=T0).sent == 1
        sink.wait_for(1)


# ---------------------------------------------------------------------------
# Outages: K failed attempts, then the server is back


@dataclass
class Outage:
    """A port that fails the way `kind` says; `recover()` puts a good server on it."""

    kind: str
    port: int
    stack: contextlib.ExitStack
    sink: MailSink | None = None  # data-451: the faulty server that later accepts

    def recover(self, directory: Path) -> MailSink:
        if self.sink is not None:
            return self.sink  # it accepts once its K failures are used up
        self.stack.close()  # the broken server goes away; a good one takes its port
        self.sink = self.stack.enter_context(MailSink(directory, port=self.port))
        return self.sink


@contextlib.contextmanager
def outage(kind: str, directory: Path, failures: int) -> Iterator[Outage]:
    with contextlib.ExitStack() as stack:
        if kind == "refused":
            yield Outage(kind, refused_port(), stack)
        elif kind == "greeting-421":
            raw = BrokenSmtpServer(b"421 4.3.2 Service not available, closing channel\r\n")
            yield Outage(kind, stack.enter_context(raw).port, stack)
        elif kind == "silent-greeting":
            yield Outage(kind, stack.enter_context(BrokenSmtpServer(None)).port, stack)
        elif kind == "data-451":
            faulty = MailSink(directory, handler_factory=staged(stage="data", times=failures))
            sink = stack.enter_context(faulty)
            yield Outage(kind, sink.port, stack, sink)
        else:  # pragma: no cover
            raise ValueError(kind)


OUTAGES = {
    "refused": "cannot reach SMTP server",
    "greeting-421": "421",
    "silent-greeting": f"did not answer within {SHORT_TIMEOUT:g} s",
    "data-451": "451",
}


@pytest.mark.parametrize("failures", [1, 3], ids=["K=1", "K=3"])
@pytest.mark.parametrize("kind", list(OUTAGES))
def test_outage_then_recovery_delivers_exactly_once_with_growing_backoff(
    store: Store, tmp_path: Path, kind: str, failures: int
) -> None:
    rng = random.Random(24)
    with outage(kind, tmp_path / "mail", failures) as broken:
        config = delivery_config(Path(store.path), broken.port, timeout=SHORT_TIMEOUT)
        record_alerts(store, config, 1, at=T0)
        [row] = outbox_rows(store)
        stored = row["message"]
        now = T0
        delays: list[float] = []
        for attempt in range(1, failures + 1):
            summary = pipeline.deliver_outbox(store, config, now=now, rng=rng)
            assert summary.as_dict() == {"sent": 0, "retried": 1, "dead": 0}
            [row] = outbox_rows(store)
            assert row["status"] == "pending" and row["attempts"] == attempt
            assert OUTAGES[kind] in row["last_error"]
            next_at = from_iso(row["next_attempt_at"])
            delays.append((next_at - now).total_seconds())
            # not due a second early: nothing is attempted
            idle = pipeline.deliver_outbox(store, config, now=next_at - timedelta(seconds=1))
            assert idle.as_dict() == {"sent": 0, "retried": 0, "dead": 0}
            assert outbox_rows(store)[0]["attempts"] == attempt
            now = next_at
        sink = broken.recover(tmp_path / "mail")
        summary = pipeline.deliver_outbox(store, config, now=now, rng=rng)
        assert summary.as_dict() == {"sent": 1, "retried": 0, "dead": 0}
        [delivered] = sink.wait_for(1)
        assert pipeline.deliver_outbox(store, config, now=now + timedelta(days=2)).sent == 0
        assert len(sink.received()) == 1, "delivered exactly once"
    [row] = outbox_rows(store)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", failures + 1, None)
    assert row["sent_at"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert delays == sorted(delays) and len(set(delays)) == len(delays), f"backoff {delays}"
    assert delays[0] > 0
    assert row["message"] == stored, "a retry sends the very bytes recorded with the alert"
    assert message_id_of(delivered.raw) == row["message_id"]
    if kind == "data-451":
        assert isinstance(sink.handler, StagedFaults)
        attempts = sink.handler.data_attempts
        assert len(attempts) == failures + 1
        assert {message_id_of(raw) for raw in attempts} == {row["message_id"]}
        assert len(set(attempts)) == 1, "every attempt carried byte-identical content"


# ---------------------------------------------------------------------------
# Permanent failures, and no head-of-line blocking


@pytest.mark.parametrize(
    ("stage", "reply", "status", "error"),
    [
        pytest.param("data", "550 5.7.1 Message rejected as spam", "dead", "550", id="data-550"),
        pytest.param(
            "rcpt", "550 5.1.1 No such user", "dead", "refused all recipients", id="rcpt-550"
        ),
        pytest.param("mail", "553 5.1.8 Sender address rejected", "dead", "553", id="mail-553"),
        pytest.param(
            "data", "452 4.3.1 Insufficient storage", "pending", "452", id="data-452-retried"
        ),
    ],
)
def test_a_failing_message_never_blocks_the_next(
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    stage: str,
    reply: str,
    status: str,
    error: str,
) -> None:
    caplog.set_level(logging.INFO, logger="monitor")
    with MailSink(
        tmp_path / "mail", handler_factory=staged(stage=stage, reply=reply, times=1)
    ) as sink:
        config = delivery_config(Path(store.path), sink.port)
        first, second = record_alerts(store, config, 2, at=T0)
        summary = pipeline.deliver_outbox(store, config, now=T0, rng=random.Random(25))
        assert summary.sent == 1 and summary.dead + summary.retried == 1
        [received] = sink.wait_for(1)
        rows = {row["dedup_key"]: row for row in outbox_rows(store)}
        later = pipeline.deliver_outbox(store, config, now=T0 + timedelta(days=1))
        handler = sink.handler
        assert isinstance(handler, StagedFaults)
    failed, delivered = rows[first.dedup_key], rows[second.dedup_key]
    assert (failed["status"], failed["attempts"]) == (status, 1)
    assert error in failed["last_error"]
    assert (delivered["status"], delivered["attempts"]) == ("sent", 1)
    assert message_id_of(received.raw) == delivered["message_id"]
    permanent = [r for r in caplog.records if "failed permanently" in r.getMessage()]
    if status == "dead":
        assert later.as_dict() == {"sent": 0, "retried": 0, "dead": 0}, "a dead row is not retried"
        assert handler.sessions == 2
        assert len(permanent) == 1 and permanent[0].levelno == logging.ERROR
        assert str(failed["id"]) in permanent[0].getMessage()
    else:
        assert permanent == []
        assert failed["next_attempt_at"] > "2024-09-14T08:30:00Z"
        assert later.as_dict() == {"sent": 1, "retried": 0, "dead": 0}, "retried, then sent"
        assert len(sink.received()) == 2


def test_a_render_failure_is_dead_at_once_and_the_next_alert_still_goes(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with MailSink(tmp_path / "mail") as sink:
        good = delivery_config(Path(store.path), sink.port)
        broken = replace(
            good,
            settings=replace(good.settings, smtp=replace(good.settings.smtp, sender="no address")),
        )
        with store.transaction():
            assert pipeline.record_alert(store, broken, alert_decision(1, T0), now=T0) is not None
        record_alerts(store, good, 1, at=T0, first=2)
        summary = pipeline.deliver_outbox(store, good, now=T0)
        [received] = sink.wait_for(1)
    assert summary.as_dict() == {"sent": 1, "retried": 0, "dead": 0}
    dead, sent = outbox_rows(store)
    assert dead["status"] == "dead" and dead["last_error"].startswith("render_error")
    assert sent["status"] == "sent" and message_id_of(received.raw) == sent["message_id"]
    assert any("render failed" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# A server that hangs after DATA


def test_hang_after_data_times_out_and_the_row_is_retried_later(
    store: Store, tmp_path: Path
) -> None:
    with MailSink(
        tmp_path / "mail", handler_factory=staged(stage="hang", times=1, hang_seconds=60)
    ) as sink:
        config = delivery_config(Path(store.path), sink.port, timeout=SHORT_TIMEOUT)
        record_alerts(store, config, 1, at=T0)
        started = time.monotonic()
        summary = pipeline.deliver_outbox(store, config, now=T0, rng=random.Random(30))
        waited = time.monotonic() - started
        assert summary.as_dict() == {"sent": 0, "retried": 1, "dead": 0}
        # bounded by the configured timeout, not by the server (which would hang for 60 s)
        assert SHORT_TIMEOUT <= waited < 30
        [row] = outbox_rows(store)
        assert row["status"] == "pending" and row["attempts"] == 1
        assert f"did not answer within {SHORT_TIMEOUT:g} s" in row["last_error"]
        retry_at = from_iso(row["next_attempt_at"])
        assert retry_at > T0
        assert pipeline.deliver_outbox(store, config, now=retry_at - timedelta(seconds=1)).sent == 0
        assert pipeline.deliver_outbox(store, config, now=retry_at).sent == 1
        [received] = sink.wait_for(1)
        handler = sink.handler
        assert isinstance(handler, StagedFaults)
    [row] = outbox_rows(store)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    # the server dropped the hung copy when we hung up: one message, the same ID both times
    assert len(sink.received()) == 1
    assert [message_id_of(raw) for raw in handler.data_attempts] == [row["message_id"]] * 2
    assert message_id_of(received.raw) == row["message_id"]


def test_alerts_recorded_together_are_all_delivered_across_outages(
    store: Store, tmp_path: Path
) -> None:
    """Figures: A alerts, K outage attempts each, delivered exactly once, max attempts/delay."""
    rng = random.Random(2024)
    count, failures = 12, 3
    with MailSink(
        tmp_path / "mail", handler_factory=staged(stage="data", times=count * failures)
    ) as sink:
        config = delivery_config(Path(store.path), sink.port)
        record_alerts(store, config, count, at=T0)
        now = T0
        for _ in range(failures + 2):
            pipeline.deliver_outbox(store, config, now=now, rng=rng)
            pending = [r for r in outbox_rows(store) if r["status"] == "pending"]
            if not pending:
                break
            now = max(from_iso(r["next_attempt_at"]) for r in pending)
        received = sink.wait_for(count)
    rows = outbox_rows(store)
    assert [r["status"] for r in rows] == ["sent"] * count
    assert sorted(received_ids(received)) == sorted(r["message_id"] for r in rows)
    assert len(received) == count, "no duplicates"
    max_attempts = max(r["attempts"] for r in rows)
    max_delay = max(from_iso(r["sent_at"]) - T0 for r in rows)
    assert max_attempts == failures + 1
    print(
        f"\ndelivery: {count} alerts delivered exactly once across {failures} refused DATA "
        f"attempts each; max attempts {max_attempts}, max delay {max_delay}; duplicates 0; lost 0"
    )


# ---------------------------------------------------------------------------
# Two drains at once (the daemon's scheduled outbox job and poll/score's direct call)


def test_overlapping_outbox_jobs_send_each_message_once(store: Store, tmp_path: Path) -> None:
    with MailSink(tmp_path / "mail", handler_factory=HoldingHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, HoldingHandler)
        config = delivery_config(Path(store.path), sink.port)
        record_alerts(store, config, 1, at=T0)
        daemon = Daemon(config, clock=lambda: T0)
        daemon.store = store

        async def overlapping() -> None:
            handler.arm()  # the first job's send waits at the server for its 250
            first = asyncio.create_task(daemon.outbox_job())
            assert await asyncio.to_thread(handler.stored.wait, WAIT)
            second = asyncio.create_task(daemon.outbox_job())  # e.g. poll_job's own call
            try:
                # a second copy would arrive at once; with the drains serialised none comes
                await asyncio.to_thread(sink.wait_for, 2, 1.0)
            except TimeoutError:
                pass
            finally:
                handler.release()
            await asyncio.gather(first, second)

        asyncio.run(overlapping())
        received = sink.received()
    [row] = outbox_rows(store)
    assert row["status"] == "sent"
    assert received_ids(received) == [row["message_id"]], "sent twice by two overlapping drains"


def test_maildir_copy_is_written_once_however_many_smtp_attempts(
    store: Store, tmp_path: Path
) -> None:
    port = refused_port()
    config = delivery_config(Path(store.path), port)
    config = replace(config, settings=replace(config.settings, maildir=tmp_path / "Maildir"))
    record_alerts(store, config, 1, at=T0)
    now = T0
    for _ in range(2):  # two attempts while the server is down
        assert pipeline.deliver_outbox(store, config, now=now).retried == 1
        now = from_iso(outbox_rows(store)[0]["next_attempt_at"])
    with MailSink(tmp_path / "mail", port=port) as sink:
        assert pipeline.deliver_outbox(store, config, now=now).sent == 1
        sink.wait_for(1)
    copies = list(mailbox.Maildir(tmp_path / "Maildir", create=False))
    assert len(copies) == 1, f"{len(copies)} Maildir copies of one alert"


# ---------------------------------------------------------------------------
# Stopping: a send the server stalls is woken by the stop path (issue 11, section 2)


def _drain_in_thread(
    db_path: Path, config: Config, *, stop: DeliveryStop | None = None
) -> tuple[threading.Thread, dict[str, pipeline.DeliverySummary]]:
    """Run `deliver_outbox` in a thread, with its own connection, as the daemon does."""
    result: dict[str, pipeline.DeliverySummary] = {}

    def drain() -> None:
        with Store.open(db_path, migrate=False) as own:
            if stop is None:
                result["summary"] = pipeline.deliver_outbox(own, config, now=T0)
            else:
                result["summary"] = pipeline.deliver_outbox(own, config, now=T0, stop=stop)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread, result


def test_an_interrupt_wakes_a_send_the_server_stalls_and_leaves_the_row_due(
    store: Store, tmp_path: Path
) -> None:
    with MailSink(tmp_path / "mail", handler_factory=StallingHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, StallingHandler)
        # a timeout far beyond the test's wait: only the interrupt can end the send in time
        config = delivery_config(Path(store.path), sink.port, timeout=600.0)
        record_alerts(store, config, 2, at=T0)
        stop = DeliveryStop()
        thread, result = _drain_in_thread(Path(store.path), config, stop=stop)
        assert handler.stalled.wait(WAIT), "the first message never reached DATA"
        stop.interrupt()
        thread.join(WAIT)
        assert not thread.is_alive(), "the interrupt did not wake the stalled send"
        assert result["summary"].as_dict() == {"sent": 0, "retried": 0, "dead": 0}
        assert handler.data_attempts == 1, "no new message starts after the interrupt"
        rows = outbox_rows(store)
        # not a failure of the message: still due now, no attempt counted, no backoff
        assert [(r["status"], r["attempts"], r["last_error"]) for r in rows] == [
            ("pending", 0, None)
        ] * 2
        assert all(from_iso(r["next_attempt_at"]) <= T0 for r in rows)
        assert pipeline.deliver_outbox(store, config, now=T0).sent == 2
        received = sink.wait_for(2)
    assert sorted(received_ids(received)) == sorted(r["message_id"] for r in rows)
    assert len(sink.received()) == 2, "the stalled copy was dropped: each message arrived once"


def test_after_a_stop_request_no_new_message_is_started(store: Store, tmp_path: Path) -> None:
    with MailSink(tmp_path / "mail") as sink:
        config = delivery_config(Path(store.path), sink.port)
        record_alerts(store, config, 2, at=T0)
        stop = DeliveryStop()
        stop.stop()
        summary = pipeline.deliver_outbox(store, config, now=T0, stop=stop)
        assert summary.as_dict() == {"sent": 0, "retried": 0, "dead": 0}
        assert [r["status"] for r in outbox_rows(store)] == ["pending", "pending"]
        assert pipeline.deliver_outbox(store, config, now=T0).sent == 2
        sink.wait_for(2)


# ---------------------------------------------------------------------------
# The duplicate window: `sent` is committed after the 250, before QUIT (issue 11, section 3)


def test_each_message_is_marked_sent_while_the_quit_reply_is_still_pending(
    store: Store, tmp_path: Path
) -> None:
    with MailSink(tmp_path / "mail", handler_factory=SlowQuitHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, SlowQuitHandler)
        config = delivery_config(Path(store.path), sink.port)
        record_alerts(store, config, 2, at=T0)
        thread, result = _drain_in_thread(Path(store.path), config)
        try:
            assert handler.quit_received.wait(WAIT), "no QUIT reached the server"
            # another connection, as a kill -9 at this moment would leave the file
            with Store.open(store.path, readonly=True) as reader:
                during_quit = [(r["status"], r["attempts"]) for r in outbox_rows(reader)]
            assert during_quit == [("sent", 1), ("sent", 1)]
        finally:
            handler.release()
            thread.join(WAIT)
        assert not thread.is_alive()
        assert result["summary"].as_dict() == {"sent": 2, "retried": 0, "dead": 0}
        received = sink.wait_for(2)
    assert handler.quits == 1, "one session for the round, one QUIT"
    assert len(received) == 2


def test_a_quit_that_is_never_answered_does_not_undo_sent(store: Store, tmp_path: Path) -> None:
    with MailSink(
        tmp_path / "mail", handler_factory=functools.partial(SlowQuitHandler, hold_seconds=WAIT)
    ) as sink:
        handler = sink.handler
        assert isinstance(handler, SlowQuitHandler)
        config = delivery_config(Path(store.path), sink.port, timeout=SHORT_TIMEOUT)
        record_alerts(store, config, 1, at=T0)
        try:
            summary = pipeline.deliver_outbox(store, config, now=T0)
        finally:
            handler.release()
        assert summary.as_dict() == {"sent": 1, "retried": 0, "dead": 0}
        sink.wait_for(1)
    [row] = outbox_rows(store)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
