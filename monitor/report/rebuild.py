"""The daemon's report rebuilds: after each scoring round, off the event loop.

`ReportRebuilder.request(now)` starts a rebuild in a worker thread and returns at once,
so the scheduler's next round is never delayed by it. Rebuilds never overlap: a request
while one runs is remembered, and one more rebuild (of the newest state) follows when it
ends; any number of requests in between collapse into that one. The thread opens its own
read-only connection (WAL: it never blocks the daemon's writes), and a rebuild that fails
is logged and tried again at the next round; the old site stays in place meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from monitor.config import Config
from monitor.db import Store

log = logging.getLogger(__name__)


class ReportRebuilder:
    def __init__(self, config: Config, out_dir: Path) -> None:
        self.config = config
        self.out_dir = out_dir
        self._lock = threading.Lock()
        self._running = False
        self._pending: datetime | None = None
        self._thread: threading.Thread | None = None
        self.builds = 0
        self.failures = 0
        self.on_done: Callable[[], None] | None = None  # tests: a rebuild ended

    def request(self, now: datetime) -> None:
        """Rebuild as of `now`, now if idle, else right after the running rebuild."""
        with self._lock:
            if self._running:
                self._pending = now
                return
            self._running = True
        self._thread = threading.Thread(
            target=self._run, args=(now,), name="report-rebuild", daemon=True
        )
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the running rebuild (and a queued one) to end."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.is_running()

    def is_running(self) -> bool:
        with self._lock:
            return self._running

    def _run(self, now: datetime) -> None:
        from monitor.report.build import build_report

        while True:
            try:
                with Store.open(self.config.settings.db_path, readonly=True) as store:
                    build_report(store, self.config, self.out_dir, now=now)
                self.builds += 1
            except Exception as exc:  # a failed report must never take the daemon down
                self.failures += 1
                log.error("report rebuild failed dir=%s error=%s", self.out_dir, exc)
            with self._lock:
                if self._pending is None:
                    self._running = False
                    break
                now, self._pending = self._pending, None
        if self.on_done is not None:
            self.on_done()
