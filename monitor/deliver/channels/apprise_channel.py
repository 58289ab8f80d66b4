"""Every other service through Apprise (Slack, Teams, Telegram, Matrix, Discord, ntfy,
Gotify, Pushover, form and JSON webhooks, …): one Apprise URL per route.

Apprise says only whether a service accepted; the HTTP status is in its log lines
("… error=400."). A 4xx other than 408/425/429 there is permanent (dead); every other
failure (timeouts, connection errors, 429, 5xx, no status) is retried with backoff.
Apprise is an optional dependency (`pip install 'monitor[apprise]'`); `available()`
lets the settings loader refuse an Apprise route with a one-line error when it is missing.
"""

from __future__ import annotations

import re
from typing import Any

from monitor.deliver.channels.base import Dead, Delivered, Outcome, Retry, outcome_for_status

MISSING = (
    "an apprise route needs the Apprise library: pip install 'monitor[apprise]' "
    "(or pip install apprise)"
)
_STATUS = re.compile(r"error=(\d{3})\b")
_OK_KINDS = frozenset({"resolved", "feed_recovered"})
_WARN_KINDS = frozenset({"level_up", "surge", "critical", "feed_down"})


def available() -> bool:
    try:
        import apprise  # noqa: F401
    except ImportError:
        return False
    return True


def check_url(url: str) -> str | None:
    """None if Apprise understands `url`, else the problem (one line, no secret in it)."""
    import apprise

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"Apprise does not understand this {scheme}:// URL (see the Apprise wiki)"
    return None


class AppriseChannel:
    def __init__(self, url: str, *, timeout_seconds: float) -> None:
        import apprise

        self._apprise = apprise
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            raise ValueError(check_url(url) or "invalid Apprise URL")
        # Apprise's own timeouts (4 s by default), set to the route's.
        plugin.socket_connect_timeout = timeout_seconds
        plugin.socket_read_timeout = timeout_seconds
        self._service = apprise.Apprise()
        self._service.add(plugin)

    def send(self, payload: dict[str, Any]) -> Outcome:
        apprise = self._apprise
        kind = str(payload.get("kind", ""))
        notify_type = (
            apprise.NotifyType.SUCCESS
            if kind in _OK_KINDS
            else apprise.NotifyType.WARNING
            if kind in _WARN_KINDS
            else apprise.NotifyType.INFO
        )
        result = self._service.notify(
            body=str(payload.get("text") or payload.get("reason") or ""),
            title=str(payload.get("title", "")),
            notify_type=notify_type,
            body_format=apprise.NotifyFormat.TEXT,
        )
        if result:
            return Delivered("accepted")
        lines = [
            str(entry.message)
            for service in getattr(result, "results", []) or []
            for entry in service.logs()
        ]
        error = " ".join(" | ".join(lines).split())[:300] or "Apprise: not delivered"
        for line in reversed(lines):
            found = _STATUS.search(line)
            if found:
                outcome = outcome_for_status(int(found.group(1)), {})
                return Dead(error) if isinstance(outcome, Dead) else Retry(error)
        return Retry(error)

    def close(self) -> None:
        pass
