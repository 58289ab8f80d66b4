"""The real daemon as a subprocess, against a real local HTTP server and SMTP server.

READY on a socket the test binds as NOTIFY_SOCKET; an alert email delivered; SIGHUP
with a bad and a good configuration; a second instance refused; SIGTERM → exit 0 and
an intact database; SIGKILL and restart → nothing lost, nothing sent twice. Plus, in
process, a job that always raises: counted, and the watchdog stops.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from monitor import db
from monitor.config import load_config
from monitor.lab.mailsink import MailSink, free_port
from tests.support.daemon import (
    DaemonProcess,
    Deployment,
    write_deployment,
    write_indicators,
)
from tests.support.http import FeedServer, hang
from tests.support.systemd import FakeNotifySocket


def deployment_metrics(deployment: Deployment) -> str:
    return load_config(settings_path=deployment.settings, env={}).settings.metrics_listen or ""


@pytest.fixture
def deployment(tmp_path: Path, feed_server: FeedServer, sink: MailSink) -> Deployment:
    return write_deployment(
        tmp_path / "deploy",
        feeds={"wire": feed_server.url("/wire.xml")},
        smtp_port=sink.port,
        metrics_port=free_port(),
    )


def test_daemon_lifecycle(deployment: Deployment, sink: MailSink, feed_server: FeedServer) -> None:
    with FakeNotifySocket("path") as notify:
        daemon = DaemonProcess(deployment, env=notify.environ())
        try:
            notify.wait_for("READY=1", timeout=30)
            [received] = sink.wait_for(1, timeout=30)
            message = received.parsed()
            assert "Kyrgyzstan" in str(message["Subject"])
            assert feed_server.hits("/wire.xml")

            # The optional loopback endpoint: health and Prometheus metrics.
            metrics_url = f"http://{deployment_metrics(deployment)}"
            assert httpx.get(f"{metrics_url}/healthz", timeout=5).status_code == 200
            scrape = httpx.get(f"{metrics_url}/metrics", timeout=5).text
            assert 'monitor_score{theatre="kg-tj"}' in scrape
            assert "monitor_feed_polls_total" in scrape and "monitor_job_runs_total" in scrape

            # A second instance on the same database is refused with a clear message.
            second = subprocess.run(
                deployment.args("run"), capture_output=True, text=True, timeout=30
            )
            assert second.returncode != 0
            assert "already running" in second.stderr.lower() and "Traceback" not in second.stderr

            # SIGHUP with a broken file: refused, the old configuration keeps running.
            write_indicators(
                deployment.indicators, {"wire": feed_server.url("/wire.xml")}, broken=True
            )
            mark = len(daemon.log())
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_log("reload refused", after=mark)
            assert (
                "indicators.border_clash.weight: expected a number, got 'high'"
                in daemon.log()[mark:]
            )
            # SIGHUP with a good file: reloaded.
            write_indicators(deployment.indicators, {"wire": feed_server.url("/wire.xml")})
            mark = len(daemon.log())
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_log("reloaded", after=mark)

            assert daemon.stop(timeout=10) == 0
            notify.wait_for("STOPPING=1", timeout=5)
        finally:
            if daemon.process.poll() is None:
                daemon.kill()
    log = daemon.log()
    assert "Traceback" not in log, log  # the whole log when it fails
    with db.Store.open(deployment.db, readonly=True) as store:
        assert store.integrity_check() == "ok"
        assert store.outbox_counts() == {"sent": 1}
    assert len(sink.received()) == 1


def test_sighup_applies_metrics_listen_and_the_schedule_and_names_what_needs_a_restart(
    tmp_path: Path, feed_server: FeedServer, sink: MailSink
) -> None:
    """The install guide says a reload applies metrics_listen: the endpoint moves. The
    schedule is applied too; http (and database_path) need a restart, and the reload says
    so in its log line, as check-config does."""
    first_port, second_port = free_port(), free_port()
    feeds = {"wire": feed_server.url("/wire.xml")}
    deployment = write_deployment(
        tmp_path / "deploy-reload", feeds=feeds, smtp_port=sink.port, metrics_port=first_port
    )
    check = subprocess.run(
        deployment.args("check-config"), capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr
    assert "except database_path and http, which need a restart" in check.stdout
    with FakeNotifySocket("path") as notify:
        daemon = DaemonProcess(deployment, env=notify.environ())
        try:
            notify.wait_for("READY=1", timeout=30)
            assert httpx.get(f"http://127.0.0.1:{first_port}/healthz", timeout=10).status_code
            write_deployment(
                tmp_path / "deploy-reload",
                feeds=feeds,
                smtp_port=sink.port,
                metrics_port=second_port,
                poll_tick_seconds=3,
                fetch_deadline_seconds=12.0,
            )
            mark = len(daemon.log())
            daemon.signal(signal.SIGHUP)
            log = daemon.wait_for_log("reloaded", after=mark)[mark:]
            notify.wait_for("READY=1", timeout=30)
            assert "restart_needed=http" in log
            assert "reload: http changed; kept the running values until a restart" in log
            assert "reload: job poll now every 3 s" in log
            assert httpx.get(f"http://127.0.0.1:{second_port}/healthz", timeout=10).status_code in (
                200,
                503,
            )
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{first_port}/healthz", timeout=10)
            assert daemon.stop(timeout=15) == 0
        finally:
            if daemon.process.poll() is None:
                daemon.kill()
    assert "Traceback" not in daemon.log()


def test_sigkill_and_restart_loses_nothing_and_sends_nothing_twice(
    deployment: Deployment, sink: MailSink
) -> None:
    daemon = DaemonProcess(deployment)
    try:
        sink.wait_for(1, timeout=30)
        daemon.wait_for_log("outbox sent=1")
    finally:
        daemon.kill()
    with db.Store.open(deployment.db, readonly=True) as store:
        before = store.query(
            "SELECT (SELECT count(*) FROM articles) AS a, (SELECT count(*) FROM alerts) AS al"
        )[0]
        runs_before = store.query("SELECT count(*) AS n FROM runs WHERE job = 'poll'")[0]["n"]

    restarted = DaemonProcess(deployment)
    try:
        # Wait until the restarted daemon has polled the same feed again at least twice.
        restarted.wait_for_log("started")
        for _ in range(100):
            with db.Store.open(deployment.db, readonly=True) as store:
                if (
                    store.query("SELECT count(*) AS n FROM runs WHERE job = 'poll'")[0]["n"]
                    >= runs_before + 2
                ):
                    break
            restarted.wait_for_log("poll cycle", timeout=10)
        assert restarted.stop(timeout=10) == 0
    finally:
        if restarted.process.poll() is None:
            restarted.kill()
    with db.Store.open(deployment.db, readonly=True) as store:
        after = store.query(
            "SELECT (SELECT count(*) FROM articles) AS a, (SELECT count(*) FROM alerts) AS al"
        )[0]
        assert after == before
        assert store.outbox_counts() == {"sent": 1}
        assert store.integrity_check() == "ok"
    assert len(sink.received()) == 1


def test_bad_configuration_exits_2_before_ready(
    deployment: Deployment, feed_server: FeedServer
) -> None:
    write_indicators(deployment.indicators, {"wire": feed_server.url("/wire.xml")}, broken=True)
    with FakeNotifySocket("path") as notify:
        result = subprocess.run(
            deployment.args("run"), capture_output=True, text=True, timeout=30, env=notify.environ()
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"monitor: {deployment.indicators}: indicators.border_clash.weight: expected a number, got 'high'"
        ]
        assert notify.receive_nothing()


def test_run_once_does_one_cycle_and_exits(deployment: Deployment, sink: MailSink) -> None:
    result = subprocess.run(
        deployment.args("run", "--once"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "polled 1 feeds" in result.stdout and "kg-tj" in result.stdout
    assert len(sink.wait_for(1, timeout=10)) == 1
    again = subprocess.run(
        deployment.args("run", "--once"), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "sent 0" in again.stdout
    assert len(sink.received()) == 1


def test_a_job_that_always_raises_is_counted_and_stops_the_watchdog(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: scoring fails every time. The daemon keeps running, counts the
    failures, reports itself unhealthy, and withholds the watchdog ping."""
    from monitor import pipeline
    from monitor.service import daemon as service

    def broken_scoring(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected scoring failure")

    config = load_config(
        settings_path=deployment.settings, indicators_path=deployment.indicators, env={}
    )
    with FakeNotifySocket("path") as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", notify.address)
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        monkeypatch.setattr(pipeline, "score_theatres", broken_scoring)
        daemon = service.Daemon(config)

        async def scenario() -> None:
            task = asyncio.create_task(daemon.serve())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (
                daemon.stats.consecutive_errors.get("score", 0) < service.FAILURES_BEFORE_UNHEALTHY
            ):
                assert loop.time() < deadline, f"score job did not fail 3 times: {daemon.stats}"
                assert not task.done()
                await asyncio.sleep(0.05)
            healthy, reason = daemon.health()
            assert not healthy and "injected scoring failure" in reason
            notify.wait_for("READY=1")
            while not notify.receive_nothing():
                pass
            await daemon.watchdog_job()
            sent = notify.receive(timeout=2)
            assert any(line.startswith("STATUS=unhealthy") for line in sent)
            assert not any(line == "WATCHDOG=1" for line in sent)
            assert daemon.stop_event is not None
            daemon.stop_event.set()
            assert await asyncio.wait_for(task, timeout=15) == 0

        asyncio.run(scenario())
    assert daemon.stats.errors["score"] >= service.FAILURES_BEFORE_UNHEALTHY


def test_sigterm_during_a_hanging_fetch_exits_0_within_10_seconds(
    tmp_path: Path, feed_server: FeedServer, sink: MailSink
) -> None:
    """A poll round is under way (one feed never answers) when SIGTERM arrives: the
    daemon stops within systemd's budget, exits 0, and leaves an intact database."""
    feed_server.script("/hangs.xml", hang)
    deployment = write_deployment(
        tmp_path / "deploy-hang",
        feeds={"wire": feed_server.url("/wire.xml"), "stuck": feed_server.url("/hangs.xml")},
        smtp_port=sink.port,
    )
    daemon = DaemonProcess(deployment)
    try:
        # the start line says which matcher runs (the tests run the checkout's source)
        assert "matcher=python source" in daemon.wait_for_log("started db=")
        deadline = time.monotonic() + 30
        while not feed_server.hits("/hangs.xml"):
            assert time.monotonic() < deadline, "the hanging feed was never requested"
            time.sleep(0.05)
        started = time.monotonic()
        assert daemon.stop(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    assert "Traceback" not in daemon.log()
    with db.Store.open(deployment.db, readonly=True) as store:
        assert store.integrity_check() == "ok"


def test_test_email_command_reports_delivery(deployment: Deployment, sink: MailSink) -> None:
    result = subprocess.run(
        deployment.args("test-email"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "sent to analyst@example.org" in result.stdout
    [received] = sink.wait_for(1, timeout=10)
    assert "test" in str(received.parsed()["Subject"]).lower()


def test_test_email_command_says_what_went_wrong(deployment: Deployment) -> None:
    from tests.support.http import refused_port

    env = {**os.environ, "MONITOR_SMTP_PORT": str(refused_port())}
    result = subprocess.run(
        deployment.args("test-email"), capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("monitor: ") and "127.0.0.1" in line
