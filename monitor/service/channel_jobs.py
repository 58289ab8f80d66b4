"""The daemon's channel delivery: one task per route, each draining its route in a thread
of its own, so a slow or dead channel never delays another route, email or polling.

A route whose previous drain is still running is skipped (never two drains of one route
at once: they would pick the same pending row). The tasks are named `job:channel:<route>`:
the daemon's stop waits for them like for its other jobs, and cancels them at the stop
deadline (the thread is a daemon thread; the row in flight stays pending).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from monitor.config import Config
from monitor.deliver.channels.dispatch import RouteSummary
from monitor.deliver.smtp import DeliveryStop
from monitor.models import Route
from monitor.pipeline import drain_route

log = logging.getLogger(__name__)

RunInThread = Callable[[Callable[[], Any]], Awaitable[Any]]


class ChannelJobs:
    def __init__(self, stop: DeliveryStop, run_in_thread: RunInThread) -> None:
        self._stop = stop
        self._run_in_thread = run_in_thread
        self._running: dict[str, asyncio.Task[None]] = {}
        self._rng = random.Random()
        # At the stop deadline's first step, abandon the sends in flight: a blocked HTTP call
        # cannot be woken, and its daemon thread must not hold the stop. The row stays pending.
        stop.on_interrupt(self._abandon)

    def _abandon(self) -> None:
        for task in list(self._running.values()):
            if not task.done():
                task.get_loop().call_soon_threadsafe(task.cancel)

    def kick(self, config: Config, now: datetime) -> None:
        """Start a drain of every route that is not being drained already."""
        if self._stop.is_stopping():
            return
        for route in config.settings.routes:
            task = self._running.get(route.name)
            if task is not None and not task.done():
                continue
            self._running[route.name] = asyncio.create_task(
                self._drain(config, route, now), name=f"job:channel:{route.name}"
            )

    async def _drain(self, config: Config, route: Route, now: datetime) -> None:
        db_path, stop, rng = config.settings.db_path, self._stop, self._rng
        try:
            summary: RouteSummary = await self._run_in_thread(
                lambda: drain_route(db_path, route, now=now, stop=stop, rng=rng)
            )
        except asyncio.CancelledError:
            log.warning(
                "channel delivery abandoned at shutdown route=%s (still pending)", route.name
            )
            return
        except Exception:
            log.exception("channel delivery round failed route=%s", route.name)
            return
        if summary.sent or summary.retried or summary.dead:
            log.info(
                "route %s sent=%d retried=%d dead=%d",
                route.name,
                summary.sent,
                summary.retried,
                summary.dead,
            )
