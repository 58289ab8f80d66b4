"""The job log (`runs`): one row per poll, score or outbox cycle, for `monitor status`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.models import (
    to_iso,
)

if TYPE_CHECKING:
    pass

from monitor.db.base import StoreBase


class RunStore(StoreBase):
    """The job log (`runs`): one row per poll, score or outbox cycle, for `monitor status`."""

    def record_run(
        self,
        job: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        ok: bool,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO runs (job, started_at, finished_at, ok, summary, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job,
                    to_iso(started_at),
                    to_iso(finished_at),
                    int(ok),
                    json.dumps(dict(summary or {}), ensure_ascii=False, default=str),
                    error,
                ),
            )

    def prune_runs(self, *, keep_per_job: int = 1000) -> int:
        with self.transaction():
            cursor = self.conn.execute(
                """
                DELETE FROM runs WHERE id IN (
                  SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY job ORDER BY id DESC) AS n FROM runs
                  ) WHERE n > ?
                )
                """,
                (keep_per_job,),
            )
            return cursor.rowcount

    def last_runs(self) -> list[dict[str, Any]]:
        return self._rows(
            """
            SELECT r.* FROM runs r JOIN (SELECT job, max(id) AS id FROM runs GROUP BY job) l
            ON l.id = r.id ORDER BY r.job
            """
        )
