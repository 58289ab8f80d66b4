"""monitor.service.sdnotify against a real AF_UNIX datagram socket (path and @abstract)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.service.sdnotify import STATUS_MAX_CHARS, Notifier, sanitise_status
from tests.support.systemd import FakeNotifySocket


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest) -> Iterator[FakeNotifySocket]:
    with FakeNotifySocket(request.param) as fake:
        yield fake


def notifier_for(manager: FakeNotifySocket, **env: str) -> Notifier:
    return Notifier.from_environment({"NOTIFY_SOCKET": manager.address, **env})


def test_ready_reaches_the_manager(manager: FakeNotifySocket) -> None:
    notifier = notifier_for(manager)
    assert notifier.is_enabled
    assert notifier.ready() is True
    assert manager.receive() == ["READY=1"]


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        pytest.param(lambda n: n.watchdog(), ["WATCHDOG=1"], id="watchdog"),
        pytest.param(lambda n: n.stopping(), ["STOPPING=1"], id="stopping"),
        pytest.param(
            lambda n: n.stopping("SIGTERM received"),
            ["STOPPING=1", "STATUS=SIGTERM received"],
            id="stopping-with-status",
        ),
        pytest.param(
            lambda n: n.ready("polling 12 feeds"),
            ["READY=1", "STATUS=polling 12 feeds"],
            id="ready-with-status",
        ),
        pytest.param(
            lambda n: n.reloading(monotonic_usec=123456789),
            ["RELOADING=1", "MONOTONIC_USEC=123456789"],
            id="reloading",
        ),
        pytest.param(
            lambda n: n.extend_timeout(90), ["EXTEND_TIMEOUT_USEC=90000000"], id="extend-timeout"
        ),
        pytest.param(
            lambda n: n.status("3 feeds failing"), ["STATUS=3 feeds failing"], id="status"
        ),
    ],
)
def test_each_message_is_one_datagram(manager: FakeNotifySocket, send, expected) -> None:
    assert send(notifier_for(manager)) is True
    assert manager.receive() == expected
    assert manager.receive_nothing()


def test_reloading_stamps_the_monotonic_clock(manager: FakeNotifySocket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier_for(manager).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, stamp = manager.receive()
    assert reloading == "RELOADING=1"
    key, _, value = stamp.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_status_cannot_inject_another_assignment(manager: FakeNotifySocket) -> None:
    """A feed title in a status line must not become READY=1 or STOPPING=1."""
    notifier_for(manager).status("Border clash\r\nSTOPPING=1\x00\x1b[31m\u2028tail")
    (line,) = manager.receive()
    assert line == "STATUS=Border clash STOPPING=1 [31m tail"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("  spaced   out  ", "spaced out", id="whitespace"),
        pytest.param("a\nb\rc\td", "a b c d", id="line-breaks"),
        pytest.param("Кыргызстан–Таджикистан", "Кыргызстан–Таджикистан", id="unicode-kept"),
        pytest.param("x" * 1000, "x" * (STATUS_MAX_CHARS - 1) + "…", id="capped"),
        pytest.param("\x85\x9f", "", id="c1-controls"),
    ],
)
def test_sanitise_status(text: str, expected: str) -> None:
    assert sanitise_status(text) == expected
    assert len(sanitise_status(text)) <= STATUS_MAX_CHARS


@pytest.mark.parametrize(
    "assignment",
    [
        pytest.param("READY=1\nSTOPPING=1", id="newline-in-value"),
        pytest.param("READY", id="no-equals"),
        pytest.param("ready=1", id="lower-case-key"),
        pytest.param("=1", id="empty-key"),
    ],
)
def test_malformed_assignment_is_a_programming_error(
    manager: FakeNotifySocket, assignment: str
) -> None:
    with pytest.raises(ValueError, match="malformed"):
        notifier_for(manager).notify(assignment)
    assert manager.receive_nothing()


OWN_PID = str(os.getpid())
OTHER_PID = str(os.getpid() + 1)


@pytest.mark.parametrize(
    ("env", "interval", "ping"),
    [
        pytest.param({"WATCHDOG_USEC": "120000000"}, 120.0, 60.0, id="usec-only"),
        pytest.param(
            {"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": OWN_PID}, 120.0, 60.0, id="ours"
        ),
        pytest.param(
            {"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": OTHER_PID}, None, None, id="other-pid"
        ),
        pytest.param({"WATCHDOG_USEC": "500000"}, 0.5, 0.25, id="sub-second"),
        pytest.param({}, None, None, id="unset"),
        pytest.param({"WATCHDOG_USEC": "0"}, None, None, id="zero"),
        pytest.param({"WATCHDOG_USEC": "soon"}, None, None, id="garbage"),
    ],
)
def test_watchdog_interval_from_environment(
    env: dict[str, str], interval: float | None, ping: float | None
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "/run/systemd/notify", **env})
    assert notifier.watchdog_interval_seconds() == interval
    assert notifier.watchdog_ping_interval_seconds() == ping


def test_watchdog_pid_is_compared_with_the_process_that_reads_it(tmp_path) -> None:
    """A child that inherited WATCHDOG_PID of its parent must not think the watchdog is its own."""
    code = textwrap.dedent(
        """
        from monitor.service.sdnotify import Notifier
        print(Notifier.from_environment().watchdog_interval_seconds())
        """
    )
    env = {**os.environ, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": OWN_PID}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "None"


def test_no_notify_socket_means_no_op(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.service.sdnotify")
    notifier = Notifier.from_environment({})
    assert not notifier.is_enabled
    results = [
        notifier.ready(),
        notifier.status("x"),
        notifier.watchdog(),
        notifier.stopping(),
        notifier.reloading(),
        notifier.extend_timeout(1),
    ]
    assert results == [False] * len(results)
    assert notifier.watchdog_interval_seconds() is None
    assert caplog.records == []


def test_empty_notify_socket_means_no_op() -> None:
    assert not Notifier.from_environment({"NOTIFY_SOCKET": ""}).is_enabled


def test_relative_socket_path_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "run/notify"})
    assert not notifier.is_enabled
    assert notifier.ready() is False
    assert "neither an absolute path nor @abstract" in caplog.text


def test_socket_errors_never_raise_and_warn_once(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.service.sdnotify")
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.is_enabled
    assert [notifier.ready(), notifier.watchdog(), notifier.stopping()] == [False, False, False]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens" in warnings[0].getMessage()


def test_sending_recovers_when_the_manager_comes_back() -> None:
    with FakeNotifySocket("path") as first:
        path = first.address
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
        assert notifier.watchdog() is True
        assert first.receive() == ["WATCHDOG=1"]
    # the manager's socket is gone: a failure, not an exception
    assert notifier.watchdog() is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as again:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        again.bind(path)
        again.settimeout(5)
        assert notifier.watchdog() is True
        assert again.recv(100) == b"WATCHDOG=1\n"
        os.unlink(path)
    os.rmdir(os.path.dirname(path))


def test_unset_removes_the_variables_for_children() -> None:
    env = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": "120000000",
        "WATCHDOG_PID": OWN_PID,
        "PATH": "/usr/bin",
    }
    notifier = Notifier.from_environment(env, unset=True)
    assert env == {"PATH": "/usr/bin"}
    assert notifier.is_enabled
    assert notifier.watchdog_interval_seconds() == 120.0


def test_a_subprocess_notifies_through_the_environment(manager: FakeNotifySocket) -> None:
    """What `monitor run` does under systemd: the variables come from the environment."""
    code = textwrap.dedent(
        """
        from monitor.service.sdnotify import Notifier
        n = Notifier.from_environment()
        assert n.ready("started"), "not sent"
        assert n.stopping(), "not sent"
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=manager.environ(), capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert manager.wait_for("STOPPING=1") == ["READY=1", "STATUS=started", "STOPPING=1"]


def _fill_queue(address: str) -> int:
    """Send empty datagrams until the manager's kernel queue is full; return how many."""
    target = b"\0" + address[1:].encode() if address.startswith("@") else address
    count = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:
        filler.connect(target)
        filler.setblocking(False)
        while True:
            try:
                filler.send(b"X-FILLER=1\n")
            except BlockingIOError:
                return count
            count += 1


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_a_full_manager_queue_drops_status_at_once_and_keeps_state_changes(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manager that has not read yet (the kernel queue holds net.unix.max_dgram_qlen
    datagrams): a STATUS= is dropped without waiting, and without losing the socket;
    READY=1 waits (bounded) for room and arrives once the manager reads."""
    import threading

    from monitor.service import sdnotify

    monkeypatch.setattr(sdnotify, "SEND_TIMEOUT_SECONDS", 60.0)  # a wait would show
    with FakeNotifySocket(kind, drain=False) as manager:
        notifier = notifier_for(manager)
        assert _fill_queue(manager.address) > 0
        started = time.monotonic()
        assert notifier.status("busy") is False
        assert time.monotonic() - started < 30  # not the 60 s send timeout
        results: list[bool] = []
        sender = threading.Thread(target=lambda: results.append(notifier.ready()))
        sender.start()
        try:
            seen = manager.wait_for("READY=1", timeout=30)  # reading makes room
        finally:
            sender.join(timeout=60)
        assert results == [True]
        assert "STATUS=busy" not in seen


def test_the_fake_manager_reads_continuously_like_systemd() -> None:
    """More datagrams than the kernel queues for a socket nobody reads
    (net.unix.max_dgram_qlen, 10 in stock containers) all arrive while the test is busy
    elsewhere: a test manager that read only on demand would leave the daemon's sends
    waiting on a full queue, and STOPPING=1 would never arrive."""
    qlen_file = Path("/proc/sys/net/unix/max_dgram_qlen")
    qlen = int(qlen_file.read_text()) if qlen_file.exists() else 512
    count = 3 * min(qlen, 512)
    with FakeNotifySocket("path") as manager:
        notifier = notifier_for(manager)
        sent = [notifier.watchdog() for _ in range(count)]
        assert all(sent), f"{sent.count(False)} of {count} sends failed"
        for _ in range(count):
            assert manager.receive(timeout=30) == ["WATCHDOG=1"]
        assert manager.receive_nothing()
