"""parse_feed on good, broken and hostile feeds (reliability.md tests 1, 2, 4-10)."""

from __future__ import annotations

import collections
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.fetch.parser import (
    INVISIBLE,
    MAX_ENTRIES,
    MAX_SUMMARY_CHARS,
    MAX_TITLE_CHARS,
    canonical_url,
    clean_line,
    has_entity_declaration,
    parse_feed,
)
from monitor.models import Entry, ParseResult
from tests.support.http import AuditLog, FeedServer, Reply
from tests.support.parsing import (
    RUSSIAN_TITLE,
    Case,
    billion_laughs,
    external_dtd,
    good_rss,
    hostile_corpus,
    item,
    quadratic_blowup,
    rss,
    xxe,
)

FETCHED_AT = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)
CONTROL_OR_BIDI = {"Cc", "Cf", "Cs"}  # categories that must not survive in a title


@pytest.fixture(scope="module")
def xxe_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.route("/*", Reply(200, b"SECRET-FROM-LOCAL-SERVER"))
        yield server


@pytest.fixture(scope="module")
def corpus(xxe_server: FeedServer) -> dict[str, Case]:
    return {case.name: case for case in hostile_corpus(xxe_server.url("/xxe"))}


CASE_NAMES = [case.name for case in hostile_corpus("http://127.0.0.1:9/xxe")]


def parse(body: bytes, **kwargs: object) -> ParseResult:
    return parse_feed(body, feed_id="feed", fetched_at=FETCHED_AT, **kwargs)  # type: ignore[arg-type]


def assert_clean(entry: Entry) -> None:
    """What every stored entry must look like, whatever the feed sent."""
    assert entry.title == entry.title.strip()
    assert len(entry.title) <= MAX_TITLE_CHARS
    assert not any(unicodedata.category(c) in CONTROL_OR_BIDI for c in entry.title), entry.title
    assert len(entry.summary) <= MAX_SUMMARY_CHARS
    assert not any(unicodedata.category(c) in CONTROL_OR_BIDI and c != "\n" for c in entry.summary)
    assert "<script" not in (entry.title + entry.summary).lower()
    assert entry.url is None or entry.url.startswith(("http://", "https://"))
    assert entry.published_at <= FETCHED_AT
    assert entry.published_at.tzinfo is not None
    assert entry.language in ("en", "ru", "und")
    assert 0 < len(entry.entry_id) <= 600
    assert len(entry.content_hash) == 64


# ---------------------------------------------------------------------------
# The corpus: 0 exceptions escape, every case recorded, good entries kept


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_corpus_case_is_recorded_without_exception(
    name: str, corpus: dict[str, Case], xxe_server: FeedServer
) -> None:
    case = corpus[name]
    result = parse(case.body, headers=case.headers)
    assert result.status in ("ok", "warning", "error")
    if result.status == "error":
        assert result.entries == ()
        assert result.error_kind
        assert result.message
    elif result.error_kind != "empty_feed":  # a valid feed with no items is only a warning
        assert result.entries
    if case.expect_kind is not None:
        assert result.error_kind == case.expect_kind, result.message
    titles = [entry.title for entry in result.entries]
    for wanted in case.keep_titles:
        assert any(title.startswith(wanted) for title in titles), (wanted, titles)
    for entry in result.entries:
        assert_clean(entry)
    assert xxe_server.requests == []


def test_corpus_has_at_least_200_cases_in_every_class() -> None:
    classes = collections.Counter(case.klass for case in hostile_corpus("http://127.0.0.1:9/"))
    assert sum(classes.values()) >= 200
    assert set(classes) == {"entity", "encoding", "truncation", "structure", "fuzz"}
    assert min(classes.values()) >= 10


# ---------------------------------------------------------------------------
# Entity attacks (tests 1, 2, 4)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(billion_laughs().encode(), id="billion-laughs"),
        pytest.param(quadratic_blowup(), id="quadratic-blowup"),
        pytest.param(xxe("file:///etc/hostname"), id="xxe-file"),
    ],
)
def test_entity_declarations_are_rejected_before_parsing(body: bytes) -> None:
    result = parse(body)
    assert (result.status, result.error_kind) == ("error", "entity_declaration")
    assert result.entries == ()


def test_xxe_without_the_precheck_reads_no_file_and_contacts_nothing(
    xxe_server: FeedServer,
) -> None:
    """Defence in depth: even if the pre-check were off, feedparser must not resolve
    external entities or DTDs (no file opened, no connection, entity not expanded)."""
    audit = AuditLog()
    bodies = [
        xxe("file:///etc/hostname"),
        xxe(xxe_server.url("/xxe")),
        xxe(xxe_server.url("/param"), parameter=True),
        external_dtd(xxe_server.url("/dtd")),
    ]
    with audit.watching():
        results = [parse(body, reject_entity_declarations=False) for body in bodies]
    assert xxe_server.requests == []
    assert not [path for path in audit.opens if "hostname" in path]
    assert audit.connects == []
    for result in results:
        for entry in result.entries:
            assert "SECRET" not in entry.title + entry.summary


def test_billion_laughs_without_the_precheck_is_not_expanded() -> None:
    result = parse(billion_laughs().encode(), reject_entity_declarations=False)
    assert all(len(entry.title) < 1000 for entry in result.entries)
    assert "lollollol" not in "".join(entry.title for entry in result.entries)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param(b'<!DOCTYPE x [<!ENTITY a "b">]>', None, True, id="plain"),
        pytest.param(b"<!DOCTYPE x [<!entity a 'b'>]>", None, True, id="lower-case"),
        pytest.param("<!ENTITY a 'b'>".encode("utf-16-le"), None, True, id="utf-16le"),
        pytest.param("<!ENTITY a 'b'>".encode("utf-32-be"), None, True, id="utf-32be"),
        pytest.param("<!ENTITY a 'b'>".encode("cp037"), None, True, id="ebcdic"),
        pytest.param("<!ENTITY a 'b'>".encode("utf-7"), "text/xml; charset=utf-7", True, id="utf7"),
        pytest.param(
            b'<?xml version="1.0" encoding="utf-7"?>' + "<!ENTITY a>".encode("utf-7"),
            None,
            True,
            id="utf7-declared",
        ),
        pytest.param(good_rss(2), None, False, id="normal-feed"),
        pytest.param(b"<title>&lt;!ENTITY is escaped text</title>", None, False, id="escaped"),
        pytest.param(b"<x/>", "text/xml; charset=rot13", False, id="non-text-codec"),
    ],
)
def test_has_entity_declaration(body: bytes, content_type: str | None, expected: bool) -> None:
    assert has_entity_declaration(body, content_type) is expected


# ---------------------------------------------------------------------------
# Bodies that are not feeds (tests 3, 5, 7)


def test_feedparser_errors_become_parse_exception() -> None:
    """feedparser 6.0.x raises UnicodeDecodeError on `encoding="\\x80tf-8"`."""
    body = rss(item(1)).replace('encoding="utf-8"', 'encoding="\x80tf-8"').encode("latin-1")
    result = parse(body)
    assert (result.status, result.error_kind) == ("error", "parse_exception")
    assert "UnicodeDecodeError" in (result.message or "")


def test_a_path_or_url_as_body_is_data_not_a_location(xxe_server: FeedServer) -> None:
    audit = AuditLog()
    with audit.watching():
        results = [
            parse(b"/etc/hostname"),
            parse(b"file:///etc/hostname"),
            parse(xxe_server.url("/feed.xml").encode()),
        ]
    assert [r.error_kind for r in results] == ["no_entries"] * 3
    assert not [path for path in audit.opens if "hostname" in path]
    assert audit.connects == []
    assert xxe_server.requests == []


def test_html_challenge_page_with_200_is_no_entries_not_healthy() -> None:
    page = (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
        b"<body><h1>Checking your browser</h1></body></html>"
    )
    result = parse(page, headers={"content-type": "text/html; charset=UTF-8"})
    assert (result.status, result.error_kind, result.entries) == ("error", "no_entries", ())


def test_bozo_is_a_warning_and_good_entries_are_kept() -> None:
    text = rss(item(1) + item(2) + item(3, title="Bad & broken <b>"))
    result = parse(text.encode())
    assert result.status == "warning"
    assert result.error_kind == "malformed"
    assert [e.title[:7] for e in result.entries][:2] == ["Item 1:", "Item 2:"]


# ---------------------------------------------------------------------------
# Clean text (tests 8, 9, 10)


@pytest.mark.parametrize(
    ("raw_title", "expected"),
    [
        pytest.param(
            "Line one&#13;&#10;Bcc: x@example.org", "Line one Bcc: x@example.org", id="crlf"
        ),
        pytest.param("Tab&#9;and&#11;vertical", "Tab and vertical", id="tab-vt"),
        pytest.param("abc\u202egnp.exe\u202c", "abcgnp.exe", id="rtl-override"),
        pytest.param("\u2066isolated\u2069 text\u200b", "isolated text", id="isolates-zero-width"),
        pytest.param("&lt;b&gt;Bold&lt;/b&gt; news", "Bold news", id="escaped-html"),
        pytest.param("  many     spaces  ", "many spaces", id="spaces"),
    ],
)
def test_titles_become_one_clean_line(raw_title: str, expected: str) -> None:
    result = parse(rss(item(1, title=raw_title)).encode())
    assert result.entries[0].title == expected


def test_nul_and_escape_bytes_in_a_title_are_removed() -> None:
    body = rss(item(1, title="NUL\x00here ESC\x1b[31m red")).encode()
    result = parse(body)
    (entry,) = result.entries
    assert "\x00" not in entry.title and "\x1b" not in entry.title
    assert_clean(entry)


def test_a_10kb_title_is_capped() -> None:
    result = parse(rss(item(1, title="word " * 2000)).encode())
    title = result.entries[0].title
    assert len(title) <= MAX_TITLE_CHARS
    assert title.endswith("…")


def test_the_invisible_class_covers_every_control_and_format_character() -> None:
    missing = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in CONTROL_OR_BIDI
        and chr(code) not in "\t\n\r"
        and not INVISIBLE.match(chr(code))
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C1\x85next\x91line", "C1 nextline"),
        ("soft\xadhyphen\U000e0041tag", "softhyphentag"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("line\u2028separator", "line separator"),
    ],
)
def test_clean_line_removes_what_feedparser_passes_through(text: str, expected: str) -> None:
    assert clean_line(text) == expected


def test_clean_line_caps_at_a_word() -> None:
    assert clean_line("alpha beta gamma delta", limit=12) == "alpha beta…"


def test_markup_and_dangerous_links_are_removed() -> None:
    body = rss(
        "<item><title>&lt;script&gt;alert(1)&lt;/script&gt;Headline</title>"
        "<link>javascript:alert(document.cookie)</link><guid>s1</guid>"
        '<description>&lt;img src=x onerror="alert(1)"&gt;&lt;script&gt;steal()&lt;/script&gt;'
        "Body &lt;a href=&quot;javascript:alert(2)&quot;&gt;text&lt;/a&gt;</description></item>"
        "<item><title>Data link</title><link>data:text/html;base64,PHNjcmlwdD4=</link>"
        "<guid>s2</guid></item>"
        "<item><title>Vbscript</title><link> vbscript:msgbox</link><guid>s3</guid></item>"
    ).encode()
    result = parse(body)
    first, second, third = result.entries
    assert first.title == "Headline"
    assert first.summary == "Body text"
    assert [first.url, second.url, third.url] == [None, None, None]
    for entry in result.entries:
        text = (entry.title + entry.summary).lower()
        assert "script" not in text.replace("vbscript", "") and "onerror" not in text


def test_summaries_become_plain_text_with_paragraphs_and_are_capped() -> None:
    html = (
        "&lt;p&gt;First &amp;amp; one.&lt;/p&gt;&lt;style&gt;p{}&lt;/style&gt;"
        "&lt;p&gt;Second&lt;/p&gt;"
    )
    result = parse(
        rss(item(1).replace("&lt;p&gt;Paragraph 1 about the border.&lt;/p&gt;", html)).encode()
    )
    assert result.entries[0].summary == "First & one.\n\nSecond"
    huge = parse(rss(item(1, extra=f"<content>{'word ' * 300_000}</content>")).encode())
    assert len(huge.entries[0].summary) <= MAX_SUMMARY_CHARS


def test_a_feed_with_too_many_items_is_capped_with_a_warning() -> None:
    items = "".join(f"<item><title>t{n}</title><guid>g{n}</guid></item>" for n in range(1500))
    result = parse(rss(items).encode())
    assert len(result.entries) == MAX_ENTRIES
    assert (result.status, result.error_kind) == ("warning", "entries_truncated")


# ---------------------------------------------------------------------------
# Ids, links, dates, language, ttl


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM/a?utm_source=x&id=3#frag", "https://example.com/a?id=3"),
        ("http://example.com:80/a?fbclid=1&gclid=2", "http://example.com/a"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://user:pw@example.com/x", "https://example.com/x"),
        ("https://example.com/a?b=2&a=1&utm_medium=m", "https://example.com/a?a=1&b=2"),
        ("https://пример.рф/новости", "https://xn--e1afmkfd.xn--p1ai/новости"),
        ("https://Example.com./a", "https://example.com/a"),
        ("javascript:alert(1)", None),
        ("/relative", None),
        ("", None),
        (None, None),
    ],
)
def test_canonical_url(url: str | None, expected: str | None) -> None:
    assert canonical_url(url) == expected


def test_ids_are_guid_then_canonical_link_then_content_hash() -> None:
    body = rss(
        "<item><title>With guid</title><guid>urn:a</guid><link>https://x.org/1</link></item>"
        "<item><title>Link only</title><link>https://X.org/2?utm_campaign=c</link></item>"
        "<item><title>Neither</title><description>text</description></item>"
    ).encode()
    first, second, third = parse(body).entries
    assert first.entry_id == "urn:a"
    assert second.entry_id == "https://x.org/2"
    assert third.entry_id == "hash:" + third.content_hash


def test_ids_are_stable_across_fetches_and_fetch_times() -> None:
    body = rss("<item><title>No id, no date</title><description>x</description></item>").encode()
    one = parse_feed(body, feed_id="f", fetched_at=FETCHED_AT)
    two = parse_feed(body, feed_id="f", fetched_at=FETCHED_AT + timedelta(hours=5))
    assert one.entries[0].entry_id == two.entries[0].entry_id


def test_duplicate_ids_within_a_feed_are_kept_once() -> None:
    result = parse(rss(item(1) + item(1)).encode())
    assert len(result.entries) == 1


def test_dates_are_utc_and_never_after_the_fetch() -> None:
    body = rss(
        item(1).replace("Fri, 13 Sep 2024 01:00:00 GMT", "Fri, 13 Sep 2024 10:00:00 +0300")
        + item(2).replace("Fri, 13 Sep 2024 02:00:00 GMT", "Mon, 01 Jan 2099 00:00:00 GMT")
        + item(3).replace("<pubDate>Fri, 13 Sep 2024 03:00:00 GMT</pubDate>", "")
        + item(4).replace("Fri, 13 Sep 2024 04:00:00 GMT", "not a date")
    ).encode()
    dates = [entry.published_at for entry in parse(body).entries]
    assert dates == [datetime(2024, 9, 13, 7, 0, tzinfo=UTC), FETCHED_AT, FETCHED_AT, FETCHED_AT]


def test_relative_links_resolve_against_content_location() -> None:
    body = rss("<item><title>Rel</title><link>/a/rel?x=1</link></item>").encode()
    result = parse(body, headers={"content-location": "https://news.example.org/feed.xml"})
    assert result.entries[0].url == "https://news.example.org/a/rel?x=1"


@pytest.mark.parametrize(
    ("title", "hint", "expected"),
    [
        pytest.param(RUSSIAN_TITLE, None, "ru", id="russian"),
        pytest.param("Border clash reported near Batken", None, "en", id="english"),
        pytest.param("Ош", "ru", "ru", id="short-uses-hint"),
        pytest.param("OK", None, "und", id="short-no-hint"),
        pytest.param("Border clash reported near Batken", "ru", "en", id="clear-text-beats-hint"),
        pytest.param("42", "ky", "und", id="unknown-hint-ignored"),
    ],
)
def test_language(title: str, hint: str | None, expected: str) -> None:
    body = rss(f"<item><title>{title}</title><guid>x</guid></item>").encode()
    assert parse(body, language_hint=hint).entries[0].language == expected


def test_feed_language_is_the_fallback_hint() -> None:
    body = rss("<item><title>42</title><guid>x</guid></item>").replace(
        "<ttl>", "<language>ru-RU</language><ttl>"
    )
    assert parse(body.encode()).entries[0].language == "ru"


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [("45", 2700), ("0", None), ("-5", None), ("soon", None), ("99999999", 7 * 24 * 3600)],
)
def test_feed_ttl_becomes_seconds(ttl: str, expected: int | None) -> None:
    body = good_rss(1).replace(b"<ttl>45</ttl>", f"<ttl>{ttl}</ttl>".encode())
    assert parse(body).feed_ttl_seconds == expected


def test_a_good_feed_is_ok() -> None:
    result = parse(good_rss(3), headers={"content-type": "application/rss+xml"})
    assert result.status == "ok"
    assert [e.entry_id for e in result.entries] == ["urn:item:1", "urn:item:2", "urn:item:3"]
    assert result.entries[0].url == "https://news.example.org/a/1"
    assert result.entries[0].summary == "Paragraph 1 about the border."
    assert result.feed_ttl_seconds == 45 * 60


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet search</title>'
            b"<link>https://news.example.org/</link><description>x</description></channel></rss>",
            id="rss-no-items",
        ),
        pytest.param(
            b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet</title>'
            b"<id>urn:x</id><updated>2024-01-01T00:00:00Z</updated></feed>",
            id="atom-no-entries",
        ),
        pytest.param(
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet search</title>'
            b"<link>https://news.example.org/</link><description>x</description>"
            b"<item/><item/><item></item></channel></rss>",
            id="rss-only-empty-items",
        ),
        pytest.param(
            b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet</title>'
            b"<id>urn:x</id><updated>2024-01-01T00:00:00Z</updated><entry/><entry></entry></feed>",
            id="atom-only-empty-entries",
        ),
    ],
)
def test_a_valid_feed_with_no_items_is_a_warning_not_a_failure(body: bytes) -> None:
    """Both carry nothing now; neither is hostile (issue 11: treated the same way)."""
    result = parse(body)
    assert (result.status, result.error_kind, result.entries) == ("warning", "empty_feed", ())


def test_a_malformed_document_of_empty_items_is_still_a_failure() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item/><item>'
    result = parse(body)
    assert (result.status, result.error_kind) == ("error", "no_entries"), result.message
