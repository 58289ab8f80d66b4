"""The report's charts: a theatre's daily peak score with level bands and alert markers,
drawn by matplotlib as SVG (reusing `monitor.report.plot`'s bands, gaps and alert styles).

matplotlib is the optional `chart` extra. Without it `is_available()` is False and the
report shows the tables alone, with a note; nothing else changes. No feed text is
drawn into a chart (titles stay in the HTML, where they are escaped), and the SVG carries
no metadata, scripts or links.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.models import Level, from_iso
from monitor.report.plot import _alert_style, draw_level_bands, series_with_gaps

# pyplot's global state is never touched (Figure objects only), but matplotlib's font
# cache and text layout are not documented as thread-safe: one chart at a time.
_DRAWING = threading.Lock()


def is_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def score_chart_svg(
    daily: Sequence[dict[str, Any]],
    alerts: Sequence[dict[str, Any]],
    *,
    levels: Sequence[Level],
    since: datetime,
    until: datetime,
    width_inches: float = 8.0,
    height_inches: float = 2.8,
) -> bytes:
    """An SVG of the daily peaks `daily` (rows with `at`, `score`) in [since, until] with
    the level bands, and a marker per alert (rows with `created_at`, `kind`, `score`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    points = [(from_iso(row["at"]) + timedelta(hours=12), float(row["score"])) for row in daily]
    with _DRAWING:
        fig = Figure(figsize=(width_inches, height_inches), dpi=96, layout="constrained")
        ax = fig.add_subplot()
        draw_level_bands(ax, levels, alpha=0.13, fontsize=8)
        if points:
            xs, ys = series_with_gaps(points)
            ax.plot(mdates.date2num(xs), ys, color="#1f3b57", linewidth=1.4, zorder=3)
        for alert in alerts:
            at = from_iso(alert["created_at"])
            if not since <= at <= until or not alert.get("theatre_id"):
                continue
            marker, colour, _ = _alert_style(str(alert["kind"]))
            score = alert["score"] if alert["score"] is not None else 0.0
            ax.scatter(
                [mdates.date2num(at)],
                [score],
                marker=marker,
                s=40,
                color=colour,
                edgecolors="white",
                linewidths=0.6,
                zorder=5,
            )
        ax.set_ylim(0, 100)
        ax.set_xlim(mdates.date2num(since), mdates.date2num(until))
        ax.set_ylabel("risk score (0–100)", fontsize=8)
        ax.tick_params(labelsize=8)
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.grid(axis="y", color="#000000", alpha=0.08)
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


SERIES_COLOURS = ("#1f3b57", "#8e24aa", "#00796b", "#c2185b", "#5d4037", "#455a64")


def record_chart_svg(
    series: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    *,
    levels: Sequence[Level],
    since: datetime,
    until: datetime,
) -> bytes:
    """An SVG of several theatres' weekly peaks (rows with `at`, `score`) on one chart,
    one line each, named in the legend (names come from the configuration)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    with _DRAWING:
        fig = Figure(figsize=(8.0, 3.2), dpi=96, layout="constrained")
        ax = fig.add_subplot()
        draw_level_bands(ax, levels, alpha=0.10, fontsize=8)
        for number, (label, rows) in enumerate(series):
            points = [
                (from_iso(row["at"]) + timedelta(days=3), float(row["score"])) for row in rows
            ]
            if not points:
                continue
            xs, ys = series_with_gaps(points)
            ax.plot(
                mdates.date2num(xs),
                ys,
                color=SERIES_COLOURS[number % len(SERIES_COLOURS)],
                linewidth=1.3,
                label=label.replace("$", "＄"),  # no mathtext from a name
                zorder=3,
            )
        ax.set_ylim(0, 100)
        ax.set_xlim(mdates.date2num(since), mdates.date2num(until))
        ax.set_ylabel("weekly peak (0–100)", fontsize=8)
        ax.tick_params(labelsize=8)
        locator = mdates.AutoDateLocator(maxticks=10)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.grid(axis="y", color="#000000", alpha=0.08)
        ax.legend(loc="upper left", fontsize=7.5, framealpha=0.9)
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
