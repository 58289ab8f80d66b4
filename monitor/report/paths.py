"""Where each page of the static report lives (relative to the report's folder).

Alert pages are named by the alert's id, which never changes: a link in an email stays
good across rebuilds (a permanent link).
"""

from __future__ import annotations

import re

INDEX = "index.html"
FEEDS = "feeds.html"
RECORD_CHART = "charts/record.svg"


def alert_page(alert_id: int) -> str:
    return f"alerts/{int(alert_id)}.html"


def theatre_page(theatre_id: str) -> str:
    return f"theatres/{_slug(theatre_id)}.html"


def chart_file(theatre_id: str, span: str) -> str:
    return f"charts/{_slug(theatre_id)}-{_slug(span)}.svg"


def _slug(text: str) -> str:
    """A file-name-safe form of a configured id ("kg-tj" stays "kg-tj")."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "x"


def up(path: str) -> str:
    """The prefix that leads from the page at `path` back to the report's root."""
    return "../" * path.count("/")
