"""The report's pages as HTML text: index, one per theatre, one per alert, feed health.

Pure: takes the `ReportData` (and which charts exist) and returns strings; no I/O.
Every string from a feed or the database goes through `markup` (escaped by default);
links from feeds are kept only when they are plain http(s). Each page carries a Content
Security Policy that forbids scripts, frames, forms and any request to another origin,
so even a rendering bug cannot make the page fetch or run anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from monitor.deliver.content import indicator_name, name_indicators
from monitor.models import from_iso, to_iso
from monitor.report import paths
from monitor.report.data import INDEX_DAYS, THEATRE_DAYS, AlertData, ReportData, TheatreData
from monitor.report.markup import Html, el, join, safe_href

CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;
color:#1a1a1a;background:#fff;line-height:1.45;font-size:16px}
header,main,footer{max-width:980px;margin:0 auto;padding:0 14px}
header{border-bottom:1px solid #ccc;padding-top:10px;padding-bottom:8px}
nav a{margin-right:14px}
a{color:#0b4f8a}
h1{font-size:1.6em;margin:.6em 0 .3em}
h2{font-size:1.3em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1em 0 .2em}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em;font-size:.95em}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e2e2e2;vertical-align:top}
th{background:#f3f3f3}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.level{display:inline-block;padding:1px 7px;border-radius:3px;font-weight:bold;
font-size:.9em;text-transform:uppercase}
.level-low{background:#e8f5e9;color:#1b5e20}
.level-elevated{background:#fff3e0;color:#6d4100}
.level-high{background:#fbe9e7;color:#9a2b00}
.level-critical{background:#b71c1c;color:#fff}
.level-none{background:#eceff1;color:#37474f}
img.chart{width:100%;height:auto;border:1px solid #e2e2e2}
.note{color:#444;font-size:.92em}
blockquote{margin:.3em 0 .3em 1em;padding-left:.6em;border-left:3px solid #bbb;color:#333}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:10px;
border:1px solid #e2e2e2;font-size:.9em}
details{margin:.2em 0 1em}
summary{cursor:pointer;color:#0b4f8a}
footer{border-top:1px solid #ccc;margin-top:2em;padding-top:8px;padding-bottom:20px;
color:#444;font-size:.9em}
@media (max-width:600px){body{font-size:15px}th,td{padding:3px 4px}}
"""

KIND_LABELS = {
    "level_up": "level up",
    "level_down": "level down",
    "surge": "surge",
    "critical": "critical sign",
    "resolved": "resolved",
    "feed_down": "feed down",
    "feed_recovered": "feed recovered",
    "digest": "digest",
}


# ---------------------------------------------------------------------------
# Small pieces


def fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def fmt_change(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def fmt_time(value: str | None) -> str:
    """`2022-09-16T06:00:00Z` as `2022-09-16 06:00 UTC`."""
    if not value:
        return "–"
    return from_iso(value).strftime("%Y-%m-%d %H:%M UTC")


def level_badge(level: str | None) -> Html:
    name = (level or "none").lower()
    css = (
        f"level level-{name}"
        if name in ("low", "elevated", "high", "critical")
        else "level level-none"
    )
    return el("span", level or "no score", class_=css)


def _num(value: str) -> Html:
    return el("td", value, class_="num")


def _table(headers: Sequence[str | tuple[str, str]], rows: Sequence[Html], *, caption: str) -> Html:
    cells = []
    for header in headers:
        label, css = header if isinstance(header, tuple) else (header, None)
        cells.append(el("th", label, scope="col", class_=css))
    return el(
        "div",
        el(
            "table",
            el("caption", caption, class_="note"),
            el("thead", el("tr", cells)),
            el("tbody", rows),
        ),
        class_="scroll",
    )


def _link(href: str | None, label: object) -> Html:
    return el("a", label, href=href) if href else join(label)


def _external(url: str | None, label: object) -> Html:
    href = safe_href(url)
    return el("a", label, href=href, rel="noopener noreferrer") if href else join(label)


def page(title: str, body: Html, *, path: str, now: datetime) -> str:
    """A whole page at `path` (relative links are made from it)."""
    root = paths.up(path)
    head = el(
        "head",
        el("meta", charset="utf-8"),
        el("meta", http_equiv="Content-Security-Policy", content=CSP),
        el("meta", name="referrer", content="no-referrer"),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", f"{title} · monitor risk report"),
        el("style", Html(STYLE)),
    )
    header = el(
        "header",
        el(
            "nav",
            el("a", "Overview", href=root + paths.INDEX),
            el("a", "Feed health", href=root + paths.FEEDS),
            aria_label="Report",
        ),
    )
    footer = el(
        "footer",
        el(
            "p",
            f"Built by monitor from its database as of {fmt_time(to_iso(now))}. "
            "Scores are 0–100; times are UTC. No script runs on these pages and they load "
            "nothing from elsewhere.",
        ),
    )
    document = el("html", head, el("body", header, el("main", body), footer), lang="en")
    return "<!DOCTYPE html>\n" + document + "\n"


def _chart(
    theatre: TheatreData,
    *,
    span: str,
    days: int,
    rows: Sequence[dict[str, Any]],
    root: str,
    charts: set[str],
) -> Html:
    """The chart image (when drawn) with its alt text, and always the table behind it."""
    name = theatre.name
    if rows:
        peak = max(rows, key=lambda r: float(r["score"]))
        summary = (
            f"Daily peak risk score of {name} over the last {days} days: "
            f"{len(rows)} days with scores, highest {float(peak['score']):.1f} on "
            f"{str(peak['at'])[:10]}, last {float(rows[-1]['score']):.1f} ({rows[-1]['level']})"
        )
    else:
        summary = f"No score points for {name} in the last {days} days."
    shown_alerts = [
        a
        for a in theatre.alerts
        if str(a["created_at"])[:10] >= (str(rows[0]["at"])[:10] if rows else "9")
    ]
    if shown_alerts:
        summary += f"; {len(shown_alerts)} alerts marked (triangles: up red, down green)"
    summary += "."
    chart_path = paths.chart_file(theatre.theatre_id, span)
    picture: Html | None = None
    if chart_path in charts:
        picture = el(
            "img", src=root + chart_path, alt=summary, class_="chart", width=768, height=269
        )
    else:
        picture = el(
            "p",
            summary
            + " (Charts need matplotlib: pip install 'monitor[chart]'; the table below has every value.)",
            class_="note",
        )
    table_rows = [
        el(
            "tr",
            el("td", str(r["at"])[:10]),
            _num(fmt_score(r["score"])),
            el("td", level_badge(r["level"])),
        )
        for r in reversed(rows)
    ]
    table = _table(
        ["day", ("peak score", "num"), "level at the day's end"],
        table_rows,
        caption=f"{name}: daily peak score, newest first",
    )
    return join(
        el("figure", picture, el("figcaption", summary, class_="note"), style="margin:0"),
        el("details", el("summary", f"The numbers behind this chart ({len(rows)} days)"), table),
    )


def _alert_rows(
    alerts: Sequence[dict[str, Any]], data: ReportData, *, root: str, with_theatre: bool
) -> Html:
    if not alerts:
        return el("p", "No alerts yet.", class_="note")
    rows = []
    for alert in alerts:
        cells = [
            el("td", _link(root + paths.alert_page(alert["id"]), fmt_time(alert["created_at"]))),
        ]
        if with_theatre:
            theatre = alert["theatre_id"]
            cells.append(
                el(
                    "td",
                    _link(
                        root + paths.theatre_page(theatre), data.theatre_names.get(theatre, theatre)
                    )
                    if theatre
                    else "feeds",
                )
            )
        cells += [
            el("td", KIND_LABELS.get(alert["kind"], str(alert["kind"]).replace("_", " "))),
            el("td", level_badge(alert["level"]) if alert["level"] else "–"),
            _num(fmt_score(alert["score"])),
            el("td", name_indicators(alert["reason"] or "", data.indicator_ids)),
            el("td", alert["delivery"]),
        ]
        rows.append(el("tr", cells))
    headers: list[str | tuple[str, str]] = ["when"]
    if with_theatre:
        headers.append("theatre")
    headers += ["what", "level", ("index", "num"), "why", "email"]
    return _table(headers, rows, caption="Alerts, newest first (each links to its page)")


# ---------------------------------------------------------------------------
# Pages


def index_page(data: ReportData, *, charts: set[str]) -> str:
    path = paths.INDEX
    root = paths.up(path)
    rows = []
    for theatre in data.theatres:
        point = theatre.point
        rows.append(
            el(
                "tr",
                el(
                    "th",
                    _link(root + paths.theatre_page(theatre.theatre_id), theatre.name),
                    scope="row",
                ),
                el("td", level_badge(point["level"] if point else None)),
                _num(fmt_score(point["score"] if point else None)),
                _num(fmt_change(point["change_24h"] if point else None)),
                _num(fmt_change(point["change_7d"] if point else None)),
                el("td", fmt_time(point["at"]) if point else "–"),
                id=f"theatre-{theatre.theatre_id}",
            )
        )
    overview = _table(
        [
            "theatre",
            "level",
            ("index", "num"),
            ("24 h change", "num"),
            ("7 d change", "num"),
            "as of",
        ],
        rows,
        caption="Every theatre now: level, index (0–100) and how it moved",
    )
    sections = []
    for theatre in data.theatres:
        sections.append(
            el(
                "section",
                el("h3", _link(root + paths.theatre_page(theatre.theatre_id), theatre.name)),
                _chart(
                    theatre,
                    span="90d",
                    days=INDEX_DAYS,
                    rows=theatre.recent,
                    root=root,
                    charts=charts,
                ),
                aria_label=theatre.name,
            )
        )
    body = join(
        el("h1", "Escalation risk report"),
        el("p", f"As of {fmt_time(to_iso(data.now))}.", class_="note"),
        el("h2", "Risk now"),
        overview,
        el("h2", "The whole record"),
        _record(data, root=root, charts=charts),
        el("h2", f"The last {INDEX_DAYS} days"),
        sections,
        el("h2", "Latest alerts"),
        _alert_rows(data.latest_alerts, data, root=root, with_theatre=True),
    )
    return page("Overview", body, path=path, now=data.now)


def _record(data: ReportData, *, root: str, charts: set[str]) -> Html:
    """Every theatre's weekly peak since the first score, on one chart, and its table."""
    weeks = sorted({str(row["at"])[:10] for t in data.theatres for row in t.record})
    if not weeks:
        return el("p", "No score points yet.", class_="note")
    peaks = {
        t.theatre_id: {str(r["at"])[:10]: float(r["score"]) for r in t.record}
        for t in data.theatres
    }
    highs = []
    for theatre in data.theatres:
        if theatre.record:
            top = max(theatre.record, key=lambda r: float(r["score"]))
            highs.append(
                f"{theatre.name} peaked at {float(top['score']):.1f} in the week of {str(top['at'])[:10]}"
            )
    summary = (
        f"Weekly peak risk score of every theatre from {weeks[0]} to {weeks[-1]}: "
        + "; ".join(highs)
        + "."
    )
    if paths.RECORD_CHART in charts:
        picture = el(
            "img", src=root + paths.RECORD_CHART, alt=summary, class_="chart", width=768, height=307
        )
    else:
        picture = el(
            "p",
            "(Charts need matplotlib: pip install 'monitor[chart]'; the table below has every value.)",
            class_="note",
        )
    rows = [
        el(
            "tr",
            el("td", week),
            [_num(fmt_score(peaks[t.theatre_id].get(week))) for t in data.theatres],
        )
        for week in reversed(weeks)
    ]
    table = _table(
        ["week of", *((t.name, "num") for t in data.theatres)],
        rows,
        caption="Weekly peak score of each theatre, newest first",
    )
    return join(
        el("figure", picture, el("figcaption", summary, class_="note"), style="margin:0"),
        el("details", el("summary", f"The numbers behind this chart ({len(weeks)} weeks)"), table),
    )


def theatre_page(data: ReportData, theatre: TheatreData, *, charts: set[str]) -> str:
    path = paths.theatre_page(theatre.theatre_id)
    root = paths.up(path)
    point = theatre.point
    if point is None:
        summary = el("p", "No score yet.", class_="note")
    else:
        summary = el(
            "p",
            "Now ",
            level_badge(point["level"]),
            " index ",
            el("strong", fmt_score(point["score"]), class_="score"),
            f" ({fmt_change(point['change_24h'])} in 24 h, {fmt_change(point['change_7d'])} in 7 d), "
            f"as of {fmt_time(point['at'])}; {point['stories'] or 0} contributing stories; "
            f"methodology v{point['methodology_version']}.",
        )
    body: list[Html] = [el("h1", theatre.name), summary]
    body += [
        el("h2", f"The last {THEATRE_DAYS} days"),
        _chart(theatre, span="1y", days=THEATRE_DAYS, rows=theatre.year, root=root, charts=charts),
        el("h2", "Why the score is what it is"),
    ]
    if not theatre.stories:
        body.append(el("p", "No contributing stories: the score is at its floor.", class_="note"))
    else:
        body.append(
            el(
                "p",
                f"The stories behind the score point of {fmt_time(point['at'] if point else None)}, "
                "largest contribution first (as `monitor explain` shows them).",
                class_="note",
            )
        )
        body.append(_stories(theatre, data))
        body.append(el("h2", "By indicator"))
        body.append(
            _table(
                ["indicator", ("points", "num")],
                [
                    el("tr", el("td", indicator_name(indicator)), _num(f"{points:+.2f}"))
                    for indicator, points in theatre.indicators
                ],
                caption="What each warning sign adds to the current score",
            )
        )
    body += [
        el("h2", "Alerts"),
        _alert_rows(theatre.alerts, data, root=root, with_theatre=False),
    ]
    return page(theatre.name, join(*body), path=path, now=data.now)


def _stories(theatre: TheatreData, data: ReportData) -> Html:
    items = []
    for story in theatre.stories:
        published = fmt_time(story.published_at)
        evidence = [
            el(
                "li",
                el("strong", indicator_name(e.indicator_id)),
                f" {e.points:+.2f} points",
                f" (confidence {e.confidence:.2f})" if e.confidence is not None else "",
                el("blockquote", e.sentence) if e.sentence else None,
            )
            for e in story.evidence
        ]
        sources = [
            el(
                "li",
                _external(source.url, source.title or "(untitled)"),
                f" — {source.outlet}, {fmt_time(source.published_at)}",
            )
            for source in story.articles
        ]
        items.append(
            el(
                "li",
                el("h3", _external(story.url, story.title or "(untitled)")),
                el(
                    "p",
                    f"{story.points:+.2f} points · {story.outlet} · {published} · "
                    f"{story.sources} source{'s' if story.sources != 1 else ''}",
                    class_="note",
                ),
                el("ul", evidence),
                el("details", el("summary", f"Sources ({len(sources)})"), el("ul", sources))
                if sources
                else None,
                class_="story",
            )
        )
    return el("ol", items, class_="stories")


def alert_page(data: ReportData, alert: AlertData) -> str:
    row = alert.row
    path = paths.alert_page(row["id"])
    root = paths.up(path)
    theatre = row["theatre_id"]
    where = data.theatre_names.get(theatre, theatre) if theatre else "feeds"
    kind = KIND_LABELS.get(row["kind"], str(row["kind"]).replace("_", " "))
    facts: list[tuple[str, object]] = [
        ("When", fmt_time(row["created_at"])),
        ("Theatre", _link(root + paths.theatre_page(theatre), where) if theatre else where),
        ("What", kind),
        ("Level", level_badge(row["level"]) if row["level"] else "–"),
        ("Previous level", row["previous_level"] or "–"),
        ("Index", fmt_score(row["score"])),
        ("Change in 24 h", fmt_change(row["change_24h"])),
        ("Why", name_indicators(row["reason"] or "", data.indicator_ids)),
        ("Email", _delivery(row)),
    ]
    body = join(
        el("h1", f"Alert: {kind}, {where}"),
        el("dl", [join(el("dt", label), el("dd", value)) for label, value in facts]),
        el("h2", "What the email said"),
        el("pre", alert.email_text)
        if alert.email_text
        else el(
            "p",
            "This alert had no email of its own (it went into the daily digest).",
            class_="note",
        ),
        el(
            "p",
            "Permanent link: ",
            el("a", paths.alert_page(row["id"]), href=root + path),
            class_="note",
        ),
    )
    return page(f"Alert {row['id']}: {kind}, {where}", body, path=path, now=data.now)


def _delivery(row: dict[str, Any]) -> str:
    status = row["delivery"]
    if status == "sent" and row.get("sent_at"):
        return f"sent {fmt_time(row['sent_at'])}"
    return {
        "digest": "held for the daily digest",
        "none": "no email recorded",
        "pending": "waiting to be sent",
        "dead": "could not be delivered",
    }.get(status, str(status))


FEED_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("health", "health", str),
    ("last success", "last_success_at", fmt_time),
    ("failures", "consecutive_failures", lambda v: str(v or 0)),
    ("failing since", "failing_since", fmt_time),
    ("last error", "last_error", lambda v: v or ""),
    ("next check", "next_check_at", fmt_time),
    ("entries", "entries_seen", lambda v: str(v or 0)),
    ("share of 304s", "share_304", lambda v: "–" if v is None else f"{v:.0%}"),
)


def feeds_page(data: ReportData) -> str:
    path = paths.FEEDS
    rows = [
        el(
            "tr",
            el(
                "th",
                el("span", feed["name"] or feed["id"]),
                el("br"),
                el("small", feed["id"]),
                scope="row",
            ),
            [el("td", render(feed[key])) for _, key, render in FEED_COLUMNS],
        )
        for feed in data.feeds
    ]
    failing = sum(1 for feed in data.feeds if feed["health"] != "ok")
    body = join(
        el("h1", "Feed health"),
        el("p", f"{len(data.feeds)} feeds, {failing} not ok.", class_="note"),
        _table(
            ["feed", *(label for label, _, _ in FEED_COLUMNS)],
            rows,
            caption="Every configured feed",
        ),
    )
    return page("Feed health", body, path=path, now=data.now)
