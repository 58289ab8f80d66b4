"""A child process for tests/service/test_channel_crash.py, killed with SIGKILL at a moment.

`python -m tests.support.channel_child DB URL NOW HOLD_AT` drains the webhook route `hook`
(at URL) with `deliver_route` and the real `WebhookChannel`; after the receiver's 2xx for
the HOLD_AT-th row (the `sent` mark not yet committed) it prints `accepted <key>` and
blocks until killed. It uses deliver_route's public `channel` parameter; no product code
is patched.
"""

from __future__ import annotations

import sys
from typing import Any

from monitor.db import Store
from monitor.deliver.channels.base import Delivered, Outcome
from monitor.deliver.channels.webhook import WebhookChannel
from monitor.models import Route, from_iso
from monitor.pipeline import deliver_route


class HoldAfter:
    def __init__(self, channel: WebhookChannel, hold_at: int) -> None:
        self.channel = channel
        self.hold_at = hold_at
        self.accepted = 0

    def send(self, payload: dict[str, Any]) -> Outcome:
        outcome = self.channel.send(payload)
        if isinstance(outcome, Delivered):
            self.accepted += 1
            print(f"delivered {payload['key']}", flush=True)
            if self.accepted == self.hold_at:
                print(f"accepted {payload['key']}", flush=True)
                sys.stdin.read()  # until killed
                sys.exit(3)
        return outcome

    def close(self) -> None:
        self.channel.close()


def main(db_path: str, url: str, now_text: str, hold_at: str) -> None:
    route = Route(name="hook", channel="webhook", url=url, timeout_seconds=5.0)
    channel = HoldAfter(WebhookChannel(url, timeout_seconds=5.0), int(hold_at))
    with Store.open(db_path, migrate=False) as store:
        summary = deliver_route(store, route, now=from_iso(now_text), channel=channel)
    print(f"done {summary.as_dict()}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
