"""`monitor chart`: a theatre's score over time as a PNG or SVG picture.

Owns gathering what the picture shows (through `db` read functions: the score series,
the alerts, the stories that added most) and drawing it with matplotlib: the score line
(broken where points are missing), the configured level bands, a marker per alert and a
numbered marker per top story, listed under the plot. matplotlib is an optional extra
(`monitor[chart]`), imported only here and only when a chart is drawn. It never writes
to the database; the picture is written to a temporary file and renamed into place, so a
failed drawing leaves an older picture intact.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any

from monitor import db
from monitor.errors import MonitorError
from monitor.models import Level, from_iso, to_iso

CHART_FORMATS = (".png", ".svg")
INSTALL_HINT = "pip install 'monitor[chart]'"
TOP_STORIES = 5

LEVEL_COLOURS = {
    "low": "#2e7d32",
    "elevated": "#f9a825",
    "high": "#ef6c00",
    "critical": "#c62828",
}
FALLBACK_COLOURS = ("#2e7d32", "#9e9d24", "#f9a825", "#ef6c00", "#c62828", "#6a1b9a")
RISING_ALERTS = frozenset({"level_up", "surge", "critical"})
FALLING_ALERTS = frozenset({"level_down", "resolved"})


class ChartUnavailableError(MonitorError):
    """matplotlib (the optional `chart` extra) is not installed."""


@dataclass(frozen=True, slots=True)
class ChartData:
    """What one chart shows, in time order."""

    theatre_id: str
    since: datetime
    until: datetime
    points: tuple[tuple[datetime, float], ...]
    alerts: tuple[dict[str, Any], ...]
    stories: tuple[dict[str, Any], ...]


def chart_data(
    store: db.Store,
    *,
    theatre_id: str,
    since: datetime,
    until: datetime,
    top_stories: int = TOP_STORIES,
) -> ChartData:
    """Read the series, alerts and top stories; a theatre with no points is an error."""
    rows = db.history_rows(store, theatre_id=theatre_id, since=since, until=until)
    if not rows:
        raise MonitorError(
            f"no score points for theatre {theatre_id!r} between {to_iso(since)} and "
            f"{to_iso(until)} (see `monitor history`)"
        )
    alerts = db.alert_rows(store, theatre_id=theatre_id, since=since, until=until, status=None)
    stories = db.top_story_rows(
        store, theatre_id=theatre_id, since=since, until=until, limit=top_stories
    )
    return ChartData(
        theatre_id=theatre_id,
        since=since,
        until=until,
        points=tuple((from_iso(r["at"]), float(r["score"])) for r in rows),
        alerts=tuple(reversed(alerts)),
        stories=tuple(stories),
    )


def check_output_path(out: Path) -> str:
    """The picture format named by the file's suffix, or a MonitorError naming the choices."""
    suffix = out.suffix.lower()
    if suffix not in CHART_FORMATS:
        raise MonitorError(
            f"{out}: the chart file must end in {' or '.join(CHART_FORMATS)} (PNG or SVG)"
        )
    return suffix[1:]


def require_matplotlib() -> None:
    """Fail with one line naming the extra to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ChartUnavailableError(
            f"monitor chart needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None


def series_with_gaps(
    points: Sequence[tuple[datetime, float]],
) -> tuple[list[datetime], list[float]]:
    """The points with a NaN inserted wherever the step is much longer than usual, so the
    line breaks over missing data instead of drawing a straight bridge across it."""
    xs: list[datetime] = []
    ys: list[float] = []
    steps = [(b[0] - a[0]).total_seconds() for a, b in pairwise(points)]
    usual = timedelta(seconds=median(steps) if steps else 0.0)
    limit = max(3 * usual, timedelta(hours=2))
    for index, (at, score) in enumerate(points):
        if index and at - points[index - 1][0] > limit:
            xs.append(points[index - 1][0] + (at - points[index - 1][0]) / 2)
            ys.append(float("nan"))
        xs.append(at)
        ys.append(score)
    return xs, ys


def story_markers(
    stories: Sequence[dict[str, Any]],
) -> dict[tuple[datetime, float], list[int]]:
    """Story numbers (1-based, as listed under the plot) per score point where they peaked;
    stories that peaked at the same point share one marker."""
    markers: dict[tuple[datetime, float], list[int]] = {}
    for number, story in enumerate(stories, 1):
        markers.setdefault((from_iso(story["at"]), float(story["score"])), []).append(number)
    return markers


def level_bands(
    levels: Sequence[Level], *, top: float = 100.0
) -> list[tuple[str, float, float, str]]:
    """(name, lower, upper, colour) for each level, lowest first, by its entry threshold."""
    ordered = sorted(levels, key=lambda level: level.enter)
    bands = []
    for position, level in enumerate(ordered):
        upper = ordered[position + 1].enter if position + 1 < len(ordered) else top
        colour = LEVEL_COLOURS.get(
            level.name, FALLBACK_COLOURS[min(position, len(FALLBACK_COLOURS) - 1)]
        )
        bands.append((level.name, level.enter, upper, colour))
    return bands


def draw_level_bands(
    ax: Any, levels: Sequence[Level], *, alpha: float = 0.12, fontsize: float = 9
) -> None:
    """Shade each level's band on matplotlib axes `ax` and name it at the right edge."""
    for name, lower, upper, colour in level_bands(levels):
        ax.axhspan(lower, upper, color=colour, alpha=alpha, linewidth=0)
        ax.text(
            1.005,
            (lower + upper) / 200,
            name,
            transform=ax.transAxes,
            color=colour,
            fontsize=fontsize,
            va="center",
            ha="left",
            fontweight="bold",
        )


def render_chart(data: ChartData, out: Path, *, levels: Sequence[Level]) -> Path:
    """Draw `data` into `out` (.png or .svg) and return the path written."""
    fmt = check_output_path(out)
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    stories = list(data.stories)
    fig = Figure(figsize=(11, 5.2 + 0.28 * len(stories)), dpi=110, layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[5.2, 0.1 + 0.28 * len(stories)])
    ax = fig.add_subplot(grid[0])

    draw_level_bands(ax, levels, alpha=0.12, fontsize=9)

    xs, ys = series_with_gaps(data.points)
    ax.plot(mdates.date2num(xs), ys, color="#1f3b57", linewidth=1.3, zorder=3)

    handles = [Line2D([], [], color="#1f3b57", linewidth=1.3, label="score")]
    shown_kinds: set[str] = set()
    for alert in data.alerts:
        kind = str(alert["kind"])
        marker, colour, label = _alert_style(kind)
        at = from_iso(alert["created_at"])
        score = alert["score"] if alert["score"] is not None else _score_near(data.points, at)
        ax.scatter(
            [mdates.date2num(at)],
            [score],
            marker=marker,
            s=70,
            color=colour,
            edgecolors="white",
            linewidths=0.8,
            zorder=5,
        )
        if label not in shown_kinds:
            shown_kinds.add(label)
            handles.append(
                Line2D([], [], marker=marker, linestyle="", color=colour, markersize=8, label=label)
            )

    for (at, score), numbers in story_markers(stories).items():
        ax.scatter(
            [mdates.date2num(at)],
            [score],
            s=90,
            facecolors="none",
            edgecolors="#1f3b57",
            linewidths=1.6,
            zorder=6,
        )
        ax.annotate(
            ",".join(str(n) for n in numbers),
            (mdates.date2num(at), score),
            xytext=(7, 7),
            textcoords="offset points",
            fontsize=8.5,
            fontweight="bold",
            color="#1f3b57",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=7,
        )
    if stories:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="none",
                markeredgecolor="#1f3b57",
                markersize=9,
                label="top story (see below)",
            )
        )

    ax.set_ylim(0, 100)
    ax.set_xlim(mdates.date2num(data.since), mdates.date2num(data.until))
    ax.set_ylabel("risk score (0–100)")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(axis="y", color="#000000", alpha=0.08)
    ax.set_title(
        f"{data.theatre_id}: risk score, {data.since:%Y-%m-%d} to {data.until:%Y-%m-%d} (UTC)",
        loc="left",
        fontsize=12,
    )
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)

    notes = fig.add_subplot(grid[1])
    notes.axis("off")
    for number, story in enumerate(stories, 1):
        published = (story["published_at"] or story["at"] or "")[:10]
        line = (
            f"{number}. {published}  {_shorten(story['title'] or '', 90)}  "
            f"({story['indicator_id']}, +{story['points']:.1f} at peak, "
            f"{story['sources']} source{'s' if (story['sources'] or 0) != 1 else ''})"
        )
        notes.text(
            0.0,
            1 - (number - 0.5) / max(len(stories), 1),
            line,
            fontsize=8.5,
            va="center",
            ha="left",
            transform=notes.transAxes,
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(handle)
    try:
        os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp makes 0600; a picture is for sharing
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(temp_name, format=fmt, metadata=metadata)
        os.replace(temp_name, out)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alert_style(kind: str) -> tuple[str, str, str]:
    if kind in RISING_ALERTS:
        return "^", "#b71c1c", "alert: rising"
    if kind in FALLING_ALERTS:
        return "v", "#1b5e20", "alert: falling / resolved"
    return "D", "#616161", "alert: other"


def _score_near(points: Sequence[tuple[datetime, float]], at: datetime) -> float:
    before = [score for when, score in points if when <= at]
    return before[-1] if before else points[0][1]


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
