"""The systemd notify protocol (sd_notify(3)), without dependencies.

Owns: reading NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID once, and sending
newline-separated `KEY=value` datagrams to the service manager: READY=1,
STATUS=, WATCHDOG=1, STOPPING=1, RELOADING=1 (+ MONOTONIC_USEC),
EXTEND_TIMEOUT_USEC.

Must not: decide *when* to send (that is `service`: READY=1 after startup,
WATCHDOG=1 only while the heartbeat is fresh), read the clock except for the
MONOTONIC_USEC that RELOADING=1 requires, or raise on socket errors. Outside
systemd (NOTIFY_SOCKET unset) every call is a no-op that returns False.

Protocol: https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"

STATUS_MAX_CHARS = 200  # `systemctl status` shows one line; keep it readable
# How long a state change (READY, STOPPING, RELOADING, WATCHDOG) may wait for room in a
# full manager queue; STATUS never waits (a later one replaces it). Bounded: the daemon's
# event loop sends these.
SEND_TIMEOUT_SECONDS = 2.0

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


def sanitise_status(text: str) -> str:
    """One line of printable text, at most STATUS_MAX_CHARS characters.

    Control characters (CR and LF above all: a newline would start a new
    assignment such as READY=1) become single spaces.
    """
    line = " ".join(_CONTROL_CHARS.sub(" ", text).split())
    if len(line) > STATUS_MAX_CHARS:
        line = line[: STATUS_MAX_CHARS - 1] + "…"
    return line


def _socket_address(value: str) -> str | bytes | None:
    """The sendto() address for a NOTIFY_SOCKET value, or None if unsupported."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None  # relative paths are invalid; "vsock:" (systemd 253+) is not supported


class Notifier:
    """Sends state changes to the service manager; a no-op when not under systemd.

    Build it with `Notifier.from_environment()` at startup. Methods return True
    when the datagram was sent, False when notification is off or sending
    failed; they never raise on socket errors (the first failure is logged as a
    warning, later ones at debug level).
    """

    def __init__(
        self,
        socket_path: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        self.socket_path = socket_path or None
        self._address = _socket_address(socket_path) if socket_path else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._watchdog_pid = watchdog_pid
        self._sock: socket.socket | None = None
        self._warned = False
        if socket_path and self._address is None:
            log.warning(
                "sd_notify disabled: NOTIFY_SOCKET=%r is neither an absolute path nor @abstract",
                socket_path,
            )

    @classmethod
    def from_environment(
        cls,
        environ: MutableMapping[str, str] | None = None,
        *,
        unset: bool = False,
    ) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (default: os.environ).

        `unset=True` removes the three variables afterwards, so that child
        processes (parse workers) neither inherit nor use them.
        """
        env = os.environ if environ is None else environ
        socket_path = env.get(NOTIFY_SOCKET) or None
        watchdog_usec = _parse_positive_int(env.get(WATCHDOG_USEC), WATCHDOG_USEC)
        watchdog_pid = _parse_positive_int(env.get(WATCHDOG_PID), WATCHDOG_PID)
        if unset:
            for name in (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID):
                env.pop(name, None)
        return cls(socket_path, watchdog_usec=watchdog_usec, watchdog_pid=watchdog_pid)

    # -- state ---------------------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        """True when there is a usable notify socket."""
        return self._address is not None

    def watchdog_interval_seconds(self) -> float | None:
        """The manager's watchdog timeout (WatchdogSec=) in seconds, or None if off.

        None too when WATCHDOG_PID names another process (the variables were
        inherited from a parent). Send `watchdog()` at least every half of this:
        see `watchdog_ping_interval_seconds()`.
        """
        if self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 1_000_000

    def watchdog_ping_interval_seconds(self) -> float | None:
        """How often to send WATCHDOG=1: half the watchdog timeout, as sd_watchdog_enabled(3)
        recommends; None if the watchdog is off."""
        interval = self.watchdog_interval_seconds()
        return None if interval is None else interval / 2

    # -- messages ------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete."""
        return self._send_with_status(["READY=1"], status)

    def status(self, text: str) -> bool:
        """A one-line status for `systemctl status` (sanitised). Dropped, never waited for,
        when the manager's queue is full: the next status replaces it anyway."""
        return self.notify(f"STATUS={sanitise_status(text)}", wait=False)

    def watchdog(self) -> bool:
        """A watchdog keep-alive. Send it only while the daemon is healthy."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (SIGTERM received)."""
        return self._send_with_status(["STOPPING=1"], status)

    def reloading(self, *, monotonic_usec: int | None = None) -> bool:
        """A configuration reload has begun; send `ready()` when it is done.

        systemd requires MONOTONIC_USEC (CLOCK_MONOTONIC in µs) in the same
        datagram as RELOADING=1.
        """
        if monotonic_usec is None:
            monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before the start/stop timeout fires (long migrations)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def notify(self, *assignments: str, wait: bool = True) -> bool:
        """Send `KEY=value` assignments in one datagram.

        When the manager's receive queue is full (it has not read yet; a short
        `net.unix.max_dgram_qlen` makes that easy), `wait=True` waits up to
        SEND_TIMEOUT_SECONDS for room and `wait=False` drops the datagram at once.
        The socket is connected to the manager's, so the wait sleeps in poll(2) until
        the manager reads (an unconnected sendto() with a timeout spins on EAGAIN).

        Raises ValueError for a malformed assignment (a programming error, not a
        socket error): each must be `KEY=value` with an upper-case key and no
        newline, so a value can never smuggle in another assignment.
        """
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep or not _KEY.fullmatch(key) or "\n" in value:
                raise ValueError(f"sd_notify: malformed assignment {assignment!r}")
        if self._address is None or not assignments:
            return False
        payload = ("\n".join(assignments) + "\n").encode()
        try:
            sock = self._connected()
            # A timeout makes Python poll for room first; non-blocking fails at once.
            sock.settimeout(SEND_TIMEOUT_SECONDS if wait else 0.0)
            sock.send(payload)
        except BlockingIOError:
            log.debug("sd_notify queue of %s is full; dropped %s", self.socket_path, assignments)
            return False
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "sd_notify to %s failed: %s", self.socket_path, exc)
            self.close()
            return False
        return True

    def _connected(self) -> socket.socket:
        if self._sock is None:
            assert self._address is not None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(self._address)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def close(self) -> None:
        """Close the socket (a later call opens a new one)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _send_with_status(self, assignments: list[str], status: str | None) -> bool:
        if status is not None:
            assignments.append(f"STATUS={sanitise_status(status)}")
        return self.notify(*assignments)

    def __repr__(self) -> str:
        return f"Notifier(socket_path={self.socket_path!r}, watchdog_usec={self._watchdog_usec!r})"


def _parse_positive_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        log.warning("ignoring %s=%r: not an integer", name, value)
        return None
    return number if number > 0 else None
