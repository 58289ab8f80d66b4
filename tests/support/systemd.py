"""Test helpers for the service's operating-system side: a fake systemd notify socket.

`FakeNotifySocket` is a real AF_UNIX datagram socket bound where systemd's would
be (a path, or an @abstract name). Point NOTIFY_SOCKET at `.address` (or pass
`.environ()` to a subprocess) and read what the daemon sent with `receive()` or
`wait_for()`. All waits are bounded; nothing sleeps.

Like systemd, it reads continuously (a thread moves every datagram into a queue as
it arrives): the kernel's queue for a datagram socket is short
(`net.unix.max_dgram_qlen`, 10 in stock containers), and a manager that only reads
when a test asks would leave the daemon's sends waiting on a full queue.
`drain=False` keeps datagrams in the kernel queue, to test exactly that.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Literal

DEFAULT_TIMEOUT_SECONDS = 5.0


class FakeNotifySocket:
    """The service manager's end of the notify protocol."""

    def __init__(self, kind: Literal["path", "abstract"] = "path", *, drain: bool = True) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: str | None = None
        if kind == "path":
            # sun_path holds 108 bytes: pytest's tmp_path can be longer, /tmp is short.
            self._dir = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
            path = str(Path(self._dir) / "notify")
            self._sock.bind(path)
            self.address = path
        else:
            name = f"monitor-test-{uuid.uuid4().hex}"
            self._sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        self._sock.setblocking(False)
        self._received: queue.Queue[bytes] = queue.Queue()
        self._lock = threading.Lock()  # one reader of the kernel queue at a time
        self._closing = threading.Event()
        self._drainer: threading.Thread | None = None
        if drain:
            self._drainer = threading.Thread(target=self._drain, name="fake-notify", daemon=True)
            self._drainer.start()

    def _drain(self) -> None:
        while not self._closing.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.1)
            if ready:
                self._take_waiting()

    def _take_waiting(self) -> None:
        """Move every datagram waiting in the kernel queue into ours."""
        with self._lock:
            while True:
                try:
                    self._received.put(self._sock.recv(65536))
                except (BlockingIOError, OSError):
                    return

    def environ(self, **extra: str) -> dict[str, str]:
        """A copy of os.environ with NOTIFY_SOCKET (and `extra`) set, for a subprocess."""
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.address
        env.update(extra)
        return env

    def receive(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[str]:
        """The assignments of the next datagram; TimeoutError if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            if self._drainer is None:
                self._take_waiting()
            try:
                remaining = deadline - time.monotonic()
                data = self._received.get(timeout=max(0.0, min(remaining, 0.05)))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no sd_notify datagram within {timeout} s") from None
                continue
            return data.decode().splitlines()

    def receive_nothing(self) -> bool:
        """True if no datagram is waiting right now (does not wait); otherwise the next
        datagram is consumed and False is returned."""
        self._take_waiting()
        try:
            self._received.get_nowait()
        except queue.Empty:
            return True
        return False

    def wait_for(self, assignment: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[str]:
        """Read datagrams until one contains `assignment` (e.g. "READY=1"); return
        every assignment seen up to and including that datagram."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{assignment!r} not received within {timeout} s; got {seen}")
            message = self.receive(remaining)
            seen.extend(message)
            if assignment in message:
                return seen

    def close(self) -> None:
        self._closing.set()
        if self._drainer is not None:
            self._drainer.join(timeout=10)
        self._sock.close()
        if self._dir is not None:
            for leftover in Path(self._dir).iterdir():
                leftover.unlink()
            os.rmdir(self._dir)
            self._dir = None

    def __enter__(self) -> FakeNotifySocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
