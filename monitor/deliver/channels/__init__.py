"""Non-email channels (issue 13): Apprise (chat and push), a JSON webhook, Alertmanager.

Each channel turns one stored payload (`payload.build_payload`) into one HTTP exchange and
says how it went (`Delivered`, `Retry`, `Dead`); the outbox rows, routing and retries live
in `routing`, `store` and `dispatch`. Email stays in `monitor.deliver.notify`.
"""

from monitor.deliver.channels.base import Channel, Dead, Delivered, Outcome, Retry

__all__ = ["Channel", "Dead", "Delivered", "Outcome", "Retry"]
