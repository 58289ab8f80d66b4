"""`monitor report`: build the whole static site from the database, atomically.

Reads with `data.read_report`, renders with `pages`, draws with `charts` (when
matplotlib is installed) and writes through `writer.atomic_site`. Returns what it wrote.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from monitor import db
from monitor.config import Config
from monitor.models import from_iso
from monitor.report import charts, pages, paths
from monitor.report.data import INDEX_DAYS, THEATRE_DAYS, ReportData, read_report
from monitor.report.writer import atomic_site

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportResult:
    out_dir: Path
    index: Path
    pages: int
    charts: int
    charts_available: bool
    seconds: float


def build_report(
    store: db.Store,
    config: Config,
    out_dir: Path,
    *,
    now: datetime,
    theatre_id: str | None = None,
) -> ReportResult:
    """Write the report of the database as of `now` into `out_dir` (replaced whole); with
    `theatre_id`, of that theatre only."""
    started = time.perf_counter()
    data = read_report(store, config, now=now, theatre_id=theatre_id)
    drawing = charts.is_available()
    written_pages = 0
    chart_files: set[str] = set()
    with atomic_site(out_dir) as site:
        if drawing:
            record = _record_span(data)
            if record is not None:
                site.write(
                    paths.RECORD_CHART,
                    charts.record_chart_svg(
                        [(t.name, t.record) for t in data.theatres],
                        levels=data.levels,
                        since=record,
                        until=now,
                    ),
                )
                chart_files.add(paths.RECORD_CHART)
            for theatre in data.theatres:
                for span, days, rows in (
                    ("90d", INDEX_DAYS, theatre.recent),
                    ("1y", THEATRE_DAYS, theatre.year),
                ):
                    name = paths.chart_file(theatre.theatre_id, span)
                    site.write(
                        name,
                        charts.score_chart_svg(
                            rows,
                            theatre.alerts,
                            levels=data.levels,
                            since=now - timedelta(days=days),
                            until=now,
                        ),
                    )
                    chart_files.add(name)
        site.write(paths.INDEX, pages.index_page(data, charts=chart_files))
        site.write(paths.FEEDS, pages.feeds_page(data))
        written_pages = 2
        for theatre in data.theatres:
            site.write(
                paths.theatre_page(theatre.theatre_id),
                pages.theatre_page(data, theatre, charts=chart_files),
            )
            written_pages += 1
        for alert in data.alerts:
            site.write(paths.alert_page(alert.row["id"]), pages.alert_page(data, alert))
            written_pages += 1
    seconds = time.perf_counter() - started
    log.info(
        "report built dir=%s pages=%d charts=%d seconds=%.2f",
        out_dir,
        written_pages,
        len(chart_files),
        seconds,
    )
    return ReportResult(
        out_dir=Path(out_dir),
        index=Path(out_dir) / paths.INDEX,
        pages=written_pages,
        charts=len(chart_files),
        charts_available=drawing,
        seconds=seconds,
    )


def _record_span(data: ReportData) -> datetime | None:
    """Where the whole-record chart starts (the first weekly peak), or None (no scores)."""
    starts = [from_iso(t.record[0]["at"]) for t in data.theatres if t.record]
    return min(starts) if starts else None


def report_time(store: db.Store, fallback: datetime) -> datetime:
    """The report's default moment: the newest score point (a database that the daemon
    fills is scored every few minutes, so that is "now"; a demo database ends in the
    past), or `fallback` when nothing was scored yet."""
    return db.newest_score_time(store) or fallback
