"""Child processes for tests/test_crash.py, killed with SIGKILL at a chosen moment.

Run as `python -m tests.support.crash_child MODE ...` from the repository root. Each mode prints a
line when it reaches its moment, then blocks on stdin until the test kills it:

- `deliver SETTINGS INDICATORS NOW HOLD_AT`: drains the outbox with `pipeline.deliver_outbox`
  through the real `send_email`; after the HOLD_AT-th message the server accepted (its
  250 received, the `sent` mark not yet committed) it prints `accepted <Message-ID>` and
  blocks. It uses deliver_outbox's public `send` parameter; no product code is patched.
- `wal DB COMMITTED`: records COMMITTED alerts (each committed), then opens one more
  transaction, records an alert in it, prints `in-transaction` and blocks: killed there,
  the -wal file holds committed and uncommitted frames.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from monitor import pipeline
from monitor.config import load_config
from monitor.db import Store
from monitor.deliver.smtp import send_email
from monitor.models import SmtpSettings, from_iso
from tests.support.crash import alert_decision, delivery_config


def _block() -> None:
    sys.stdin.read()  # until killed (or the test closes stdin)
    sys.exit(3)


def deliver(settings: str, indicators: str, now_text: str, hold_at: str) -> None:
    config = load_config(indicators_path=indicators, settings_path=settings, env={})
    accepted = 0

    def send_then_hold(message: EmailMessage, smtp: SmtpSettings) -> None:
        nonlocal accepted
        send_email(message, smtp)  # returns once the server answered 250
        accepted += 1
        print(f"sent {message['Message-ID']}", flush=True)
        if accepted == int(hold_at):
            print(f"accepted {message['Message-ID']}", flush=True)
            _block()

    with Store.open(config.settings.db_path) as store:
        summary = pipeline.deliver_outbox(
            store, config, now=from_iso(now_text), send=send_then_hold
        )
    print(f"done {summary.as_dict()}", flush=True)


def wal(db_path: str, committed: str) -> None:
    at = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)
    store = Store.open(db_path)
    config = delivery_config(Path(db_path), 25)
    count = int(committed)
    for number in range(1, count + 1):
        with store.transaction():
            pipeline.record_alert(store, config, alert_decision(number, at), now=at)
    with store.transaction():
        pipeline.record_alert(store, config, alert_decision(count + 1, at), now=at)
        print("in-transaction", flush=True)
        _block()


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    if mode == "deliver":
        deliver(*arguments)
    elif mode == "wal":
        wal(*arguments)
    else:
        sys.exit(f"unknown mode {mode!r}")
