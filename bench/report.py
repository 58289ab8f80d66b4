"""Rebuild time of the static report (`monitor report`) on a year of data.

Builds the year-of-data database of bench/query.py (its `build`: 5 theatres scored every
15 minutes for a year, 35,040 points each, alerts, articles and matches), then times a
whole rebuild (read, charts, pages, atomic swap) as the daemon runs it after each
scoring round. Prints the time against two yardsticks measured or fixed in the same run:
- the baseline: reading what the report must read at the least (a year of daily peaks of
  every theatre and each theatre's latest point explained), so machine speed cancels out;
- the score interval (schedule.score_tick_seconds, 900 s): a rebuild must take well under
  it, so it can never delay the next round. Exits 1 if it takes more than TARGET_SHARE.

    .venv/bin/python bench/report.py [--articles 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.query import THEATRES, build, data_end
from monitor import db
from monitor.config import load_config
from monitor.models import ScheduleSettings, Theatre
from monitor.report import charts
from monitor.report.build import build_report

TARGET_SHARE = 0.10  # of the score interval


def baseline(store: db.Store, end: datetime) -> None:
    for theatre in THEATRES:
        db.history_rows(
            store, theatre_id=theatre, since=end - timedelta(days=365), until=end, every="1d"
        )
        point = store.score_at(theatre, end)
        if point is not None:
            db.explain_rows(store, int(point["id"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build in this directory and keep the files")
    args = parser.parse_args(argv)
    base = load_config(indicators_path=None, settings_path=None, env={})
    theatres = dict(base.rules.theatres)
    for theatre in THEATRES:
        theatres.setdefault(theatre, Theatre(id=theatre, name=theatre.upper(), kind="pair"))
    config = replace(base, rules=replace(base.rules, theatres=theatres))
    interval = ScheduleSettings().score_tick_seconds
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "year.db"
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        end = data_end(datetime.now(UTC))
        build(
            path,
            end=end,
            articles=args.articles,
            matches=args.articles // 5,
            alerts=args.alerts,
            contribution_days=2.0,
        )
        print(f"built the year-of-data database in {time.perf_counter() - started:.1f} s")
        with db.Store.open(path, readonly=True) as store:
            base_times, rebuild_times = [], []
            for _ in range(args.runs):
                t = time.perf_counter()
                baseline(store, end)
                base_times.append(time.perf_counter() - t)
                result = build_report(store, config, folder / "site", now=end)
                rebuild_times.append(result.seconds)
    rebuild, read = statistics.median(rebuild_times), statistics.median(base_times)
    share = rebuild / interval
    print(
        f"report: {result.pages} pages, {result.charts} charts "
        f"(matplotlib {'yes' if charts.is_available() else 'no'})"
    )
    print(f"rebuild (median of {args.runs}): {rebuild:.2f} s")
    print(f"baseline read (median): {read:.3f} s; rebuild / baseline = {rebuild / read:.1f}x")
    print(
        f"rebuild / score interval ({interval:.0f} s) = {share:.4f} "
        f"(target ≤ {TARGET_SHARE:.2f}): {'ok' if share <= TARGET_SHARE else 'MISSED'}"
    )
    return 0 if share <= TARGET_SHARE else 1


if __name__ == "__main__":
    sys.exit(main())
