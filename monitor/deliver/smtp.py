"""Sending alert emails: SMTP delivery with a timeout on every step, the retryable/permanent
classification of delivery failures, the retry backoff, the bounded stop (`DeliveryStop`),
and the Maildir copy used by the demo. The only module that talks SMTP.

Must not: decide whether an alert is due (that is `monitor.score.alerts`) or touch the database.
"""

from __future__ import annotations

import contextlib
import email
import email.utils
import functools
import ipaddress
import logging
import mailbox
import random
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from monitor.deliver.addresses import ADDR_SPEC
from monitor.deliver.content import clean_line
from monitor.deliver.email_message import checked_address
from monitor.errors import DeliveryError
from monitor.models import SmtpSettings

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _envelope_recipients(message: EmailMessage) -> list[str]:
    fields: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        fields += [str(value) for value in message.get_all(name, [])]
    recipients: list[str] = []
    bad: list[str] = []
    for _, addr in email.utils.getaddresses(fields):
        (recipients if ADDR_SPEC.fullmatch(addr) else bad).append(addr)
    if bad and not recipients:
        raise DeliveryError(f"bad recipient address {bad[0]!r} in the message", retryable=False)
    if bad:  # one bad address (an old outbox row) must not stop the message to the others
        log.warning(
            "recipients left out of the envelope message_id=%s bad=%s",
            message.get("Message-ID"),
            ", ".join(repr(addr) for addr in bad),
        )
    if not recipients:
        raise DeliveryError("the message has no recipients (To is empty)", retryable=False)
    return recipients


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {clean_line(text, 200)}".strip()


# 5xx replies at MAIL/RCPT/DATA that concern the account, not the message (RFC 4954).
_SETUP_CODES = frozenset({530, 534, 535, 538})


QUIT_TIMEOUT_SECONDS = 5.0  # everything is recorded by then: a goodbye never holds a round long


class DeliveryInterrupted(DeliveryError):
    """The stop path interrupted a delivery. Not a failure of the message: it stays due, with
    no attempt counted, and goes out at the next start (with the same Message-ID; if the
    server kept the copy it was writing, that is the at-least-once repeat)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class DeliveryStop:
    """Ends a delivery running in another thread: the daemon's stop path holds one.

    - `stop()` (at SIGTERM): no new message or connection is started; the message in flight
      may still get its reply; a QUIT under way is cut short (all before it is recorded).
    - `interrupt()` (at the stop deadline): also wakes every blocking network call of the
      sessions watching it (connect, TLS handshake, a reply awaited) by shutting their socket
      down; the message in flight ends with `DeliveryInterrupted`.

    A blocked socket call does not notice that a thread or task was cancelled, and closing
    its file descriptor does not wake it on Linux; `shutdown(2)` does. Both calls are
    one-way and thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = False
        self._interrupted = False
        self._sessions: set[SmtpSession] = set()

    def is_stopping(self) -> bool:
        return self._stopping

    def is_interrupted(self) -> bool:
        return self._interrupted

    def stop(self) -> None:
        self._trip(interrupt=False)

    def interrupt(self) -> None:
        self._trip(interrupt=True)

    def _trip(self, *, interrupt: bool) -> None:
        with self._lock:
            self._stopping = True
            self._interrupted = self._interrupted or interrupt
            sessions = list(self._sessions)
        for session in sessions:
            session._wake(hard=interrupt)

    def _watch(self, session: SmtpSession) -> None:
        with self._lock:
            self._sessions.add(session)

    def _unwatch(self, session: SmtpSession) -> None:
        with self._lock:
            self._sessions.discard(session)


class _WatchedSMTP(smtplib.SMTP):
    """smtplib.SMTP that hands each socket to `on_socket` before connecting it, so the
    session can shut it down from another thread even while it connects."""

    on_socket: Callable[[socket.socket], None]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # socket.create_connection, with the hook (source_address is never set here)
        error: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        ):
            sock = socket.socket(family, kind, proto)
            try:
                self.on_socket(sock)
                sock.settimeout(timeout)
                sock.connect(address)
                return sock
            except OSError as exc:
                error = exc
                sock.close()
            except BaseException:
                sock.close()
                raise
        raise error or OSError(f"no address found for {host}")


class _WatchedSMTPSSL(smtplib.SMTP_SSL, _WatchedSMTP):
    """Implicit TLS over `_WatchedSMTP`'s socket (SMTP_SSL wraps what its parent connects)."""


class SmtpSession:
    """One SMTP connection that delivers messages one after the other, then says QUIT.

    The connection is opened for the first message and opened again after any failure (a
    failed connection is dropped without QUIT). `send` returns as soon as the server
    accepted the message (its 250), so the caller records it before the next message and
    before the QUIT, which `close` sends politely, bounded by QUIT_TIMEOUT_SECONDS; a QUIT
    that fails changes nothing. `stop` lets another thread end the session (see DeliveryStop).
    """

    def __init__(
        self,
        smtp: SmtpSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        stop: DeliveryStop | None = None,
    ) -> None:
        self.smtp = smtp
        self.server = f"{smtp.host}:{smtp.port}"
        self._ssl_context = ssl_context
        self._stop = stop or DeliveryStop()
        self._client: smtplib.SMTP | None = None
        self._lock = threading.Lock()  # guards _control and _quitting against _wake
        self._control: socket.socket | None = None  # a dup of the connection, for shutdown
        self._quitting = False
        self._stage = "connect"
        self._stop._watch(self)

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: EmailMessage) -> None:
        """Deliver `message`; return only once the server accepted it.

        Raises `DeliveryError` as `send_email` documents, or `DeliveryInterrupted` when the
        stop path ended the attempt (or had asked that no new message start).
        """
        server = self.server
        smtp = self.smtp
        recipients = _envelope_recipients(message)
        try:
            sender = checked_address(smtp.sender, "sender").addr_spec
        except ValueError as error:
            raise DeliveryError(f"smtp.sender: {error}", retryable=True) from error
        if smtp.username and smtp.security == "none" and not _is_loopback(smtp.host):
            raise DeliveryError(
                f"refusing to send the SMTP password unencrypted to {server}; "
                "set smtp.security to starttls or tls",
                retryable=True,
            )
        if self._stop.is_stopping():
            raise DeliveryInterrupted(f"not sent to {server}: monitor is stopping")
        try:
            client = self._client or self._open()
            self._stage = "send"
            refused = client.send_message(message, from_addr=sender, to_addrs=recipients)
        except Exception as error:
            self._drop()
            if isinstance(error, DeliveryInterrupted):
                raise
            if self._stop.is_interrupted():
                raise DeliveryInterrupted(
                    f"delivery to {server} interrupted by shutdown (during {self._stage})"
                ) from error
            if isinstance(error, DeliveryError):
                raise
            failure = _delivery_failure(
                error, server=server, stage=self._stage, timeout=smtp.timeout_seconds
            )
            if failure is None:
                raise
            raise failure from error
        if refused:
            log.warning(
                "smtp_partial_delivery server=%s message_id=%s refused=%s",
                server,
                message.get("Message-ID"),
                "; ".join(f"{addr}: {_reply_text(c, r)}" for addr, (c, r) in refused.items()),
            )
        log.info(
            "smtp_sent server=%s message_id=%s recipients=%d",
            server,
            message.get("Message-ID"),
            len(recipients) - len(refused),
        )

    def close(self) -> None:
        """QUIT (unless stopping; bounded; its failure ignored), then close the connection."""
        client = self._client
        try:
            if client is not None:
                with self._lock:
                    self._quitting = True  # from now on a stop() cuts the QUIT short
                if not self._stop.is_stopping():
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        if client.sock is not None:
                            client.sock.settimeout(
                                min(self.smtp.timeout_seconds, QUIT_TIMEOUT_SECONDS)
                            )
                        client.quit()
        finally:
            self._drop()
            self._stop._unwatch(self)

    # -- inside --------------------------------------------------------------

    def _open(self) -> smtplib.SMTP:
        smtp = self.smtp
        server = self.server
        timeout = smtp.timeout_seconds
        self._stage = "connect"
        client: _WatchedSMTP
        if smtp.security == "tls":
            client = _WatchedSMTPSSL(
                local_hostname=_local_hostname(),
                timeout=timeout,
                context=self._ssl_context or _ca(smtp.ca_file),
            )
        else:
            client = _WatchedSMTP(local_hostname=_local_hostname(), timeout=timeout)
        client.on_socket = self._watch_socket
        client._host = smtp.host  # type: ignore[attr-defined]  # TLS checks this name
        self._client = client
        code, reply = client.connect(smtp.host, smtp.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, reply)
        self._stage = "EHLO"
        client.ehlo_or_helo_if_needed()
        if smtp.security == "starttls":
            self._stage = "STARTTLS"
            if not client.has_extn("starttls"):
                raise DeliveryError(
                    f"SMTP server {server} does not offer STARTTLS (security=starttls); "
                    "not sending in plain text",
                    retryable=True,
                )
            client.starttls(context=self._ssl_context or _ca(smtp.ca_file))
            client.ehlo()
        if smtp.username:
            self._stage = "login"
            if not client.has_extn("auth"):
                raise DeliveryError(
                    f"SMTP server {server} does not offer AUTH, but smtp.username is set",
                    retryable=True,
                )
            client.login(smtp.username, smtp.password or "")
        return client

    def _watch_socket(self, sock: socket.socket) -> None:
        """Keep a duplicate of `sock` (the same connection, whatever TLS wraps it later) for
        `_wake`; refuse to connect once interrupted."""
        with self._lock:
            if self._control is not None:
                self._control.close()  # the previous address tried
            self._control = sock.dup()
        if self._stop.is_interrupted():
            raise DeliveryInterrupted(f"not connecting to {self.server}: monitor is stopping")

    def _wake(self, *, hard: bool) -> None:
        """Called by DeliveryStop from another thread."""
        with self._lock:
            if self._control is not None and (hard or self._quitting):
                with contextlib.suppress(OSError):
                    self._control.shutdown(socket.SHUT_RDWR)

    def _drop(self) -> None:
        """Close the connection without QUIT."""
        client, self._client = self._client, None
        try:
            if client is not None:
                client.close()
        finally:
            with self._lock:
                if self._control is not None:
                    self._control.close()
                    self._control = None
                self._quitting = False


def _delivery_failure(
    error: Exception, *, server: str, stage: str, timeout: float
) -> DeliveryError | None:
    """The DeliveryError that `error`, raised during `stage`, means (None: not ours)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = {addr: code for addr, (code, _) in error.recipients.items()}
        replies = "; ".join(
            f"{addr}: {_reply_text(code, reply)}"
            for addr, (code, reply) in error.recipients.items()
        )
        retryable = any(code < 500 for code in codes.values())
        return DeliveryError(
            f"SMTP server {server} refused all recipients: {replies}", retryable=retryable
        )
    if isinstance(error, smtplib.SMTPResponseException):
        # sender refused, DATA error, login, greeting
        reply = _reply_text(error.smtp_code, error.smtp_error)
        retryable = (
            stage != "send"
            or not 500 <= error.smtp_code < 600
            or error.smtp_code in _SETUP_CODES  # "log in first": settings, not this message
        )
        return DeliveryError(
            f"SMTP server {server} answered {reply} (during {stage})", retryable=retryable
        )
    if isinstance(error, smtplib.SMTPServerDisconnected):
        if isinstance(error.__context__, TimeoutError):  # smtplib turns a read timeout into this
            return DeliveryError(
                f"SMTP server {server} did not answer within {timeout:g} s (during {stage})",
                retryable=True,
            )
        return DeliveryError(
            f"SMTP server {server} closed the connection during {stage}: {clean_line(error, 200)}",
            retryable=True,
        )
    if isinstance(error, smtplib.SMTPNotSupportedError):  # the message needs SMTPUTF8
        return DeliveryError(
            f"SMTP server {server} cannot take this message: {clean_line(error, 200)}",
            retryable=stage != "send",
        )
    if isinstance(error, TimeoutError):
        return DeliveryError(
            f"SMTP server {server} did not answer within {timeout:g} s (during {stage})",
            retryable=True,
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return DeliveryError(
            f"TLS certificate of SMTP server {server} not trusted: {clean_line(error, 200)}",
            retryable=True,
        )
    if isinstance(error, OSError):  # refused, unreachable, DNS failure, TLS errors, other smtplib
        return DeliveryError(
            f"cannot reach SMTP server {server} (during {stage}): {clean_line(error, 200)}",
            retryable=True,
        )
    if isinstance(error, (ValueError, UnicodeError, LookupError, TypeError)):
        return DeliveryError(
            f"message cannot be sent to {server}: {clean_line(error, 200)}", retryable=False
        )
    return None


def send_email(
    message: EmailMessage,
    smtp: SmtpSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    stop: DeliveryStop | None = None,
) -> None:
    """Deliver `message` to the SMTP server in `smtp` in a session of its own; return only
    once the server accepted it (and the session said QUIT).

    Security "none", "starttls" (refused if the server does not offer it: never falls back to
    plain text) or "tls" (implicit TLS). Certificates are verified against the system CAs, the
    CAs of `smtp.ca_file`, or `ssl_context` if given. Every network step (connect, each command, the reply after
    DATA) is bounded by `smtp.timeout_seconds`, and `stop` can end it early from another
    thread. The password is never logged or put in errors.

    Raises `DeliveryError`:
    - `retryable=True`: the server could not be reached, timed out, dropped the connection,
      answered 4xx, or refused the connection setup (greeting, EHLO, STARTTLS, TLS, login);
      those concern the server or its settings, not this message, so the message waits.
    - `retryable=False`: the server refused this message with 5xx at MAIL, RCPT or DATA, every
      recipient was refused permanently, or the message itself is bad (addresses, encoding).
    - `DeliveryInterrupted` (retryable): `stop` ended the attempt.
    Some recipients refused while others accepted: delivered; the refusals are logged.
    """
    with SmtpSession(smtp, ssl_context=ssl_context, stop=stop) as session:
        session.send(message)


def _ca(ca_file: str | None) -> ssl.SSLContext:
    """Verify the server against the system CAs (or those of `ca_file`), with its host name
    (never smtplib's default, which verifies nothing). Made only when TLS is used: loading
    the CAs costs ~30 ms."""
    return ssl.create_default_context(cafile=ca_file)


@functools.cache
def _local_hostname() -> str:
    """Our name in EHLO (what smtplib would use, looked up once rather than per message)."""
    return socket.getfqdn()


def retry_delay_seconds(
    attempts: int,
    *,
    base: float = 60,
    cap: float = 6 * 3600,
    rng: random.Random | None = None,
) -> float:
    """How long to wait before the next attempt, after `attempts` failed ones (1, 2, …).

    Exponential (`base`, 2×, 4×, …) up to `cap`, minus up to 20 % jitter, so that rows that
    failed together do not retry together. The jitter never lets a delay fall below the one
    before it: delay(n) ≤ d(n) and delay(n+1) > 0.8 × 2 × d(n) > d(n), until the cap.
    """
    exponent = min(max(attempts, 1) - 1, 64)
    ceiling = min(cap, base * 2.0**exponent)
    jitter = (rng or _RNG).random()
    return max(0.0, ceiling * (1.0 - 0.2 * jitter))


_RNG = random.Random()


def write_to_maildir(message: EmailMessage, maildir: Path) -> Path:
    """Save `message` in the Maildir at `maildir` (created if needed); return the new file.

    Raises `DeliveryError(retryable=True)` when the folder cannot be written (full disk,
    permissions): the copy can be written later.
    """
    try:
        box = mailbox.Maildir(maildir, create=True)
        key = box.add(message.as_bytes())
    except OSError as error:
        raise DeliveryError(
            f"cannot write the message to Maildir {maildir}: {error}", retryable=True
        ) from error
    return Path(maildir) / "new" / key
