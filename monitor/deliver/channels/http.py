"""The HTTP channels' shared client: one POST, its answer classified (`base`)."""

from __future__ import annotations

from typing import Any

import httpx

from monitor import __version__
from monitor.deliver.channels.base import Outcome, Retry, outcome_for_status

USER_AGENT = f"monitor/{__version__} (alert delivery)"


class HttpPoster:
    """POSTs JSON with a timeout on every step; never follows redirects or proxy settings
    from the environment (the operator configured this exact address)."""

    def __init__(self, *, timeout_seconds: float, token: str | None = None) -> None:
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            headers=headers,
            follow_redirects=False,
            trust_env=False,
        )

    def post_json(self, url: str, body: Any, *, headers: dict[str, str] | None = None) -> Outcome:
        try:
            response = self._client.post(url, json=body, headers=headers or {})
        except httpx.TimeoutException as exc:
            return Retry(f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return Retry(f"connection error: {type(exc).__name__}: {exc}"[:300])
        return outcome_for_status(response.status_code, response.headers, body=response.text)

    def close(self) -> None:
        self._client.close()
