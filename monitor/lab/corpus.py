"""Load labelled news items (JSON Lines) for evaluation, replay and demos.

Owns the corpus format (one JSON object a line; described in
`tests/fixtures/corpus/README.md`): field checks, the three date forms (`YYYY-MM-DD`, `YYYY-MM`, `YYYY`,
or null) turned into an aware UTC datetime plus a precision, and the `ArticleText` the
matcher reads (the body without the headline the corpus repeats on its first line).

A bad line stops loading with a `CorpusError` naming the file, the line and the field;
nothing is skipped silently. Must not: match, score or write anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from monitor.errors import MonitorError
from monitor.models import ArticleText

__all__ = ["CorpusError", "CorpusItem", "DatePrecision", "load_corpus", "parse_corpus_date"]

DatePrecision = Literal["day", "month", "year", "unknown"]

_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class CorpusError(MonitorError):
    """A corpus file cannot be read, or one of its lines is not a valid item."""


@dataclass(frozen=True, slots=True)
class CorpusItem:
    """One labelled news item."""

    id: str
    published_at: datetime | None  # start of the day/month/year given, UTC; None if unknown
    date_precision: DatePrecision
    source: str
    url: str
    lang: str
    title: str
    text: str  # headline, blank line, paragraphs (as in the file)
    labels: tuple[str, ...]
    theatre: str
    notes: str = ""
    date: str | None = None  # as written in the file
    provenance: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def body(self) -> str:
        """The text without the repeated headline on its first line."""
        first, _, rest = self.text.partition("\n")
        if first.strip() == self.title.strip():
            return rest.strip()
        return self.text.strip()

    def article(self) -> ArticleText:
        """What the matcher reads for this item."""
        return ArticleText(
            title=self.title,
            text=self.body,
            language=self.lang,
            published_at=self.published_at,
        )


def parse_corpus_date(value: str | None) -> tuple[datetime | None, DatePrecision]:
    """`"2022-09-16"`, `"2022-09"`, `"2022"` or None → (aware UTC datetime, precision).

    Partial dates become the first day of their month or year. Raises ValueError on
    anything else (including impossible dates like 2022-02-30).
    """
    if value is None:
        return None, "unknown"
    found = _DATE_RE.match(value.strip())
    if found is None:
        raise ValueError(f"expected YYYY-MM-DD, YYYY-MM, YYYY or null, got {value!r}")
    year, month, day = found.groups()
    parsed = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
    precision: DatePrecision = "day" if day else "month" if month else "year"
    return parsed, precision


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "date": (str, type(None)),
    "source": str,
    "url": str,
    "lang": str,
    "title": str,
    "text": str,
    "labels": list,
    "theatre": str,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "notes": str,
    "provenance": dict,
    "paraphrased": bool,
}
_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", bool: "true or false"}


def _type_name(expected: type | tuple[type, ...]) -> str:
    if isinstance(expected, tuple):
        return " or ".join("null" if t is type(None) else _TYPE_NAMES[t] for t in expected)
    return _TYPE_NAMES[expected]


def _item_from(record: object, where: str) -> CorpusItem:
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key, expected in (_REQUIRED | _OPTIONAL).items():
        if key not in record:
            if key in _REQUIRED:
                raise CorpusError(f"{where}: missing field '{key}'")
            continue
        if not isinstance(record[key], expected):
            raise CorpusError(f"{where}: field '{key}' must be {_type_name(expected)}")
    for key in ("id", "title", "text", "lang", "theatre"):
        if not record[key].strip():
            raise CorpusError(f"{where}: field '{key}' must not be empty")
    if not _ID_RE.match(record["id"]):
        raise CorpusError(f"{where}: field 'id' must be a slug, got {record['id']!r}")
    labels = record["labels"]
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise CorpusError(f"{where}: field 'labels' must hold non-empty strings")
    if len(set(labels)) != len(labels):
        raise CorpusError(f"{where}: field 'labels' repeats a label")
    try:
        published_at, precision = parse_corpus_date(record["date"])
    except ValueError as exc:
        raise CorpusError(f"{where}: field 'date': {exc}") from None
    return CorpusItem(
        id=record["id"],
        published_at=published_at,
        date_precision=precision,
        source=record["source"],
        url=record["url"],
        lang=record["lang"],
        title=record["title"],
        text=record["text"],
        labels=tuple(labels),
        theatre=record["theatre"],
        notes=record.get("notes", ""),
        date=record["date"],
        provenance=MappingProxyType(dict(record.get("provenance", {}))),
    )


def load_corpus(path: str | Path) -> list[CorpusItem]:
    """Read a JSON Lines corpus. Blank lines are skipped; any bad line raises.

    Raises `CorpusError` as `"{path}:{line}: {problem}"` for invalid JSON, a missing or
    mistyped field, a bad date or a repeated id, and for an unreadable file.
    """
    file_path = Path(path)
    try:
        raw = file_path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{file_path}: cannot read corpus: {exc.strerror or exc}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(f"{file_path}:{bad_line}: not valid UTF-8") from None
    items: list[CorpusItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file_path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        item = _item_from(record, where)
        if item.id in seen:
            raise CorpusError(f"{where}: id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = number
        items.append(item)
    return items


def source_feed_id(source: str) -> str:
    """A stable feed id for an outlet named in a corpus (demo feeds, replay feeds):
    a readable slug plus a short hash, so two names never collapse into one feed."""
    ascii_text = "".join(c.lower() if c.isascii() and c.isalnum() else "-" for c in source)
    slug = "-".join(part for part in ascii_text.split("-") if part)[:40].strip("-")
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else f"feed-{digest}"
