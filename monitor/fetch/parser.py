"""Feed bytes → cleaned `Entry` records with stable ids: the only user of feedparser.

Owns the rules that make hostile feed content harmless before anything stores or shows
it: documents declaring XML entities are refused before parsing; feedparser only ever
gets `io.BytesIO(body)` (never a URL, a path or a str, which it would open); its
exceptions become an error result; `bozo` is a warning; a page with no entries is an
error. Titles become single-line plain text, summaries plain text, links http(s) only,
dates are clamped to the fetch time, every field is capped.

Pure apart from CPU and memory: no network, no files, no clock (the fetch time is passed
in). Run it in `parse_sandbox` to bound time and memory; this module does not.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from monitor.detect.language import detect_language
from monitor.models import Entry, ParseResult, utc
from monitor.urls import (
    _LINE_BREAKS,
    INVISIBLE,
    MAX_URL_CHARS,
    canonical_url,
    clean_link,
)

MAX_ENTRIES = 1000  # per feed and fetch; the rest are dropped with a warning
MAX_TITLE_CHARS = 300
MAX_SUMMARY_CHARS = 20_000
MAX_RAW_TEXT_CHARS = 200_000  # HTML read per field before stripping
MAX_ID_CHARS = 512
MAX_TTL_SECONDS = 7 * 24 * 3600


_SPACES = re.compile(r"[ \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
# "<!entity" as feedparser could decode it: ASCII-compatible, UTF-16/32 (compared after
# bytes.lower(), which only touches ASCII letters) and EBCDIC (compared as is).
_ENTITY_LOWERED = tuple(
    sorted(
        {
            "<!entity".encode(c)
            for c in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
        }
    )
)
_ENTITY_EBCDIC = tuple(
    sorted(
        {word.encode(c) for c in ("cp037", "cp500", "cp1026") for word in ("<!ENTITY", "<!entity")}
    )
)
_XML_ENCODING = re.compile(rb"""^[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)


def has_entity_declaration(body: bytes, content_type: str | None = None) -> bool:
    """True if the document declares an entity (`<!ENTITY`, any case) in any encoding
    feedparser might decode it with: ASCII-compatible, UTF-16/32, EBCDIC, or a charset
    named by the Content-Type or the XML declaration (UTF-7…). Checked over the whole
    body: feeds have no reason to declare entities at all."""
    lowered = body.lower()
    if any(pattern in lowered for pattern in _ENTITY_LOWERED):
        return True
    if any(pattern in body for pattern in _ENTITY_EBCDIC):
        return True
    names: set[str] = set()
    declared = _XML_ENCODING.match(body.lstrip()[:300])
    if declared:
        names.add(declared.group(1).decode("ascii").lower())
    if content_type:
        header = _CHARSET.search(content_type)
        if header:
            names.add(header.group(1).lower())
    for name in names:
        try:
            text = body.decode(name, "ignore")
        except Exception:  # unknown or non-text codec: feedparser cannot use it either
            continue
        if isinstance(text, str) and "<!entity" in text.lower():
            return True
    return False


# ---------------------------------------------------------------------------
# Text cleaning


def clean_line(text: str, *, limit: int = MAX_TITLE_CHARS) -> str:
    """One line of plain text: controls, bidi overrides and line breaks gone, spaces
    collapsed, NFC, at most `limit` characters (cut at a word, with an ellipsis)."""
    text = unicodedata.normalize("NFC", text[: limit * 4])
    text = _LINE_BREAKS.sub(" ", text)
    text = INVISIBLE.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _cut(text, limit)


def clean_block(text: str, *, limit: int = MAX_SUMMARY_CHARS) -> str:
    """Plain text keeping paragraph breaks: like `clean_line`, but newlines survive."""
    text = unicodedata.normalize("NFC", text[: limit * 4])
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub("[\x0b\x0c\x85\u2028\u2029]", "\n", text).replace("\t", " ")
    text = INVISIBLE.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    text = _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "title", "svg", "math"})
    _BLOCK = frozenset(
        {
            "p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5",
            "h6", "blockquote", "pre", "section", "article", "header", "footer", "hr",
            "figure", "figcaption", "dt", "dd",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment: tags, scripts and styles dropped, entities decoded."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html[:MAX_RAW_TEXT_CHARS])
        extractor.close()
    except Exception:  # HTMLParser is lenient; this is a last resort
        return re.sub(r"<[^>]*>", " ", html[:MAX_RAW_TEXT_CHARS])
    return "".join(extractor.parts)


def _text_of(value: Any) -> str:
    """Plain text of a feed field. Markup is removed whatever type the feed declared:
    RSS titles routinely carry escaped HTML, and no field is shown as HTML downstream."""
    if not isinstance(value, str):
        return ""
    value = value[:MAX_RAW_TEXT_CHARS]
    if "<" not in value and "&" not in value:
        return value
    return html_to_text(value)


# ---------------------------------------------------------------------------
# URLs and ids


def content_hash(title: str, summary: str) -> str:
    """SHA-256 of the cleaned title and summary: notices updated items, ids items without one."""
    return hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest()


def _stable_id(raw_id: Any, link: str | None, digest: str) -> str:
    if isinstance(raw_id, str):
        guid = clean_line(raw_id, limit=MAX_ID_CHARS * 4)
        if guid:
            if len(guid) > MAX_ID_CHARS:
                return "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
            return guid
    canonical = canonical_url(link)
    if canonical:
        return canonical
    return "hash:" + digest


# ---------------------------------------------------------------------------
# Dates and language


def _entry_datetime(raw: Mapping[str, Any], fetched_at: datetime) -> datetime:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict.get aliases a missing published to updated, with a warning
        value = dict.get(raw, key) if isinstance(raw, dict) else raw.get(key)
        if value is None:
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(value), UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            continue
        return min(when, fetched_at)
    return fetched_at


def _language_code(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    code = value.strip().lower().replace("_", "-").split("-", 1)[0]
    return code if code in ("en", "ru") else None


def _entry_language(title: str, summary: str, hint: str | None) -> str:
    detected = detect_language(f"{title} {summary[:500]}")  # enough text to tell the script
    if detected != "und":
        return detected
    return hint or "und"


def _ttl_seconds(feed: Mapping[str, Any]) -> int | None:
    value = feed.get("ttl")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    minutes = int(text)
    if minutes <= 0:
        return None
    return min(minutes * 60, MAX_TTL_SECONDS)


# ---------------------------------------------------------------------------
# Parsing


def _error(kind: str, message: str) -> ParseResult:
    return ParseResult(entries=(), status="error", error_kind=kind, message=message)


def _feedparser_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Only what feedparser needs: the declared type (encoding) and the base URL."""
    if not headers:
        return {}
    wanted = {}
    for name, value in headers.items():
        key = str(name).lower()
        if key in ("content-type", "content-location", "content-language") and isinstance(
            value, str
        ):
            wanted[key] = clean_line(value, limit=MAX_URL_CHARS)
    location = wanted.get("content-location")
    if location is not None and clean_link(location) is None:
        del wanted["content-location"]
    return wanted


def parse_feed(
    body: bytes,
    *,
    feed_id: str,
    fetched_at: datetime,
    headers: Mapping[str, str] | None = None,
    language_hint: str | None = None,
    reject_entity_declarations: bool = True,
) -> ParseResult:
    """Parse a fetched body into clean entries. Never raises for bad input.

    `headers` are the response headers (lower-case names); content-type and the absolute
    content-location are used. `language_hint` ("en"/"ru") applies to items whose own text
    is too short or mixed to tell. `reject_entity_declarations=False` exists only so the
    sandbox test can prove the sandbox catches what the pre-check normally stops.
    """
    fetched_at = utc(fetched_at)
    try:
        data = bytes(body)
    except (TypeError, ValueError):
        return _error("invalid_input", f"expected bytes, got {type(body).__name__}")
    if not data.strip():
        return _error("empty_body", "the response body is empty")
    content_type = (headers or {}).get("content-type")
    if reject_entity_declarations and has_entity_declaration(data, content_type):
        return _error(
            "entity_declaration",
            "the document declares XML entities (<!ENTITY); refused before parsing",
        )
    try:
        # Every field becomes plain text here (`_text_of`), so feedparser's HTML sanitizer
        # and its rewriting of links inside HTML would be work thrown away (~20 % of the
        # parse). Entry links are still resolved against content-location by feedparser.
        parsed = feedparser.parse(
            io.BytesIO(data),
            response_headers=_feedparser_headers(headers),
            resolve_relative_uris=False,
            sanitize_html=False,
        )
    except MemoryError:
        return _error("parse_resource_limit", "the parser ran out of memory")
    except Exception as exc:  # feedparser raises on some broken encodings (see reliability.md)
        return _error("parse_exception", f"feedparser raised {type(exc).__name__}: {exc}"[:500])
    try:
        return _build_result(parsed, feed_id, fetched_at, _language_code(language_hint))
    except MemoryError:
        return _error("parse_resource_limit", "cleaning the entries ran out of memory")
    except Exception as exc:
        return _error("parse_exception", f"{type(exc).__name__} while cleaning: {exc}"[:500])


def _build_result(
    parsed: Mapping[str, Any], feed_id: str, fetched_at: datetime, hint: str | None
) -> ParseResult:
    feed = parsed.get("feed") or {}
    if not isinstance(feed, Mapping):
        feed = {}
    raw_entries = parsed.get("entries") or []
    hint = hint or _language_code(feed.get("language"))
    entries: list[Entry] = []
    seen: set[str] = set()
    skipped = 0
    empty = 0  # items with no title, no text and no link (`<item/>`): nothing to carry
    for raw in raw_entries[:MAX_ENTRIES]:
        try:
            entry = _build_entry(raw, feed_id, fetched_at, hint)
        except Exception:
            skipped += 1
            continue
        if entry is None:
            skipped += 1
            empty += 1
        elif entry.entry_id not in seen:
            seen.add(entry.entry_id)
            entries.append(entry)
    bozo_message = None
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        bozo_message = clean_line(f"{type(exc).__name__}: {exc}" if exc else "malformed", limit=300)
    ttl = _ttl_seconds(feed)
    all_empty = bool(raw_entries) and empty == len(raw_entries)
    if (
        not entries
        and (not raw_entries or all_empty)
        and not bozo_message
        and parsed.get("version")
    ):
        # A well-formed RSS/Atom document that carries nothing now: no items (a quiet
        # keyword-search feed), or only empty ones (`<item/>`). Healthy, not a failure to
        # back off from: an empty item is not hostile, it just says nothing.
        contents = "no items" if not raw_entries else f"only empty items ({len(raw_entries)})"
        return ParseResult(
            entries=(),
            status="warning",
            error_kind="empty_feed",
            message=f"a valid {parsed.get('version')} feed with {contents}",
            feed_ttl_seconds=ttl,
        )
    if not entries:
        reason = "no feed entries found"
        if raw_entries:
            reason = f"all {len(raw_entries)} entries were empty or unreadable"
        elif bozo_message:
            reason += f" ({bozo_message})"
        return ParseResult(
            entries=(),
            status="error",
            error_kind="no_entries",
            message=reason,
            feed_ttl_seconds=ttl,
        )
    warnings: list[tuple[str, str]] = []
    if bozo_message:
        warnings.append(("malformed", f"malformed feed: {bozo_message}"))
    if len(raw_entries) > MAX_ENTRIES:
        warnings.append(
            ("entries_truncated", f"{len(raw_entries)} entries; kept the first {MAX_ENTRIES}")
        )
    if skipped:
        warnings.append(("entries_skipped", f"{skipped} empty or unreadable entries skipped"))
    if warnings:
        return ParseResult(
            entries=tuple(entries),
            status="warning",
            error_kind=warnings[0][0],
            message="; ".join(text for _, text in warnings),
            feed_ttl_seconds=ttl,
        )
    return ParseResult(entries=tuple(entries), status="ok", feed_ttl_seconds=ttl)


def _build_entry(
    raw: Mapping[str, Any], feed_id: str, fetched_at: datetime, hint: str | None
) -> Entry | None:
    summary_html = raw.get("summary")
    if not isinstance(summary_html, str) or not summary_html.strip():
        content = raw.get("content")
        if isinstance(content, list) and content and isinstance(content[0], Mapping):
            summary_html = content[0].get("value")
    summary = clean_block(_text_of(summary_html))
    title = clean_line(_text_of(raw.get("title")))
    if not title and summary:
        title = clean_line(summary, limit=120)
    link = clean_link(raw.get("link"))
    if not title and not summary and link is None:
        return None
    digest = content_hash(title, summary)
    return Entry(
        entry_id=_stable_id(raw.get("id"), link, digest),
        feed_id=feed_id,
        url=link,
        title=title,
        summary=summary,
        published_at=_entry_datetime(raw, fetched_at),
        language=_entry_language(title, summary, hint),
        content_hash=digest,
    )
