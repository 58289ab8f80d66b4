"""Helpers for the channel tests: configs with routes, alerts recorded the production way,
and the channel outbox rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor import pipeline
from monitor.config import Config
from monitor.db import Store
from monitor.models import AlertDecision, Route, to_iso
from tests.support.crash import delivery_config
from tests.support.http import refused_port


def route(name: str, channel: str, url: str, **options: Any) -> Route:
    options.setdefault("timeout_seconds", 5.0)
    return Route(name=name, channel=channel, url=url, **options)  # type: ignore[arg-type]


def routes_config(db_path: Path, *routes: Route, report_url: str | None = None) -> Config:
    """The repo's watch list, email to a port nobody listens on, and these routes."""
    config = delivery_config(db_path, refused_port())
    settings = replace(config.settings, routes=tuple(routes), report_url=report_url)
    return replace(config, settings=settings)


def record(store: Store, config: Config, decision: AlertDecision, **kwargs: Any) -> int:
    with store.transaction():
        alert_id = pipeline.record_alert(store, config, decision, now=decision.created_at, **kwargs)
    assert alert_id is not None
    return alert_id


def level_alert(
    kind: str, at: datetime, *, level: str, previous: str | None, theatre: str = "kg-tj"
) -> AlertDecision:
    return AlertDecision(
        dedup_key=f"{theatre}:{kind}:{level}@{to_iso(at)}",
        kind=kind,  # type: ignore[arg-type]
        theatre_id=theatre,
        created_at=at,
        urgent=True,
        level=level,
        previous_level=previous,
        index=55.0 if kind != "resolved" else 5.0,
        reason=f"{theatre} {kind} to {level}",
    )


def channel_rows(store: Store, route_name: str | None = None) -> list[dict[str, Any]]:
    where = "WHERE c.route = ?" if route_name else ""
    return store.query(
        "SELECT c.id, c.route, c.channel, c.status, c.attempts, c.next_attempt_at, "
        "c.not_before, c.last_error, c.sent_at, a.dedup_key "
        f"FROM channel_outbox c JOIN alerts a ON a.id = c.alert_id {where} ORDER BY c.id",
        [route_name] if route_name else [],
    )
