"""The generic JSON webhook: POST the versioned payload (`payload`, README "JSON webhook").

Headers: `Idempotency-Key` (the alert key, also the payload's `key`), `X-Monitor-Payload-
Version`, and `Authorization: Bearer …` when a token is configured. Delivery is at least
once: after a crash between the receiver's 2xx and our commit the same payload, with the
same key, comes again; a receiver drops a key it has seen.
"""

from __future__ import annotations

from typing import Any

from monitor.deliver.channels.base import Outcome
from monitor.deliver.channels.http import HttpPoster


class WebhookChannel:
    def __init__(self, url: str, *, timeout_seconds: float, token: str | None = None) -> None:
        self.url = url
        self._poster = HttpPoster(timeout_seconds=timeout_seconds, token=token)

    def send(self, payload: dict[str, Any]) -> Outcome:
        return self._poster.post_json(
            self.url,
            payload,
            headers={
                "Idempotency-Key": str(payload.get("key", "")),
                "X-Monitor-Payload-Version": str(payload.get("version", "")),
            },
        )

    def close(self) -> None:
        self._poster.close()
