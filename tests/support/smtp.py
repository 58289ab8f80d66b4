"""Test helpers for email delivery: faulty SMTP servers and throwaway TLS certificates.

- `FaultyHandler`: a `monitor.lab.mailsink.SinkHandler` that can answer MAIL, RCPT or DATA with
  any reply, fail the first K messages, or hang after DATA. Use it with
  `MailSink(tmp_path, handler_factory=faulty(...))`.
- `RawServer`: a TCP listener that sends a fixed greeting (or nothing) and then holds or
  drops the connection, for faults below SMTP (421 greeting, silence, hang-up), or accepts
  one message and drops the connection before answering QUIT.
- `StallingHandler`: holds its reply to DATA (never answers; the copy is dropped when the
  client hangs up) for the first K messages, then accepts: a mail server that stalls.
- `SlowQuitHandler`: accepts every message but holds its reply to QUIT until released.
- `make_certificate`: a self-signed certificate for 127.0.0.1 made with the `openssl`
  command (the stdlib cannot make one); tests skip when `openssl` is missing.
All waits are bounded; nothing sleeps in the test thread.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.lab.mailsink import HOST, SinkHandler


class FaultyHandler(SinkHandler):
    """A sink that misbehaves on purpose. Replies are full SMTP lines ("451 4.3.0 Later")."""

    def __init__(
        self,
        directory: Path,
        *,
        fail_first: int = 0,
        fail_reply: str = "451 4.3.0 Try again later",
        mail_reply: str | None = None,
        rcpt_replies: dict[str, str] | None = None,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
        hang_after_data_seconds: float = 0.0,
    ) -> None:
        super().__init__(directory)
        self.fail_first = fail_first
        self.fail_reply = fail_reply
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies or {}
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.hang_after_data_seconds = hang_after_data_seconds
        self.data_attempts = 0  # DATA commands seen, answered or not

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address) or self.rcpt_reply
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.hang_after_data_seconds:
            await asyncio.sleep(self.hang_after_data_seconds)  # the server's clock, not the test's
        if self.data_attempts <= self.fail_first:
            return self.fail_reply
        if self.data_reply:
            return self.data_reply
        return await super().handle_DATA(server, session, envelope)


class StallingHandler(SinkHandler):
    """Holds its reply to DATA for the first `stall_first` messages: it never answers, and
    aiosmtpd cancels the wait (dropping the copy, nothing stored) when the client hangs up.
    `stalled` is set once a reply is being held; `data_attempts` counts DATA commands."""

    def __init__(self, directory: Path, *, stall_first: int = 1, stall_seconds: float = 600.0):
        super().__init__(directory)
        self.stall_first = stall_first
        self.stall_seconds = stall_seconds
        self.data_attempts = 0
        self.stalled = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.data_attempts <= self.stall_first:
            self.stalled.set()
            await asyncio.sleep(self.stall_seconds)  # cancelled when the client hangs up
            return "451 4.3.0 Stalled too long"
        return await super().handle_DATA(server, session, envelope)


class SlowQuitHandler(SinkHandler):
    """Accepts every message, then holds its reply to QUIT until `release()` (or `hold_seconds`).
    `quit_received` is set when a QUIT arrives; `quits` counts them."""

    def __init__(self, directory: Path, *, hold_seconds: float = 60.0) -> None:
        super().__init__(directory)
        self.hold_seconds = hold_seconds
        self.quits = 0
        self.quit_received = threading.Event()
        self._release = threading.Event()

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        self.quit_received.set()
        loop = asyncio.get_running_loop()
        # in a worker thread: the server's loop keeps serving other sessions meanwhile
        await loop.run_in_executor(None, self._release.wait, self.hold_seconds)
        return "221 Bye"

    def release(self) -> None:
        self._release.set()


def faulty(**faults: Any) -> Callable[[Path], SinkHandler]:
    """A `handler_factory` for `MailSink` that makes a `FaultyHandler` with `faults`."""
    return functools.partial(FaultyHandler, **faults)


@dataclass(frozen=True)
class PasswordCheck:
    """aiosmtpd authenticator accepting exactly one user name and password."""

    user: str
    password: str

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user.encode()
            and auth_data.password == self.password.encode()
        )
        # handled=False: aiosmtpd sends the 535 itself (handled=True would send nothing).
        return AuthResult(success=ok, handled=ok)


class RawServer:
    """A loopback TCP server: sends `greeting` (None: nothing) to each client, then holds the
    connection open until stopped, or closes it at once if `hang_up`.

    With `accept_then_drop`, it instead plays a minimal SMTP server that answers 250 to the
    message and then drops the connection without answering QUIT (a crash after the 250).
    """

    def __init__(
        self,
        greeting: bytes | None = None,
        *,
        hang_up: bool = False,
        accept_then_drop: bool = False,
    ) -> None:
        self.greeting = greeting
        self.hang_up = hang_up
        self.accept_then_drop = accept_then_drop
        self.accepted_messages = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(8)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self.connected = threading.Event()  # set once a client connected
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            if self._stopped.is_set():
                client.close()
                return
            self.connected.set()
            if self.accept_then_drop:
                self._accept_one_then_drop(client)
                continue
            if self.greeting is not None:
                client.sendall(self.greeting)
            if self.hang_up:
                client.close()
            else:
                self._clients.append(client)

    def _accept_one_then_drop(self, client: socket.socket) -> None:
        client.settimeout(5)  # bounded: a silent client cannot hold the thread
        with client, client.makefile("rb") as reader:
            client.sendall(b"220 raw.localhost ESMTP\r\n")
            for line in reader:
                verb = line[:4].upper()
                if verb == b"DATA":
                    client.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    while reader.readline() not in (b".\r\n", b""):
                        pass
                    client.sendall(b"250 2.0.0 Queued as 1\r\n")
                    self.accepted_messages += 1
                    client.shutdown(socket.SHUT_RDWR)  # gone before QUIT is answered
                    return
                client.sendall(
                    b"250 raw.localhost\r\n" if verb in (b"EHLO", b"HELO") else b"250 OK\r\n"
                )

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped.set()
        # Closing a socket does not wake a thread blocked in accept(); a connection does.
        with socket.create_connection((HOST, self.port), timeout=5):
            pass
        self._listener.close()
        for client in self._clients:
            client.close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------
# TLS


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate only (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


def has_openssl() -> bool:
    return shutil.which("openssl") is not None


def make_certificate(directory: Path) -> Certificate:
    """A self-signed EC certificate for 127.0.0.1 and localhost, valid for two days."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Certificate(cert, key)
