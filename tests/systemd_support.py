"""Test helpers for the service's operating-system side: a fake systemd notify socket.

`FakeNotifySocket` is a real AF_UNIX datagram socket bound where systemd's would
be (a path, or an @abstract name). Point NOTIFY_SOCKET at `.address` (or pass
`.environ()` to a subprocess) and read what the daemon sent with `receive()` or
`wait_for()`. All waits are bounded; nothing sleeps.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Literal

DEFAULT_TIMEOUT_SECONDS = 5.0


class FakeNotifySocket:
    """The service manager's end of the notify protocol."""

    def __init__(self, kind: Literal["path", "abstract"] = "path") -> None:
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

    def environ(self, **extra: str) -> dict[str, str]:
        """A copy of os.environ with NOTIFY_SOCKET (and `extra`) set, for a subprocess."""
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.address
        env.update(extra)
        return env

    def receive(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[str]:
        """The assignments of the next datagram; TimeoutError if none comes in time."""
        self._sock.settimeout(timeout)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"no sd_notify datagram within {timeout} s") from None
        return data.decode().splitlines()

    def receive_nothing(self) -> bool:
        """True if no datagram is waiting right now (does not wait)."""
        self._sock.setblocking(False)
        try:
            self._sock.recv(65536)
        except BlockingIOError:
            return True
        finally:
            self._sock.setblocking(True)
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
