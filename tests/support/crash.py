"""Helpers for the delivery and crash tests: real configs, alerts recorded the production way,
SMTP handlers that fail (or hold a message) on cue, local feeds, and `monitor` subprocesses.

- `delivery_config`: the repo's indicators.yaml with settings pointing at a local SMTP server.
- `record_alerts`: urgent alerts written through `pipeline.record_alert` (outbox rows included).
- `StagedFaults`: an aiosmtpd handler that fails the first N sessions at MAIL, RCPT or DATA, or
  hangs after DATA, and records every DATA attempt it saw (to compare Message-IDs).
- `HoldingHandler`: stores each message, then holds its 250 until the test releases it, so a
  test can kill the client inside the "server has it, client does not know" window.
- `write_settings` / `write_indicators` / `rss`: files for `python -m monitor` subprocesses.
- `ChildProcess`: a subprocess whose stdout lines can be awaited with a bounded timeout.

Every wait is bounded; nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from monitor import pipeline
from monitor.config import Config, load_config
from monitor.db import Store
from monitor.lab.mailsink import ReceivedMessage, SinkHandler
from monitor.models import AlertDecision, to_iso

REPO = Path(__file__).resolve().parents[2]
INDICATORS = REPO / "indicators.yaml"
CHILD_SCRIPT = Path(__file__).resolve().parent / "crash_child.py"
RECIPIENT = "duty@example.org"
SENDER = "monitor@monitor.test"
WAIT = 30.0  # seconds: the bound of every wait for a real event


@functools.cache
def base_config() -> Config:
    return load_config(indicators_path=INDICATORS, settings_path=None, env={})


def delivery_config(db_path: Path, smtp_port: int, *, timeout: float = 5.0) -> Config:
    """The repo's indicators with SMTP settings for a server on 127.0.0.1:`smtp_port`."""
    config = base_config()
    settings = config.settings
    smtp = replace(
        settings.smtp,
        host="127.0.0.1",
        port=smtp_port,
        security="none",
        sender=SENDER,
        recipients=(RECIPIENT,),
        timeout_seconds=timeout,
        username=None,
        password=None,
    )
    return replace(config, settings=replace(settings, db_path=db_path, maildir=None, smtp=smtp))


def alert_decision(number: int, at: datetime, *, theatre: str = "kg-tj") -> AlertDecision:
    """An urgent alert whose key is unique per `number` (a critical story of its own)."""
    return AlertDecision(
        dedup_key=f"{theatre}:critical:stories:{number}@{to_iso(at)}",
        kind="critical",
        theatre_id=theatre,
        created_at=at,
        urgent=True,
        level="high",
        index=60.0,
        reason=f"critical sign border_clash: test story {number}",
    )


def record_alerts(
    store: Store, config: Config, count: int, *, at: datetime, first: int = 1
) -> list[AlertDecision]:
    """Record `count` urgent alerts, each in its own transaction, as scoring does."""
    decisions = [alert_decision(first + n, at) for n in range(count)]
    for decision in decisions:
        with store.transaction():
            alert_id = pipeline.record_alert(store, config, decision, now=at)
        assert alert_id is not None, f"alert {decision.dedup_key} was recorded before"
    return decisions


def outbox_rows(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT o.id, o.alert_id, o.message_id, o.status, o.attempts, o.next_attempt_at, "
        "o.last_error, o.sent_at, o.message, a.dedup_key "
        "FROM outbox o JOIN alerts a ON a.id = o.alert_id ORDER BY o.id"
    )


def message_id_of(raw: bytes) -> str:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    return str(parsed["Message-ID"])


def received_ids(received: Sequence[ReceivedMessage]) -> list[str]:
    return [message_id_of(message.raw) for message in received]


def same_message(stored: bytes, received: bytes) -> bool:
    """The outbox bytes and what the server got are one message (line ends aside)."""
    return stored.replace(b"\r\n", b"\n").rstrip(b"\n") == received.replace(b"\r\n", b"\n").rstrip(
        b"\n"
    )


# ---------------------------------------------------------------------------
# SMTP handlers


class StagedFaults(SinkHandler):
    """Fails the first `times` sessions at `stage` ("mail", "rcpt", "data") with `reply`, or
    with stage "hang" sleeps `hang_seconds` after DATA (aiosmtpd cancels the sleep, and so
    drops the message, when the client hangs up). Records the raw content of every DATA."""

    def __init__(
        self,
        directory: Path,
        *,
        stage: str | None = None,
        reply: str = "451 4.3.0 Try again later",
        times: int = 0,
        hang_seconds: float = 60.0,
    ) -> None:
        super().__init__(directory)
        self.stage = stage
        self.reply = reply
        self.times = times
        self.hang_seconds = hang_seconds
        self.sessions = 0
        self.data_attempts: list[bytes] = []
        self._failing = False

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        self.sessions += 1
        self._failing = self.sessions <= self.times
        if self._failing and self.stage == "mail":
            return self.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self._failing and self.stage == "rcpt":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts.append(bytes(envelope.original_content or b""))
        if self._failing and self.stage == "data":
            return self.reply
        if self._failing and self.stage == "hang":
            await asyncio.sleep(self.hang_seconds)
        return await super().handle_DATA(server, session, envelope)


def staged(**options: Any) -> Any:
    return functools.partial(StagedFaults, **options)


class HoldingHandler(SinkHandler):
    """Stores each message; once armed, it holds the 250 of one message (after letting
    `skip` others through) until the test calls `release()`. The test kills the client in
    between: the server has the message, the client never learned it. The Message-IDs held
    are listed in `held`."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self._skip: int | None = None  # None: not armed
        self.stored = threading.Event()
        self._release = threading.Event()
        self.held: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = self.keep(server, envelope)
        if self._skip is not None:
            if self._skip > 0:
                self._skip -= 1
            else:
                self._skip = None
                self.held.append(message_id_of(message.raw))
                self.stored.set()
                loop = asyncio.get_running_loop()
                # in a worker thread: the server's loop keeps serving meanwhile
                await loop.run_in_executor(None, self._release.wait, WAIT)
        return "250 2.0.0 Message accepted"

    def arm(self, *, skip: int = 0) -> None:
        self.stored.clear()
        self._release.clear()
        self._skip = skip

    def release(self) -> None:
        self._skip = None
        self._release.set()


class BrokenSmtpServer:
    """A TCP listener on 127.0.0.1 that greets every client with `greeting` (None: says
    nothing) and keeps the connection until stopped: a 421 or a silent server.

    Unlike `tests.support.smtp.RawServer` its sockets use SO_REUSEADDR, so a good server can
    bind the same port at once after it stops (an accepted socket that closes first lingers
    in TIME_WAIT and, without that option, blocks the port for a minute)."""

    def __init__(self, greeting: bytes | None) -> None:
        self.greeting = greeting
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = int(self._listener.getsockname()[1])
        self._clients: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._stopped.is_set():
                client.close()
                return
            if self.greeting is not None:
                client.sendall(self.greeting)
            self._clients.append(client)

    def __enter__(self) -> BrokenSmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        # accept() does not wake when the socket closes; a connection wakes it
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT):
            self._thread.join(timeout=WAIT)
        self._listener.close()
        for client in self._clients:
            client.close()


# ---------------------------------------------------------------------------
# Files for `python -m monitor`


def write_settings(
    directory: Path,
    *,
    db_path: Path,
    smtp_port: int,
    smtp_timeout: float = 5.0,
    extra: str = "",
) -> Path:
    path = directory / "monitor.toml"
    path.write_text(
        f"""database_path = "{db_path}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "{SENDER}"
recipients = ["{RECIPIENT}"]
timeout_seconds = {smtp_timeout}

[http]
allow_private_networks = ["127.0.0.0/8"]
per_host_min_interval_seconds = 0.0

[schedule]
default_feed_interval_seconds = 0
min_feed_interval_seconds = 0
{extra}""",
        encoding="utf-8",
    )
    return path


def write_indicators(directory: Path, feeds: Sequence[Mapping[str, Any]]) -> Path:
    """The repo's indicators.yaml with `feeds:` replaced."""
    document = yaml.safe_load(INDICATORS.read_text(encoding="utf-8"))
    document["feeds"] = [dict(feed) for feed in feeds]
    path = directory / "indicators.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass(frozen=True)
class FeedItem:
    guid: str
    title: str
    body: str
    published_at: datetime
    url: str


def rss(title: str, items: Sequence[FeedItem]) -> bytes:
    """A small RSS 2.0 document (synthetic wrappers of corpus items)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>https://feeds.monitor.test/</link>",
        "<description>synthetic test feed</description>",
    ]
    for item in items:
        parts.append(
            f"<item><title>{escape(item.title)}</title><link>{escape(item.url)}</link>"
            f'<guid isPermaLink="false">{escape(item.guid)}</guid>'
            f"<pubDate>{format_datetime(item.published_at)}</pubDate>"
            f"<description>{escape(item.body)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


# ---------------------------------------------------------------------------
# Subprocesses


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("NOTIFY_SOCKET", None)
    return env


class ChildProcess:
    """A subprocess whose stdout lines arrive on a queue (read by a thread), so a test can
    wait for a line with a timeout and kill the process at that moment."""

    def __init__(self, args: Sequence[str], *, cwd: Path) -> None:
        self.args = list(args)
        self.process = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def python(cls, *args: str, cwd: Path) -> ChildProcess:
        return cls([sys.executable, *args], cwd=cwd)

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            (self.output if is_stdout else self.errors).append(line)
            if is_stdout:
                self.lines.put(line)
        if is_stdout:
            self.lines.put(None)

    def wait_for_line(self, prefix: str, timeout: float = WAIT) -> str:
        """The first stdout line starting with `prefix`; AssertionError if the process ends
        or `timeout` passes first."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line {prefix!r} within {timeout:g} s; stderr: {self.stderr()[-2000:]}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"process ended before printing {prefix!r}; stderr: {self.stderr()[-2000:]}"
                )
            if line.startswith(prefix):
                return line

    def kill(self) -> int:
        self.process.kill()  # SIGKILL
        return self.wait()

    def wait(self, timeout: float = WAIT) -> int:
        code = self.process.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=timeout)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def stdout(self) -> str:
        return "\n".join(self.output)

    def stderr(self) -> str:
        return "\n".join(self.errors)
