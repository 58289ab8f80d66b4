"""Reports for the CLI: score history, feed health, the evidence behind a score, articles.

Owns turning query rows into what a person reads (tables with sparklines, CSV, JSON).
It reads through `db` functions only (no SQL here) and never writes.
"""

from __future__ import annotations

from datetime import datetime
from itertools import groupby
from typing import Any

from monitor import db
from monitor.cli import output
from monitor.errors import MonitorError
from monitor.models import from_iso, indicator_name, to_iso

# `history --every` as a table: what each column of a period's row holds
# (CSV and JSON keep the keys `at`, `score`, `level`: scripts read them)
HISTORY_PERIOD_HEADERS = {
    "at": "period",
    "score": "peak",
    "level": "level_at_end",
    "change": "peak_change",
}
# What `history` shows of a raw score point (besides the change it computes).
HISTORY_SHOWN = ("theatre_id", "at", "score", "level", "stories")
HISTORY_PERIOD_NOTE = (
    "(period: when it starts; peak: its highest score; level_at_end: the level at its last "
    "score point, which may be lower than the peak's; peak_change: since the previous "
    "period's peak; points: score points in it)"
)


def history_report(
    store: db.Store,
    *,
    theatre_id: str | None,
    since: datetime,
    until: datetime,
    every: str | None,
    fmt: str,
) -> str:
    rows = db.history_rows(
        store,
        theatre_id=theatre_id,
        since=since,
        until=until,
        every=every,
        columns=HISTORY_SHOWN,  # a raw point's other columns are not shown
    )
    previous: dict[str, float] = {}
    for row in rows:
        last = previous.get(row["theatre_id"])
        row["change"] = None if last is None else round(row["score"] - last, 1)
        previous[row["theatre_id"]] = row["score"]
    columns = ["theatre_id", "at", "score", "level", "change", "stories"]
    if every:  # a period's row: `score` is its peak, `level` the level at its end
        columns.append("points")
    if fmt != "table":
        return output.render_rows(rows, columns=columns, fmt=fmt)
    if not rows:
        return f"(no score points between {to_iso(since)} and {to_iso(until)})"
    from monitor.deliver.sparkline import sparkline  # not the mail composition

    if every:
        table = output.render_rows(
            rows, columns=columns, fmt="table", headers=HISTORY_PERIOD_HEADERS
        )
        table += "\n" + HISTORY_PERIOD_NOTE
    else:
        table = output.render_rows(rows, columns=columns, fmt="table")
    lines = [table, ""]
    for theatre, group in groupby(rows, key=lambda r: r["theatre_id"]):
        values = [r["score"] for r in group]
        lines.append(
            f"{theatre:<8} {sparkline(values, width=60)}  last {values[-1]:.0f}, peak {max(values):.0f}"
        )
    return "\n".join(lines)


TABLE_ERROR_CHARS = 60  # `monitor feeds` as a table shortens last_error to this
TABLE_URL_CHARS = 60  # ... and a feed's URL to this
FEED_COLUMNS = [
    "id",
    "name",
    "url",
    "status",
    "last_success_at",
    "last_error",
    "consecutive_failures",
    "next_check_at",
    "entries_seen",
    "share_304",
]


def feeds_report(store: db.Store, *, fmt: str) -> str:
    rows: list[dict[str, Any]] = []
    for row in store.feeds_report():
        status = row["last_status"] or "never polled"
        if row["disabled"]:
            status = "disabled (410 Gone)"
        elif not row["configured"]:
            status = "not configured"
        elif row["consecutive_failures"]:
            status = f"failing ({row['last_status']})"
        error = ""
        if row["last_error_kind"]:
            error = f"{row['last_error_kind']}: {row['last_error_message'] or ''}".strip()
            if fmt == "table" and len(error) > TABLE_ERROR_CHARS:  # CSV and JSON: all of it
                error = error[: TABLE_ERROR_CHARS - 1] + "…"
        polls = row["polls"] or 0
        url = row["url"] or ""
        if fmt == "table" and len(url) > TABLE_URL_CHARS:
            url = url[: TABLE_URL_CHARS - 1] + "…"
        rows.append(
            {
                **row,
                "url": url,
                "status": status,
                "last_error": error,
                "share_304": None if not polls else round(row["not_modified_polls"] / polls, 2),
            }
        )
    columns = (
        FEED_COLUMNS
        if fmt == "table"
        else [*FEED_COLUMNS, "failing_since", "last_error_at", "polls"]
    )
    return output.render_rows(rows, columns=columns, fmt=fmt, empty="(no feeds polled yet)")


EXPLAIN_TABLE_ROWS = 20


def explain_report(store: db.Store, *, theatre_id: str, at: datetime | None, fmt: str) -> str:
    """The stories behind a score point, largest contribution first: every one in CSV and
    JSON, the largest EXPLAIN_TABLE_ROWS in the table (and what the rest add up to)."""
    point = store.score_at(theatre_id, at)
    if point is None:
        when = f" at or before {to_iso(at)}" if at else ""
        raise MonitorError(f"no score for theatre {theatre_id!r}{when} (see `monitor history`)")
    limit = EXPLAIN_TABLE_ROWS if fmt == "table" else None
    rows, count, total = db.explain_rows(store, point["id"], limit=limit)
    for row in rows:
        row["points"] = round(row["points"], 2)
    columns = [
        "points",
        "indicator_id",
        "title",
        "outlet",
        "published_at",
        "sources",
        "evidence",
        "url",
    ]
    if fmt == "json":
        return output.json_text(
            {"score": point, "contributions": [{k: r.get(k) for k in columns} for r in rows]}
        )
    if fmt != "table":
        return output.render_rows(rows, columns=columns, fmt=fmt)
    header = (
        f"{theatre_id} at {point['at']}: score {point['score']:.0f} ({point['level']}), "
        f"{count} contributing stories, methodology v{point['methodology_version']}"
    )
    if not rows:
        return header + "\n(no contributing stories: the score is at its floor)"
    lines = [header, ""]
    for index, row in enumerate(rows, 1):
        published = (
            from_iso(row["published_at"]).strftime("%Y-%m-%d") if row["published_at"] else "?"
        )
        lines.append(
            f"{index:>2}. {row['points']:+6.2f}  {indicator_name(row['indicator_id'])}  {row['title']}  "
            f"({row['outlet']}, {published}, {row['sources']} source(s))"
        )
        if row["evidence"]:
            lines.append(f"      “{row['evidence']}”")
        if row["url"]:
            lines.append(f"      {row['url']}")
    if count > len(rows):
        rest = total - sum(row["points"] for row in rows)
        lines.append(
            f"… and {count - len(rows)} smaller contributions adding {rest:+.2f} points "
            f"(all of them: --format csv or json)"
        )
    # `stories` counts every contributing story; only the largest are kept as evidence.
    unstored = (point["stories"] or 0) - count
    if unstored > 0:
        lines.append(
            f"… and {unstored} more stories each adding under {db.MIN_STORED_POINTS} points "
            f"or beyond the largest {db.MAX_STORED_CONTRIBUTIONS} (not kept as evidence)"
        )
    return "\n".join(lines)


ARTICLE_TITLE_WIDTH = 70


def articles_report(
    store: db.Store,
    *,
    theatre_id: str | None,
    indicator_id: str | None,
    since: datetime | None,
    until: datetime | None,
    search: str | None,
    limit: int,
    fmt: str,
) -> str:
    """Stored articles, newest first, each with the indicators detected in it."""
    rows = db.article_rows(
        store,
        theatre_id=theatre_id,
        indicator_id=indicator_id,
        since=since,
        until=until,
        search=search,
        limit=limit,
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for match in db.article_match_rows(store, [row["id"] for row in rows]):
        found.setdefault(match["article_id"], []).append(match)
    columns = ["id", "published_at", "outlet", "title", "indicators"]
    if search:
        columns.append("snippet")
    if fmt == "json":
        for row in rows:
            row["indicators"] = [
                {k: m[k] for k in ("theatre_id", "indicator_id", "confidence", "evidence")}
                for m in found.get(row["id"], [])
            ]
        return output.render_rows(rows, columns=[*columns, "url", "language"], fmt="json")
    for row in rows:
        row["indicators"] = " ".join(
            f"{m['theatre_id']}:{m['indicator_id']}" for m in found.get(row["id"], [])
        )
    if fmt == "csv":
        return output.render_rows(rows, columns=[*columns, "url", "language"], fmt="csv")
    if not rows:
        return "(no articles match)"
    for row in rows:
        row["title"] = _shorten(row["title"] or "", ARTICLE_TITLE_WIDTH)
        row["published_at"] = (row["published_at"] or "")[:16].replace("T", " ")
    table = output.render_rows(rows, columns=columns, fmt="table")
    more = f"\n(first {limit}; narrow the search or raise --limit)" if len(rows) == limit else ""
    return table + more


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
