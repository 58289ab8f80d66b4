"""Fault injection with real processes: SIGKILL in the SMTP 250 window, SIGKILL at random
points of `monitor run --once` cycles against a local feed server and SMTP sink, and a
start on a database whose -wal a killed process left behind.

Reliability guide tests 26, 27, 28 and 35. Children are `python -m monitor` or
`python -m tests.support.crash_child` (which uses only public product functions). The random kill
points come from a seeded generator; every wait is for a real event, bounded.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.config import Config, load_config
from monitor.db import Store
from monitor.detect.matcher import match_article
from monitor.lab.corpus import load_corpus
from monitor.lab.mailsink import MailSink
from monitor.models import ArticleText, to_iso
from tests.support.crash import (
    INDICATORS,
    REPO,
    WAIT,
    ChildProcess,
    FeedItem,
    HoldingHandler,
    delivery_config,
    outbox_rows,
    received_ids,
    record_alerts,
    rss,
    same_message,
    write_indicators,
    write_settings,
)
from tests.support.http import FeedServer, RecordedRequest, Reply

T0 = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)
DEMO_ITEMS = REPO / "monitor" / "lab" / "demo_data" / "items.jsonl"


def _deliver_child(settings: Path, *, hold_at: int) -> ChildProcess:
    return ChildProcess.python(
        "-m",
        "tests.support.crash_child",
        "deliver",
        str(settings),
        str(INDICATORS),
        to_iso(T0),
        str(hold_at),
        cwd=REPO,
    )


# ---------------------------------------------------------------------------
# (a) SIGKILL between the server's 250 and our `sent` commit


@pytest.mark.parametrize("window", ["after-250-received", "250-not-yet-answered"])
def test_kill_in_the_250_window_repeats_that_message_once_with_the_same_id(
    tmp_path: Path, window: str
) -> None:
    db_path = tmp_path / "monitor.db"
    with MailSink(tmp_path / "mail", handler_factory=HoldingHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, HoldingHandler)
        config = delivery_config(db_path, sink.port)
        with Store.open(db_path) as store:
            record_alerts(store, config, 3, at=T0)
        settings = write_settings(tmp_path, db_path=db_path, smtp_port=sink.port)
        if window == "after-250-received":
            # the child got the 250 of message 2 and is killed before it commits `sent`
            child = _deliver_child(settings, hold_at=2)
            caught = child.wait_for_line("accepted ").split(" ", 1)[1]
            assert child.kill() != 0
        else:
            # the server stored message 2 and is holding its 250 when the child dies
            handler.arm(skip=1)
            child = _deliver_child(settings, hold_at=0)
            assert handler.stored.wait(WAIT), child.stderr()
            assert child.kill() != 0
            handler.release()
            [caught] = handler.held
        assert len(sink.wait_for(2)) == 2
        with Store.open(db_path) as store:
            assert store.integrity_check() == "ok"
            before = {row["message_id"]: row["status"] for row in outbox_rows(store)}
            assert before[caught] == "pending", "the kill came before the sent commit"
            assert list(before.values()).count("sent") == 1
            summary = _restart_delivery(store, config)
            assert summary == {"sent": 2, "retried": 0, "dead": 0}
            rows = outbox_rows(store)
        received = sink.wait_for(4)
    counts = Counter(received_ids(received))
    assert set(counts) == {row["message_id"] for row in rows}, "nothing lost, nothing foreign"
    assert counts[caught] == 2 and sum(counts.values()) == 4, counts
    copies = [m.raw for m in received if received_ids([m]) == [caught]]
    assert copies[0] == copies[1], "the repeat is byte-identical"
    assert [row["status"] for row in rows] == ["sent"] * 3
    for row in rows:
        assert row["attempts"] == 1  # the killed attempt was never recorded
        assert any(same_message(row["message"], m.raw) for m in received)


def _restart_delivery(store: Store, config: Config) -> dict[str, int]:
    """What the next start does: drain the outbox (in this process)."""
    return pipeline.deliver_outbox(store, config, now=T0 + timedelta(minutes=1)).as_dict()


# ---------------------------------------------------------------------------
# (c) A start on a database with a leftover -wal


def test_start_after_kill_recovers_committed_data_from_the_leftover_wal(tmp_path: Path) -> None:
    db_path = tmp_path / "monitor.db"
    Store.open(db_path).close()  # schema in the main file; closing checkpoints the WAL
    child = ChildProcess.python(
        "-m", "tests.support.crash_child", "wal", str(db_path), "5", cwd=REPO
    )
    child.wait_for_line("in-transaction")
    child.kill()
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0, "the killed process left its WAL"
    # the committed alerts live only in the WAL: the main file alone does not have them
    alone = tmp_path / "main-file-only.db"
    shutil.copyfile(db_path, alone)
    with sqlite3.connect(alone) as bare:
        assert bare.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    bare.close()

    # a real start (`run --once`) on that file: recovers, keeps the 5, sends them
    with FeedServer() as feeds, MailSink(tmp_path / "mail") as sink:
        feeds.route(
            "/empty.xml", Reply(200, rss("Empty", []), (("Content-Type", "application/rss+xml"),))
        )
        settings = write_settings(tmp_path, db_path=db_path, smtp_port=sink.port)
        indicators = write_indicators(
            tmp_path, [{"id": "empty", "name": "Empty", "url": feeds.url("/empty.xml")}]
        )
        run = _run_once(tmp_path, settings, indicators)
        assert run.wait() == 0, run.stderr()
        received = sink.wait_for(5)
    with Store.open(db_path) as store:
        assert store.conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert store.integrity_check() == "ok"
        rows = outbox_rows(store)
        keys = [row["dedup_key"] for row in rows]
    assert len(rows) == 5 and all(":stories:6@" not in key for key in keys), keys
    assert [row["status"] for row in rows] == ["sent"] * 5
    assert sorted(received_ids(received)) == sorted(row["message_id"] for row in rows)


def test_read_only_cli_reads_a_database_a_killed_process_left(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from monitor.cli.app import cli

    db_path = tmp_path / "monitor.db"
    Store.open(db_path).close()
    child = ChildProcess.python(
        "-m", "tests.support.crash_child", "wal", str(db_path), "3", cwd=REPO
    )
    child.wait_for_line("in-transaction")
    child.kill()
    shown = CliRunner().invoke(cli, ["--db", str(db_path), "alerts", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert len(json.loads(shown.output)) == 3


# ---------------------------------------------------------------------------
# (b) SIGKILL at random points of poll-score-alert cycles


def _critical_items() -> list[tuple[str, str, str]]:
    """(title, body, language) of demo items the matcher reads as a critical sign today."""
    config = load_config(indicators_path=INDICATORS, settings_path=None, env={})
    now = datetime.now(UTC)
    chosen = []
    for item in load_corpus(DEMO_ITEMS):
        matches = match_article(ArticleText(item.title, item.body, item.lang, now), config.rules)
        if any(
            m.is_event and config.rules.indicators[m.indicator_id].severity == "critical"
            for m in matches
        ):
            chosen.append((item.title, item.body, item.lang))
    assert len(chosen) >= 4, "the demo items should hold several critical signs"
    return chosen


class LiveFeeds:
    """Two feeds on a local server; `publish()` adds one new story to each, dated now."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.items: dict[str, list[FeedItem]] = {"/a.xml": [], "/b.xml": []}
        self.lock = threading.Lock()
        self.sources = _critical_items()
        self.published = 0
        self.requested = threading.Event()  # set by each feed request
        for path in self.items:
            server.route(path, self._responder(path))

    def _responder(self, path: str) -> Callable[[RecordedRequest], Reply]:
        def reply(request: RecordedRequest) -> Reply:
            with self.lock:
                body = rss(path, list(reversed(self.items[path][-30:])))
            self.requested.set()
            return Reply(200, body, (("Content-Type", "application/rss+xml; charset=utf-8"),))

        return reply

    def publish(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        with self.lock:
            for path in self.items:
                title, body, _ = self.sources[self.published % len(self.sources)]
                n = self.published
                # words of its own, so each is a story of its own (not merged as near-identical)
                tag = " ".join(f"q{n}x{k}" for k in range(8))
                self.items[path].append(
                    FeedItem(
                        guid=f"{path}-{n}",
                        title=f"{title} ({tag})",
                        body=body,
                        published_at=now,
                        url=f"https://feeds.monitor.test{path[:-4]}/{n}",
                    )
                )
                self.published += 1

    def feeds(self) -> list[dict[str, str]]:
        return [
            {
                "id": path.strip("/").removesuffix(".xml"),
                "name": f"Wire {path}",
                "url": self.server.url(path),
            }
            for path in self.items
        ]


def _run_once(tmp_path: Path, settings: Path, indicators: Path) -> ChildProcess:
    return ChildProcess.python(
        "-m",
        "monitor",
        "--config",
        str(settings),
        "--indicators",
        str(indicators),
        "run",
        "--once",
        cwd=tmp_path,
    )


@dataclass
class KillReport:
    cycles: int = 0
    random_kills: int = 0
    held_kills: int = 0
    completed: int = 0
    integrity_failures: int = 0
    held: list[str] = field(default_factory=list)
    phases: Counter[str] = field(default_factory=Counter)  # where the random kills landed
    durations: list[float] = field(default_factory=list)


PROGRESS_SQL = (
    "SELECT (SELECT count(*) FROM articles) AS articles, (SELECT count(*) FROM scores) AS scores, "
    "(SELECT count(*) FROM outbox WHERE status = 'pending') AS pending, "
    "(SELECT count(*) FROM outbox WHERE status = 'sent') AS sent, "
    "(SELECT count(*) FROM runs) AS runs"
)


def _phase(before: dict[str, int], after: dict[str, int]) -> str:
    """Where a killed cycle stopped, judged from what it committed."""
    if after["articles"] == before["articles"]:
        return "before the poll commit"
    if after["scores"] == before["scores"]:
        return "after the poll, before scoring"
    if after["sent"] == before["sent"] and after["pending"] > 0:
        return "after the alert commit, before any sent"
    if after["runs"] == before["runs"]:
        return "during or after delivery, before the run record"
    return "after the run record"


def _stored_or_exited(handler: HoldingHandler, child: ChildProcess) -> bool:
    """True once the sink stored the held message; False if the child ended first."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if handler.stored.wait(0.05):
            return True
        if child.process.poll() is not None:
            return handler.stored.is_set()
    raise AssertionError(f"the cycle neither sent nor ended within {WAIT:g} s")


def _requested_or_exited(live: LiveFeeds, child: ChildProcess) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if live.requested.wait(0.05) or child.process.poll() is not None:
            return
    raise AssertionError(f"the cycle neither fetched nor ended within {WAIT:g} s")


def _kill_cycles(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    db_path = tmp_path / "monitor.db"
    report = KillReport()
    with (
        FeedServer() as server,
        MailSink(tmp_path / "mail", handler_factory=HoldingHandler) as sink,
    ):
        handler = sink.handler
        assert isinstance(handler, HoldingHandler)
        live = LiveFeeds(server)
        settings = write_settings(tmp_path, db_path=db_path, smtp_port=sink.port)
        indicators = write_indicators(tmp_path, live.feeds())

        # a first cycle runs to the end: it says how long a cycle works after its first fetch
        live.publish()
        first = _run_once(tmp_path, settings, indicators)
        assert first.wait() == 0, first.stderr()
        work = time.monotonic() - min(r.started_at for r in server.requests)
        assert "2 new articles" in first.stdout(), first.stdout()

        for _ in range(kills):
            live.publish()
            report.cycles += 1
            with Store.open(db_path) as store:
                [before] = store.query(PROGRESS_SQL)
            hold = rng.random() < 0.3
            if hold:
                handler.arm()
            live.requested.clear()
            child = _run_once(tmp_path, settings, indicators)
            if hold:
                if _stored_or_exited(handler, child):
                    child.kill()
                    report.held_kills += 1
                    handler.release()
                else:
                    handler.release()  # the cycle sent nothing: it ran to the end
                    report.completed += 1
            else:
                # a random point of the work: from the first fetch to a little past the end
                # of a typical cycle (poll, parse, store, score, alert, send, mark sent)
                delay = rng.uniform(0.0, 1.2 * work)
                killed = False
                _requested_or_exited(live, child)
                try:
                    child.process.wait(timeout=delay)  # the cycle may end before the kill
                    report.completed += 1
                except subprocess.TimeoutExpired:
                    child.kill()
                    report.random_kills += 1
                    killed = True
            child.wait()
            with Store.open(db_path) as store:
                if store.integrity_check() != "ok":
                    report.integrity_failures += 1
                [after] = store.query(PROGRESS_SQL)
            if not hold and killed:
                report.phases[_phase(before, after)] += 1
        report.held = list(handler.held)

        # restart without faults until everything committed is sent
        final = _run_once(tmp_path, settings, indicators)
        assert final.wait() == 0, final.stderr()
        with Store.open(db_path) as store:
            rows = outbox_rows(store)
            [urgent] = store.query("SELECT count(*) AS n FROM alerts WHERE urgent = 1")
        received = sink.received()

        # re-poll the same feeds: nothing new anywhere
        counts_sql = (
            "SELECT (SELECT count(*) FROM articles) AS articles, (SELECT count(*) FROM matches) "
            "AS matches, (SELECT count(*) FROM alerts) AS alerts, (SELECT count(*) FROM outbox) AS outbox"
        )
        with Store.open(db_path) as store:
            [before] = store.query(counts_sql)
        hits = len(server.requests)
        again = _run_once(tmp_path, settings, indicators)
        assert again.wait() == 0, again.stderr()
        assert len(server.requests) == hits + 2, "both feeds were fetched again"
        with Store.open(db_path) as store:
            [after] = store.query(counts_sql)
            assert store.integrity_check() == "ok"
        assert "0 new articles" in again.stdout(), again.stdout()
        assert after == before, (before, after)
        assert len(sink.received()) == len(received), "a re-poll sends nothing"

    copies = Counter(received_ids(received))
    ids = {row["message_id"] for row in rows}
    duplicates = sum(n - 1 for n in copies.values())
    assert report.integrity_failures == 0
    assert len(rows) == urgent["n"] > report.cycles // 2, "most cycles should raise an alert"
    assert [row["status"] for row in rows] == ["sent"] * len(rows), "every committed alert sent"
    assert set(copies) == ids, "nothing lost and nothing sent that was not committed"
    for message_id, count in copies.items():
        held = report.held.count(message_id)
        assert count <= 2 + held, (message_id, count, held)
        same = [m.raw for m in received if received_ids([m]) == [message_id]]
        assert all(raw == same[0] for raw in same), "repeats are byte-identical"
    assert duplicates <= report.held_kills + report.random_kills
    assert duplicates >= report.held_kills, "each held kill must have caused one repeat"
    print(
        f"\ncrash cycles (seed {seed}): {len(rows)} alerts delivered, every one at least once; "
        f"{report.cycles} cycles: {report.random_kills} random SIGKILLs, {report.held_kills} "
        f"SIGKILLs in the 250 window, {report.completed} finished first; duplicates {duplicates} "
        f"(all same Message-ID, identical bytes); lost 0; integrity_check failures 0; "
        f"re-poll: 0 new articles/alerts/outbox rows; cycle work after first fetch {work:.2f} s; "
        f"random kills landed: {dict(report.phases)}"
    )


# Six real `run --once` processes, each killed or run to the end: on a loaded machine that
# is minutes, not the suite's default 120 s per test; every wait inside is bounded itself.
@pytest.mark.timeout(900)
def test_random_sigkills_during_cycles_lose_nothing_and_repeat_at_most_once(tmp_path: Path) -> None:
    _kill_cycles(tmp_path, kills=6, seed=27)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_random_sigkills_soak(tmp_path: Path) -> None:
    _kill_cycles(tmp_path, kills=120, seed=2027)
