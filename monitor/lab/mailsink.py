"""A local SMTP server that keeps every message it receives, for the demo and the tests.

Owns: an aiosmtpd server on 127.0.0.1 (on an explicitly chosen free port) that accepts every
message and saves it twice under one folder: in `maildir/` (a Maildir any mail client can
open) and as a numbered file in `eml/` (open it with a double click). Callers can list the
messages received and wait for a number of them, with a bounded timeout.

Must not: relay mail anywhere, listen beyond loopback, or be used as a real mail server. It
does not talk SMTP as a client (only `notify` does).

By hand: `python -m monitor.lab.mailsink DIR [--port 8025]` runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import hashlib
import logging
import mailbox
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message as the sink received it."""

    mail_from: str  # the envelope sender (MAIL FROM)
    rcpt_tos: tuple[str, ...]  # the envelope recipients (RCPT TO), as accepted
    raw: bytes  # the message exactly as received (CRLF line ends)
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS)
    eml_path: Path

    def parsed(self) -> EmailMessage:
        return cast(EmailMessage, email.message_from_bytes(self.raw, policy=default_policy))


class SinkHandler:
    """aiosmtpd handler that accepts every message and keeps it. Tests subclass it for faults."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.maildir_path = self.directory / "maildir"
        self.eml_dir = self.directory / "eml"
        self.eml_dir.mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(self.maildir_path, create=True)
        self._received: list[ReceivedMessage] = []
        self._changed = threading.Condition()
        self._next_number = 1 + sum(1 for _ in self.eml_dir.glob("*.eml"))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.keep(server, envelope)
        return "250 2.0.0 Message accepted"

    def keep(self, server: Any, envelope: Any) -> ReceivedMessage:
        """Save the message of `envelope` to disk and to the list of received messages."""
        raw = bytes(envelope.original_content or b"")
        transport = getattr(server, "transport", None)
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        with self._changed:
            number = self._next_number
            self._next_number += 1
            name = f"{number:04d}-{hashlib.sha256(raw).hexdigest()[:10]}.eml"
            path = self.eml_dir / name
            partial = path.with_suffix(".part")
            partial.write_bytes(raw)
            os.replace(partial, path)  # a reader never sees half a file
            self._maildir.add(raw.replace(b"\r\n", b"\n"))
            message = ReceivedMessage(
                mail_from=str(envelope.mail_from or ""),
                rcpt_tos=tuple(str(r) for r in envelope.rcpt_tos),
                raw=raw,
                tls=tls,
                eml_path=path,
            )
            self._received.append(message)
            self._changed.notify_all()
        log.info(
            "mailsink_received from=%s to=%s file=%s",
            message.mail_from,
            len(message.rcpt_tos),
            path,
        )
        return message

    def received(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._received)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """Block until at least `count` messages arrived; TimeoutError after `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(
                    f"mail sink received {len(self._received)} of {count} messages "
                    f"within {timeout:g} s"
                )
            return list(self._received)


class MailSink:
    """A running local SMTP server; use as a context manager.

    >>> with MailSink(tmp_path) as sink:
    ...     send_email(message, SmtpSettings(port=sink.port))
    ...     [received] = sink.wait_for(1, timeout=5)

    `smtp_options` go to aiosmtpd's SMTP class (e.g. `tls_context=`, `require_starttls=`,
    `authenticator=`); `ssl_context` makes it an implicit-TLS server.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        handler_factory: Callable[[Path], SinkHandler] = SinkHandler,
        ssl_context: ssl.SSLContext | None = None,
        **smtp_options: Any,
    ) -> None:
        self.directory = Path(directory)
        self.handler = handler_factory(self.directory)
        self.host = HOST
        self._wanted_port = port
        self._ssl_context = ssl_context
        self._smtp_options = smtp_options
        self._controller: Controller | None = None
        self.port = 0

    def start(self) -> MailSink:
        attempts = 1 if self._wanted_port else 5  # a picked port can be taken before we bind
        for attempt in range(attempts):
            port = self._wanted_port or free_port(self.host)
            controller = Controller(
                self.handler,
                hostname=self.host,
                port=port,
                ssl_context=self._ssl_context,
                server_hostname="mailsink.localhost",
                **self._smtp_options,
            )
            try:
                controller.start()
            except OSError:
                if attempt + 1 == attempts:
                    raise
                continue
            self._controller = controller
            self.port = port
            return self
        raise RuntimeError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def maildir_path(self) -> Path:
        return self.handler.maildir_path

    @property
    def eml_dir(self) -> Path:
        return self.handler.eml_dir

    def received(self) -> list[ReceivedMessage]:
        """The messages received so far, oldest first."""
        return self.handler.received()

    def messages(self) -> list[EmailMessage]:
        """The messages received so far, parsed."""
        return [message.parsed() for message in self.handler.received()]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until `count` messages arrived (polls nothing: woken by each arrival)."""
        return self.handler.wait_for(count, timeout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m monitor.lab.mailsink",
        description="Local SMTP sink: saves every message to DIR/maildir and DIR/eml.",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    with MailSink(args.directory, port=args.port) as sink:
        print(f"mail sink listening on {sink.host}:{sink.port}")
        print(f"messages go to {sink.eml_dir} and {sink.maildir_path}; Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
