"""`monitor test-notify [ROUTE]`: one test message through each route now, bypassing the
outbox, with one line per route saying what happened (secrets masked)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.deliver.channels.base import Delivered, Retry
from monitor.deliver.channels.dispatch import open_channel, send_safely
from monitor.deliver.channels.payload import build_payload
from monitor.deliver.channels.settings import masked_url
from monitor.deliver.content import AlertEmail
from monitor.errors import ConfigError
from monitor.models import AlertDecision, Route, to_iso


def test_payload(now: datetime) -> dict[str, object]:
    decision = AlertDecision(
        dedup_key=f"test@{to_iso(now)}",
        kind="test",
        theatre_id=None,
        created_at=now,
        urgent=True,
        reason="a test message from `monitor test-notify`",
    )
    return build_payload(AlertEmail(decision=decision, command_hint="monitor status"))


def send_test_messages(
    configured: Sequence[Route], route_name: str | None, *, now: datetime
) -> tuple[list[str], bool]:
    """(one line per route, whether any failed)."""
    routes = tuple(configured)
    if not routes:
        raise ConfigError("no routes configured (add [[routes]] to monitor.toml; see README)")
    if route_name is not None:
        routes = tuple(r for r in routes if r.name == route_name)
        if not routes:
            names = ", ".join(r.name for r in configured)
            raise ConfigError(f"no route named {route_name!r} (routes: {names})")
    payload = test_payload(now)
    lines, failed = [], False
    for route in routes:
        target = f"{route.name} ({route.channel} {masked_url(route)})"
        try:
            channel = open_channel(route)
        except ValueError as exc:
            lines.append(f"{target}: FAILED: {exc}")
            failed = True
            continue
        try:
            outcome = send_safely(channel, payload)
        finally:
            channel.close()
        if isinstance(outcome, Delivered):
            lines.append(f"{target}: delivered ({outcome.detail or 'ok'})")
        else:
            failed = True
            kind = "FAILED, would retry" if isinstance(outcome, Retry) else "FAILED, permanent"
            detail = outcome.error if isinstance(outcome, Retry) else outcome.reason
            lines.append(f"{target}: {kind}: {detail}")
    return lines, failed
