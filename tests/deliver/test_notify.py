"""Alert emails: rendering (wording, headers, hostile content) and delivery against a real
aiosmtpd server on 127.0.0.1 (accepting, faulty, TLS), retry backoff, and the Maildir copy.

Reliability guide tests 8, 9, 24, 25, 26 (same Message-ID on a retry) and 30.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html as html_module
import logging
import mailbox
import math
import random
import ssl
import threading
import time
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.deliver import smtp
from monitor.deliver.content import (
    MAX_STORIES,
    SUBJECT_MAX_CHARS,
    AlertEmail,
    FeedNotice,
    StoryLine,
    describe_decision,
    sparkline,
)
from monitor.deliver.email_message import message_id_for, render_email
from monitor.deliver.smtp import (
    DeliveryInterrupted,
    DeliveryStop,
    SmtpSession,
    retry_delay_seconds,
    send_email,
    write_to_maildir,
)
from monitor.errors import DeliveryError
from monitor.lab.mailsink import MailSink, free_port
from monitor.models import AlertDecision, Contribution, ScoredMatch, SmtpSettings
from tests.support.smtp import (
    Certificate,
    FaultyHandler,
    PasswordCheck,
    RawServer,
    SlowQuitHandler,
    StallingHandler,
    faulty,
    has_openssl,
    make_certificate,
)

NOW = datetime(2022, 9, 16, 6, 0, tzinfo=UTC)
SENDER = "Monitor <monitor@localhost>"
RECIPIENTS = ("ops@example.org", "duty@example.org")
THEATRE = "Kyrgyzstan–Tajikistan"
SHORT_TIMEOUT = 0.5  # seconds; the hang and silence tests wait this long, once
BIDI_AND_INVISIBLE = (
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200b\ufeff"
)
EXPECTED_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "list-id",
    "x-monitor-kind",
    "mime-version",
    "content-type",
}


# ---------------------------------------------------------------------------
# Builders


def make_decision(kind: str = "level_up", **overrides: Any) -> AlertDecision:
    values: dict[str, Any] = {
        "dedup_key": f"kg-tj/{kind}/2022-09-16T06:00:00Z",
        "kind": kind,
        "theatre_id": "kg-tj",
        "created_at": NOW,
        "urgent": True,
        "level": "high",
        "previous_level": "elevated",
        "index": 72.4,
        "change_24h": 18.2,
        "reason": "index 72 crossed 55, the entry threshold of level high",
    }
    values.update(overrides)
    return AlertDecision(**values)


def make_story(number: int = 1, **overrides: Any) -> StoryLine:
    values: dict[str, Any] = {
        "title": f"Border guards exchange fire near Vorukh ({number})",
        "outlet": "Eurasianet",
        "published_at": NOW - timedelta(hours=number),
        "url": f"https://eurasianet.org/story-{number}?a=1&b=2",
        "indicator_id": "border_clash",
        "evidence": f"Kyrgyz and Tajik border guards exchanged fire near Vorukh ({number}).",
        "points": 10.0 + number,
        "match_id": 100 + number,
    }
    values.update(overrides)
    return StoryLine(**values)


def make_history(count: int = 28) -> tuple[tuple[datetime, float], ...]:
    return tuple((NOW - timedelta(hours=6 * (count - 1 - i)), 2.0 * i + 10.0) for i in range(count))


def make_alert(kind: str = "level_up", **overrides: Any) -> AlertEmail:
    values: dict[str, Any] = {
        "decision": make_decision(kind),
        "theatre_name": THEATRE,
        "stories": (make_story(1), make_story(2)),
        "history": make_history(),
        "command_hint": "monitor explain kg-tj --at 2022-09-16T06:00Z",
    }
    values.update(overrides)
    return AlertEmail(**values)


def render(alert: AlertEmail, **overrides: Any) -> EmailMessage:
    values: dict[str, Any] = {
        "sender": SENDER,
        "recipients": RECIPIENTS,
        "message_id": message_id_for(alert.decision.dedup_key, domain="localhost"),
        "now": NOW,
    }
    values.update(overrides)
    return render_email(alert, **values)


def smtp_for(port: int, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "timeout_seconds": 5.0,
        "sender": "monitor@localhost",
    }
    values.update(overrides)
    return SmtpSettings(**values)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return cast(EmailMessage, text).get_content(), cast(EmailMessage, html).get_content()


def raw_header_lines(raw: bytes) -> list[bytes]:
    """The header block as it is on the wire, one entry per header (continuations joined)."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    headers: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += line
        else:
            headers.append(line)
    return headers


def has_invisible_or_break(text: str) -> bool:
    """Controls, format characters (bidi, zero-width), surrogates, line/paragraph separators."""
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in text)


def physical_header_lines(raw: bytes, name: bytes) -> list[bytes]:
    """The wire lines of header `name`: its first line and its continuation lines."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n")
    start = next(i for i, line in enumerate(head) if line.lower().startswith(name.lower() + b":"))
    end = start + 1
    while end < len(head) and head[end][:1] in (b" ", b"\t"):
        end += 1
    return head[start:end]


def raw_header_names(raw: bytes) -> list[str]:
    return [line.split(b":", 1)[0].decode("ascii").lower() for line in raw_header_lines(raw)]


class Markup(HTMLParser):
    """Every start tag and attribute of an HTML document, as a browser's tokenizer sees them."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    @property
    def hrefs(self) -> list[str]:
        return [value for name, value in self.attrs if name in ("href", "src")]


SAFE_TAGS = {"html", "head", "meta", "title", "body", "p", "b", "span", "br", "ol", "ul", "li"}
SAFE_TAGS |= {"a", "code", "table", "tr", "td"}


def assert_no_executable_markup(document: str) -> Markup:
    markup = Markup(document)
    assert set(markup.tags) <= SAFE_TAGS, set(markup.tags) - SAFE_TAGS
    assert not [name for name, _ in markup.attrs if name.startswith("on")]
    assert set(name for name, _ in markup.attrs) <= {"href", "rel", "style", "charset"}
    for url in markup.hrefs:
        assert urlsplit(url).scheme in ("http", "https"), url
    for name, value in markup.attrs:
        if name == "style":
            assert "url(" not in value and "expression" not in value, value
    return markup


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    if not has_openssl():
        pytest.skip("the openssl command is needed to make a test certificate")
    return make_certificate(tmp_path_factory.mktemp("tls"))


# ---------------------------------------------------------------------------
# Message-ID


def test_message_id_is_stable_for_a_dedup_key_and_differs_between_keys() -> None:
    first = message_id_for("kg-tj/level_up/high/2022-09-16", domain="example.org")
    again = message_id_for("kg-tj/level_up/high/2022-09-16", domain="example.org")
    other = message_id_for("kg-tj/level_up/high/2022-09-17", domain="example.org")
    assert first == again
    assert first != other
    assert first.startswith("<alert.") and first.endswith("@example.org>")


@pytest.mark.parametrize(
    ("domain", "expected_domain"),
    [
        pytest.param("Example.ORG", "example.org", id="lower-cased"),
        pytest.param("localhost>", "localhost", id="from-a-display-address"),
        pytest.param("evil.example\r\nBcc: x@y", "evil.examplebccxy", id="crlf"),
        pytest.param("", "localhost", id="empty"),
    ],
)
def test_message_id_domain_is_reduced_to_safe_labels(domain: str, expected_domain: str) -> None:
    assert message_id_for("key", domain=domain).endswith(f"@{expected_domain}>")


# ---------------------------------------------------------------------------
# Wording per kind

FEED = FeedNotice(
    name="Eurasianet",
    url="https://eurasianet.org/rss",
    error="http_503: Service Unavailable",
    failing_since=NOW - timedelta(days=1, hours=2),
)
NO_THEATRE: dict[str, Any] = {"theatre_id": None, "level": None, "index": None, "change_24h": None}

KIND_CASES = [
    pytest.param(
        make_alert("level_up"),
        "[monitor] Kyrgyzstan–Tajikistan risk HIGH 72 (+18 in 24h)",
        "risk rose to HIGH from ELEVATED",
        id="level_up",
    ),
    pytest.param(
        make_alert("surge", decision=make_decision("surge", change_24h=25.0)),
        "[monitor] Kyrgyzstan–Tajikistan risk surging: 72 (+25 in 24h), level HIGH",
        "risk is rising fast",
        id="surge",
    ),
    pytest.param(
        make_alert("critical", decision=make_decision("critical", match_ids=(102,))),
        "[monitor] CRITICAL Kyrgyzstan–Tajikistan: border clash — "
        "Border guards exchange fire near Vorukh (2)",
        "critical warning sign (border clash)",
        id="critical",
    ),
    pytest.param(
        make_alert("resolved", decision=make_decision("resolved", level="low", index=12.0)),
        "[monitor] Resolved: Kyrgyzstan–Tajikistan back to LOW 12 (+18 in 24h)",
        "risk is back to LOW",
        id="resolved",
    ),
    pytest.param(
        make_alert(
            "level_down",
            decision=make_decision("level_down", level="elevated", index=40.0, change_24h=-12.0),
        ),
        "[monitor] Kyrgyzstan–Tajikistan risk down to ELEVATED 40 (-12 in 24h)",
        "risk fell to ELEVATED",
        id="level_down",
    ),
    pytest.param(
        make_alert(
            "feed_down",
            decision=make_decision("feed_down", **NO_THEATRE),
            theatre_name=None,
            stories=(),
            history=(),
            feed=FEED,
        ),
        "[monitor] Feed down: Eurasianet (failing since 15 Sep 2022 04:00 UTC)",
        "http_503: Service Unavailable",
        id="feed_down",
    ),
    pytest.param(
        make_alert(
            "feed_recovered",
            decision=make_decision("feed_recovered", **NO_THEATRE),
            theatre_name=None,
            stories=(),
            history=(),
            feed=replace(FEED, error="", failing_since=None),
        ),
        "[monitor] Feed recovered: Eurasianet",
        "is being fetched again",
        id="feed_recovered",
    ),
    pytest.param(
        make_alert(
            "digest",
            decision=make_decision("digest", **NO_THEATRE),
            theatre_name=None,
            stories=(),
            history=(),
            lines=("kg-tj fell to ELEVATED", "am-az surge"),
        ),
        "[monitor] Daily digest 16 Sep 2022: 2 items",
        "kg-tj fell to ELEVATED",
        id="digest",
    ),
    pytest.param(
        make_alert(
            "test",
            decision=make_decision("test", **NO_THEATRE),
            theatre_name=None,
            stories=(),
            history=(),
        ),
        "[monitor] Test email: delivery works",
        "alert delivery works",
        id="test",
    ),
]


@pytest.mark.parametrize(("alert", "subject", "in_body"), KIND_CASES)
def test_each_kind_has_its_own_one_line_subject(
    alert: AlertEmail, subject: str, in_body: str
) -> None:
    message = render(alert)
    assert str(message["Subject"]) == subject
    assert len(subject) <= SUBJECT_MAX_CHARS
    text, html = parts(message)
    assert in_body in text
    assert in_body in html
    assert str(message["X-Monitor-Kind"]) == alert.decision.kind


def test_subjects_of_the_kinds_all_differ() -> None:
    subjects = {str(render(cast(AlertEmail, case.values[0]))["Subject"]) for case in KIND_CASES}
    assert len(subjects) == len(KIND_CASES)


@pytest.mark.parametrize(
    ("theatre_id", "kind", "list_id"),
    [
        pytest.param("kg-tj", "level_up", "<kg-tj.monitor.localhost>", id="theatre"),
        pytest.param("csto", "surge", "<csto.monitor.localhost>", id="alliance"),
        pytest.param(None, "feed_down", "<feeds.monitor.localhost>", id="feed-notice"),
        pytest.param(None, "digest", "<digest.monitor.localhost>", id="digest"),
    ],
)
def test_list_id_names_the_theatre_or_the_kind(
    theatre_id: str | None, kind: str, list_id: str
) -> None:
    alert = make_alert(kind, decision=make_decision(kind, theatre_id=theatre_id))
    assert str(render(alert)["List-Id"]) == list_id


def test_headers_and_structure_of_a_rendered_alert() -> None:
    message = render(make_alert())
    assert set(raw_header_names(message.as_bytes())) == EXPECTED_HEADERS
    assert parsedate_to_datetime(str(message["Date"])) == NOW
    assert str(message["Auto-Submitted"]) == "auto-generated"
    assert str(message["From"]) == SENDER
    assert [a.addr_spec for a in message["To"].addresses] == list(RECIPIENTS)
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]


def test_body_shows_score_trend_top_stories_and_command() -> None:
    stories = tuple(make_story(n, points=float(n)) for n in range(1, MAX_STORIES + 3))
    text, html = parts(render(make_alert(stories=stories)))
    spark = sparkline([value for _, value in make_history()])
    for part in (text, html):
        assert "index 72/100 (+18 in 24h)" in part
        assert spark in part
        assert "monitor explain kg-tj --at 2022-09-16T06:00Z" in part
        assert "Eurasianet · 16 Sep 2022 00:00 UTC · border clash · +6.0 points" in part
    # The largest contributions, largest first; the two smallest are left out.
    shown = [n for n in range(1, MAX_STORIES + 3) if f"Vorukh ({n})" in text]
    assert shown == list(range(3, MAX_STORIES + 3))
    assert text.index("Vorukh (7)") < text.index("Vorukh (3)")
    assert "https://eurasianet.org/story-7?a=1&b=2" in text
    assert "https://eurasianet.org/story-7?a=1&b=2" in Markup(html).hrefs
    assert "“Kyrgyz and Tajik border guards exchanged fire near Vorukh (7).”" in text


def test_critical_alert_puts_its_critical_story_first_and_marks_it() -> None:
    stories = (make_story(1, points=30.0), make_story(2, points=0.0))
    alert = make_alert("critical", decision=make_decision("critical", match_ids=(102,)))
    text, _ = parts(render(replace(alert, stories=stories)))
    assert text.index("[CRITICAL] Border guards exchange fire near Vorukh (2)") < text.index(
        "Vorukh (1)"
    )
    assert "+0.0 points" not in text  # a critical story without a share says nothing of points


def test_story_line_from_a_scored_match() -> None:
    match = ScoredMatch(
        match_id=7,
        story_id=3,
        article_id=5,
        indicator_id="troop_movement",
        theatre_id="kg-tj",
        weight=8.0,
        confidence=0.9,
        source_weight=1.0,
        sources=2,
        occurred_at=NOW,
        half_life_hours=None,
        title="Convoy moves to the border",
        outlet="24.kg",
        url="https://24.kg/x",
        evidence="A convoy of armour moved toward the border.",
    )
    line = StoryLine.from_scored(match, Contribution(3, 7, "troop_movement", 6.5))
    assert line == StoryLine(
        title="Convoy moves to the border",
        outlet="24.kg",
        published_at=NOW,
        url="https://24.kg/x",
        indicator_id="troop_movement",
        evidence="A convoy of armour moved toward the border.",
        points=6.5,
        match_id=7,
        story_id=3,
    )


def test_digest_line_describes_a_held_decision() -> None:
    decision = make_decision("level_down", level="elevated", index=40.0, change_24h=-12.0)
    line = describe_decision(decision, THEATRE)
    assert line == (
        "16 Sep 2022 06:00 UTC Kyrgyzstan–Tajikistan fell to ELEVATED 40 (-12 in 24h) — "
        "index 72 crossed 55, the entry threshold of level high"
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], "", id="empty"),
        pytest.param([0, 100], "▁█", id="bounds"),
        pytest.param([0, 50, 100], "▁▅█", id="middle"),
        pytest.param([-5, 250], "▁█", id="clamped"),
        pytest.param([math.nan, 100, math.inf], "█", id="non-finite-dropped"),
        pytest.param([0] * 50 + [100] + [0] * 49, "▁" * 14 + "█" + "▁" * 13, id="spike-kept"),
    ],
)
def test_sparkline(values: list[float], expected: str) -> None:
    assert sparkline(values) == expected


# ---------------------------------------------------------------------------
# Render errors are permanent


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"recipients": ["ops@example.org\r\nBcc: x@evil.example"]}, id="crlf-rcpt"),
        pytest.param({"recipients": ["not an address"]}, id="no-at"),
        pytest.param({"sender": "monitor@localhost\nBcc: x@evil.example"}, id="crlf-sender"),
        pytest.param({"message_id": "<a b@localhost>"}, id="message-id-space"),
        pytest.param({"message_id": "alert@localhost"}, id="message-id-no-brackets"),
    ],
)
def test_render_errors_are_permanent(overrides: dict[str, Any]) -> None:
    with pytest.raises(DeliveryError) as caught:
        render(make_alert(), **overrides)
    assert caught.value.retryable is False


def test_render_without_recipients_leaves_to_for_the_outbox() -> None:
    message = render(make_alert(), recipients=())
    assert message["To"] is None
    assert set(raw_header_names(message.as_bytes())) == EXPECTED_HEADERS - {"to"}


# ---------------------------------------------------------------------------
# Hostile text (guide test 8: headers; test 9: HTML)

HOSTILE_HEADER_TEXT = [
    pytest.param("Clash\r\nBcc: victim@evil.example\r\nX-Injected: 1", id="crlf"),
    pytest.param("Clash\nBcc: victim@evil.example", id="lf"),
    pytest.param("Clash\rX-Injected: 1", id="cr"),
    pytest.param("Clash\x00 at\x00 border", id="nul"),
    pytest.param(
        "".join(map(chr, range(0x20))) + "Clash" + "".join(map(chr, range(0x7F, 0xA0))),
        id="c0-c1-controls",
    ),
    pytest.param("Clash near the border " * 500, id="10kB"),
    pytest.param("Clash \u202egnirif\u202c \u2066x\u2069\u200f near", id="rtl-override"),
    pytest.param("Clash\u2028Bcc: victim@evil.example\u2029\x85X-Injected: 1", id="unicode-breaks"),
    pytest.param("Clash =?utf-8?q?=0D=0ABcc:_victim@evil.example?= here", id="encoded-word-qp"),
    pytest.param(
        "=?utf-8?b?"
        + base64.b64encode(b"\r\nBcc: victim@evil.example\r\nX-Injected: 1").decode()
        + "?=",
        id="encoded-word-b64",
    ),
]


def hostile_alert(text: str) -> AlertEmail:
    """A critical alert (its Subject carries a story title) with `text` in every feed field."""
    story = make_story(1, title=text, outlet=text, evidence=text)
    return make_alert(
        "critical",
        decision=make_decision("critical", match_ids=(101,)),
        theatre_name=text,
        stories=(story,),
    )


@pytest.mark.parametrize("via_outbox", [False, True], ids=["direct", "via-outbox-bytes"])
@pytest.mark.parametrize("text", HOSTILE_HEADER_TEXT)
def test_hostile_text_cannot_add_headers_or_lines(
    sink: MailSink, text: str, via_outbox: bool
) -> None:
    message = render(hostile_alert(text))
    if via_outbox:  # what the pipeline does: store as bytes, parse again before sending
        stored = message.as_bytes(policy=email.policy.SMTP)
        message = cast(EmailMessage, email.message_from_bytes(stored, policy=email.policy.default))
    send_email(message, smtp_for(sink.port))

    [received] = sink.wait_for(1)
    assert received.rcpt_tos == RECIPIENTS  # no injected Bcc reached the envelope
    assert sorted(raw_header_names(received.raw)) == sorted(EXPECTED_HEADERS)
    for line in raw_header_lines(received.raw):
        line.decode("ascii")  # non-ASCII text is encoded, never raw on the wire
        assert b"\x00" not in line and b"\r" not in line
    subject = str(received.parsed()["Subject"])
    assert len(subject) <= SUBJECT_MAX_CHARS
    assert subject.startswith("[monitor] CRITICAL ")
    assert not any(char in subject for char in "\r\n\x00\x85\u2028\u2029" + BIDI_AND_INVISIBLE)
    assert not has_invisible_or_break(subject)
    text_part, html_part = parts(received.parsed())
    for part in (text_part, html_part):
        assert not any(char in part for char in "\x00\x85\u2028\u2029" + BIDI_AND_INVISIBLE)
        assert all(len(line) <= 2000 for line in part.splitlines())


def wire_forms(message: EmailMessage) -> list[bytes]:
    """The bytes a recipient gets: sent directly, or stored by the outbox, parsed and resent."""
    stored = message.as_bytes(policy=email.policy.SMTP)
    reparsed = email.message_from_bytes(stored, policy=email.policy.default)
    return [message.as_bytes(), reparsed.as_bytes(policy=email.policy.SMTP)]


@settings(max_examples=60, deadline=None)
@given(title=st.text(max_size=400))
def test_subject_survives_the_wire_exactly(title: str) -> None:
    """The stdlib folder on 3.11 loses or adds spaces around encoded-words (gh-144156);
    the Subject a recipient decodes must equal the one the HTML part shows as its title."""
    message = render(hostile_alert(title))
    _, html_part = parts(message)
    shown = html_module.unescape(html_part.split("<title>", 1)[1].split("</title>", 1)[0])
    for raw in wire_forms(message):
        received = email.message_from_bytes(raw, policy=email.policy.default)
        assert str(received["Subject"]) == shown
        assert len(shown) <= SUBJECT_MAX_CHARS and not has_invisible_or_break(shown)
        subject_lines = physical_header_lines(raw, b"Subject")
        assert all(len(line) <= 78 for line in subject_lines)
        assert b"?==?" not in b"".join(subject_lines)  # glued encoded-words: Yahoo says 554


def test_folded_subject_lines_fit_the_line_limit() -> None:
    title = "Пограничники Кыргызстана и Таджикистана обменялись огнём " * 3 + "x" * 90
    for raw in wire_forms(render(hostile_alert(title))):
        subject_lines = physical_header_lines(raw, b"Subject")
        assert len(subject_lines) > 1  # long enough to be folded
        assert all(len(line) <= 78 for line in subject_lines)


HOSTILE_MARKUP = [
    pytest.param({"title": "<script>alert(1)</script>"}, id="title-script"),
    pytest.param({"title": "<img src=x onerror=alert(1)>"}, id="title-onerror"),
    pytest.param({"evidence": '"><svg onload=alert(1)>'}, id="evidence-attribute-break"),
    pytest.param({"outlet": "</span><script>alert(1)</script>"}, id="outlet-script"),
    pytest.param({"title": "<a href='javascript:alert(1)'>click</a>"}, id="title-js-link"),
    pytest.param({"title": "<style>body{background:url(javascript:x)}</style>"}, id="title-style"),
    pytest.param({"url": "javascript:alert(1)"}, id="url-javascript"),
    pytest.param({"url": "JaVaScRiPt:alert(1)"}, id="url-javascript-case"),
    pytest.param({"url": " javascript:alert(1)"}, id="url-javascript-space"),
    pytest.param({"url": "java\tscript:alert(1)"}, id="url-javascript-tab"),
    pytest.param({"url": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="}, id="data"),
    pytest.param({"url": "vbscript:msgbox(1)"}, id="url-vbscript"),
    pytest.param({"url": "file:///etc/passwd"}, id="url-file"),
    pytest.param({"url": "//evil.example/x"}, id="url-scheme-relative"),
    pytest.param({"url": 'https://example.org/" onmouseover="alert(1)'}, id="url-quote-space"),
    pytest.param({"url": "https:///no-host"}, id="url-no-host"),
]


@pytest.mark.parametrize("fields", HOSTILE_MARKUP)
def test_hostile_markup_is_inert_and_bad_links_are_dropped(
    sink: MailSink, fields: dict[str, str]
) -> None:
    story = make_story(1, **fields)
    alert = make_alert(
        stories=(story,), theatre_name="<b onclick=alert(1)>Kyrgyzstan</b>", command_hint="<script>"
    )
    send_email(render(alert), smtp_for(sink.port))
    text, html = parts(sink.wait_for(1)[0].parsed())

    markup = assert_no_executable_markup(html)
    if "url" in fields:  # every hostile link is dropped, from both parts
        assert markup.hrefs == []
        assert fields["url"] not in text and fields["url"] not in html
    else:
        assert markup.hrefs == [story.url]
    # The text part is plain: the feed's text as written, nothing escaped or interpreted.
    for name in ("title", "outlet", "evidence"):
        if name in fields:
            assert fields[name] in text
    assert "&lt;" not in text and "&quot;" not in text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://eurasianet.org/a?b=1&c=2#d", id="https-query"),
        pytest.param("HTTP://EXAMPLE.ORG/X", id="upper-case-http"),
        pytest.param("https://xn--80ak6aa92e.com/путь", id="idn-and-unicode-path"),
        pytest.param('https://example.org/"onmouseover="alert(1)', id="quote-stays-in-href"),
    ],
)
def test_plain_web_links_are_kept(url: str) -> None:
    text, html = parts(render(make_alert(stories=(make_story(1, url=url),))))
    assert url in text
    assert assert_no_executable_markup(html).hrefs == [url]


def test_hostile_feed_notice_is_cleaned() -> None:
    notice = FeedNotice(
        name="Feed\r\nBcc: x@evil.example <script>",
        url="javascript:alert(1)",
        error="<img src=x onerror=alert(1)>\r\nX-Injected: 1",
        failing_since=NOW,
    )
    alert = make_alert(
        "feed_down",
        decision=make_decision("feed_down", **NO_THEATRE),
        theatre_name=None,
        stories=(),
        feed=notice,
    )
    message = render(alert)
    assert set(raw_header_names(message.as_bytes())) == EXPECTED_HEADERS
    assert str(message["Subject"]).startswith("[monitor] Feed down: Feed Bcc: x@evil.example")
    text, html = parts(message)
    assert assert_no_executable_markup(html).hrefs == []
    assert "javascript:alert(1) (not a web link)" in text
    assert "<img src=x onerror=alert(1)> X-Injected: 1" in text


# ---------------------------------------------------------------------------
# Delivery to a real local SMTP server


def test_delivered_message_arrives_intact(sink: MailSink) -> None:
    message = render(make_alert())
    send_email(message, smtp_for(sink.port))

    [received] = sink.wait_for(1)
    assert received.mail_from == "monitor@localhost"
    assert received.rcpt_tos == RECIPIENTS
    assert received.tls is False
    got = received.parsed()
    assert str(got["Message-ID"]) == message_id_for(make_decision().dedup_key, domain="localhost")
    assert str(got["Subject"]) == "[monitor] Kyrgyzstan–Tajikistan risk HIGH 72 (+18 in 24h)"
    assert str(got["List-Id"]) == "<kg-tj.monitor.localhost>"
    assert str(got["Auto-Submitted"]) == "auto-generated"
    assert sorted(raw_header_names(received.raw)) == sorted(EXPECTED_HEADERS)
    sent_text, sent_html = parts(message)
    got_text, got_html = parts(got)
    assert got_text.replace("\r\n", "\n") == sent_text
    assert got_html.replace("\r\n", "\n") == sent_html
    # the sink kept it where a person can open it
    assert received.eml_path.read_bytes() == received.raw
    assert len(mailbox.Maildir(sink.maildir_path, create=False)) == 1


def test_a_retry_of_the_same_alert_carries_the_same_message_id(sink: MailSink) -> None:
    alert = make_alert()
    send_email(render(alert, now=NOW), smtp_for(sink.port))
    send_email(render(alert, now=NOW + timedelta(minutes=7)), smtp_for(sink.port))
    other = make_alert(decision=make_decision(dedup_key="kg-tj/level_up/other"))
    send_email(render(other), smtp_for(sink.port))

    ids = [str(m["Message-ID"]) for m in sink.messages()] if sink.wait_for(3) else []
    assert ids[0] == ids[1] != ids[2]


def test_partial_recipient_refusal_still_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refuse = {"duty@example.org": "550 5.1.1 No such user"}
    with MailSink(tmp_path, handler_factory=faulty(rcpt_replies=refuse)) as server:
        with caplog.at_level(logging.WARNING, logger="monitor.deliver.smtp"):
            send_email(render(make_alert()), smtp_for(server.port))
        [received] = server.wait_for(1)
    assert received.rcpt_tos == ("ops@example.org",)
    assert "duty@example.org: 550 5.1.1 No such user" in caplog.text


SMTP_FAULTS = [
    pytest.param({"data_reply": "421 4.3.2 Service shutting down"}, True, "421", id="421-at-data"),
    pytest.param({"data_reply": "451 4.3.0 Try again later"}, True, "451", id="451-at-data"),
    pytest.param({"rcpt_reply": "452 4.5.3 Too many recipients"}, True, "452", id="452-at-rcpt"),
    pytest.param({"rcpt_reply": "421 4.3.2 Closing"}, True, "421", id="421-at-rcpt"),
    pytest.param({"mail_reply": "451 4.3.0 Sender check failed"}, True, "451", id="451-at-mail"),
    pytest.param({"mail_reply": "530 5.7.0 Authentication required"}, True, "530", id="530-login"),
    pytest.param({"data_reply": "550 5.7.1 Rejected as spam"}, False, "550", id="550-at-data"),
    pytest.param({"data_reply": "554 5.6.0 Bad content"}, False, "554", id="554-at-data"),
    pytest.param({"rcpt_reply": "550 5.1.1 No such user"}, False, "550", id="recipients-refused"),
    pytest.param({"mail_reply": "553 5.1.8 Bad sender domain"}, False, "553", id="sender-refused"),
    pytest.param(
        {"rcpt_replies": {"ops@example.org": "550 5.1.1 No", "duty@example.org": "450 4.2.1 Busy"}},
        True,
        "450",
        id="refused-one-for-now",
    ),
]


@pytest.mark.parametrize(("faults", "retryable", "code"), SMTP_FAULTS)
def test_smtp_replies_are_classified(
    tmp_path: Path, faults: dict[str, Any], retryable: bool, code: str
) -> None:
    with MailSink(tmp_path, handler_factory=faulty(**faults)) as server:
        with pytest.raises(DeliveryError) as caught:
            send_email(render(make_alert()), smtp_for(server.port))
        assert server.received() == []
    assert caught.value.retryable is retryable
    assert code in str(caught.value)
    assert f"127.0.0.1:{server.port}" in str(caught.value)


def test_server_down_is_retryable() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(DeliveryError) as caught:
        send_email(render(make_alert()), smtp_for(port))
    assert caught.value.retryable is True
    assert f"cannot reach SMTP server 127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize(
    ("greeting", "hang_up", "expected"),
    [
        pytest.param(b"421 4.3.2 Too busy\r\n", False, "421 4.3.2 Too busy", id="421-greeting"),
        pytest.param(b"554 5.3.2 No service\r\n", False, "554 5.3.2 No service", id="554-greeting"),
        pytest.param(None, True, "closed the connection", id="hang-up"),
        pytest.param(None, False, f"did not answer within {SHORT_TIMEOUT:g} s", id="silent"),
    ],
)
def test_connection_setup_failures_are_retryable(
    greeting: bytes | None, hang_up: bool, expected: str
) -> None:
    with RawServer(greeting, hang_up=hang_up) as server, pytest.raises(DeliveryError) as caught:
        send_email(render(make_alert()), smtp_for(server.port, timeout_seconds=SHORT_TIMEOUT))
    assert caught.value.retryable is True  # the server, not this message: the message waits
    assert expected in str(caught.value)


def test_hang_after_data_times_out_at_the_configured_timeout(tmp_path: Path) -> None:
    hang = 10.0
    handler = faulty(hang_after_data_seconds=hang)
    with MailSink(tmp_path, handler_factory=handler) as server:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            send_email(render(make_alert()), smtp_for(server.port, timeout_seconds=SHORT_TIMEOUT))
        waited = time.monotonic() - started
    assert caught.value.retryable is True
    assert str(caught.value) == (
        f"SMTP server 127.0.0.1:{server.port} did not answer within {SHORT_TIMEOUT:g} s "
        "(during send)"
    )
    assert waited < hang  # gave up at its own timeout, not when the server finished


@pytest.mark.parametrize("failures", [1, 3])
def test_delivered_exactly_once_after_temporary_failures(tmp_path: Path, failures: int) -> None:
    """Guide test 24 at the notify level: K x 451, then one delivery; backoff grows."""
    rng = random.Random(24)
    message = render(make_alert())
    delays: list[float] = []
    attempts = 0
    with MailSink(tmp_path, handler_factory=faulty(fail_first=failures)) as server:
        while attempts <= failures:  # a bug that never delivers ends the loop too
            attempts += 1
            try:
                send_email(message, smtp_for(server.port))
                break
            except DeliveryError as error:
                assert error.retryable
                delays.append(retry_delay_seconds(attempts, rng=rng))
        [received] = server.wait_for(1)
    assert attempts == failures + 1
    assert cast(FaultyHandler, server.handler).data_attempts == failures + 1
    assert len(server.received()) == 1
    assert str(received.parsed()["Message-ID"]) == str(message["Message-ID"])
    assert delays == sorted(delays) and len(set(delays)) == len(delays)


def test_connection_lost_after_the_250_is_still_a_delivery() -> None:
    """Once the server said 250 to the message, nothing after it may turn into a failure:
    a retry would send a duplicate."""
    with RawServer(accept_then_drop=True) as server:
        send_email(render(make_alert()), smtp_for(server.port))
    assert server.accepted_messages == 1


# ---------------------------------------------------------------------------
# Ending a delivery from another thread (the daemon's stop path, issue 11)

NEVER = 600.0  # an SMTP timeout no test waits for: only the stop can end the call in time
JOIN = 30.0  # seconds: the bound of every wait for the sending thread


def _send_in_thread(
    message: EmailMessage, smtp: SmtpSettings, **options: Any
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def send() -> None:
        try:
            send_email(message, smtp, **options)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("security", ["none", "tls"], ids=["greeting", "tls-handshake"])
def test_an_interrupt_wakes_a_connection_the_server_never_answers(security: str) -> None:
    stop = DeliveryStop()
    with RawServer(None) as server:  # accepts, then says nothing (no greeting, no ServerHello)
        smtp = smtp_for(server.port, timeout_seconds=NEVER, security=security)
        thread, errors = _send_in_thread(
            render(make_alert()), smtp, stop=stop, ssl_context=ssl.create_default_context()
        )
        assert server.connected.wait(JOIN)
        stop.interrupt()
        thread.join(JOIN)
        assert not thread.is_alive(), "the interrupt did not wake the blocked call"
    [error] = errors
    assert isinstance(error, DeliveryInterrupted) and error.retryable
    assert "interrupted by shutdown" in str(error)


def test_an_interrupt_wakes_a_send_waiting_for_the_reply_to_data(tmp_path: Path) -> None:
    stop = DeliveryStop()
    with MailSink(tmp_path, handler_factory=StallingHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, StallingHandler)
        thread, errors = _send_in_thread(
            render(make_alert()), smtp_for(sink.port, timeout_seconds=NEVER), stop=stop
        )
        assert handler.stalled.wait(JOIN)
        stop.interrupt()
        thread.join(JOIN)
        assert not thread.is_alive(), "the interrupt did not wake the send"
        assert sink.received() == []
    [error] = errors
    assert isinstance(error, DeliveryInterrupted) and "during send" in str(error)


def test_after_stop_or_interrupt_no_connection_is_made(tmp_path: Path) -> None:
    with MailSink(tmp_path) as sink:
        for trip in (DeliveryStop.stop, DeliveryStop.interrupt):
            stop = DeliveryStop()
            trip(stop)
            with pytest.raises(DeliveryInterrupted):
                send_email(render(make_alert()), smtp_for(sink.port), stop=stop)
        assert sink.received() == []


def test_a_stop_cuts_short_a_quit_the_server_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message was accepted (and recorded by the caller); the goodbye must not hold a
    stopping daemon."""
    monkeypatch.setattr(smtp, "QUIT_TIMEOUT_SECONDS", NEVER)
    stop = DeliveryStop()
    with MailSink(tmp_path, handler_factory=SlowQuitHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, SlowQuitHandler)
        try:
            thread, errors = _send_in_thread(
                render(make_alert()), smtp_for(sink.port, timeout_seconds=NEVER), stop=stop
            )
            assert handler.quit_received.wait(JOIN)
            stop.stop()
            thread.join(JOIN)
            assert not thread.is_alive(), "the stop did not cut the QUIT short"
        finally:
            handler.release()
        assert errors == [], "a QUIT cut short is not a failure"
        assert len(sink.received()) == 1


def test_a_session_sends_several_messages_and_says_quit_once(tmp_path: Path) -> None:
    with MailSink(tmp_path, handler_factory=SlowQuitHandler) as sink:
        handler = sink.handler
        assert isinstance(handler, SlowQuitHandler)
        handler.release()  # answer QUIT at once
        first, second = render(make_alert()), render(make_alert(kind="surge"))
        with SmtpSession(smtp_for(sink.port)) as session:
            session.send(first)
            assert handler.quits == 0
            session.send(second)
        received = sink.wait_for(2)
    assert handler.quits == 1
    assert [str(m.parsed()["Message-ID"]) for m in received] == [
        str(first["Message-ID"]),
        str(second["Message-ID"]),
    ]


def test_invalid_recipient_in_message_is_permanent_without_connecting() -> None:
    message = render(make_alert())
    del message["To"]
    message["To"] = "not-an-address"
    with pytest.raises(DeliveryError) as caught:
        send_email(message, smtp_for(free_port()))  # nothing listens: a connect would be retryable
    assert caught.value.retryable is False
    assert "not-an-address" in str(caught.value)


def test_message_without_recipients_is_permanent() -> None:
    with pytest.raises(DeliveryError) as caught:
        send_email(render(make_alert(), recipients=()), smtp_for(free_port()))
    assert caught.value.retryable is False


def test_password_is_not_sent_in_plain_text_to_a_remote_host() -> None:
    settings = SmtpSettings(
        host="192.0.2.25", port=25, security="none", username="u", password="hunter2-secret"
    )
    with pytest.raises(DeliveryError) as caught:
        send_email(render(make_alert()), settings)
    assert "unencrypted" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)


# ---------------------------------------------------------------------------
# TLS (a throwaway certificate made with the openssl command)


def tls_sink_options(certificate: Certificate, security: str) -> dict[str, Any]:
    """MailSink options for a relay that offers STARTTLS (and requires it) or speaks TLS."""
    if security == "starttls":
        return {"tls_context": certificate.server_context(), "require_starttls": True}
    return {"ssl_context": certificate.server_context()}


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_delivery_over_tls(tmp_path: Path, certificate: Certificate, security: str) -> None:
    with MailSink(tmp_path, **tls_sink_options(certificate, security)) as server:
        settings = smtp_for(server.port, security=security)
        send_email(render(make_alert()), settings, ssl_context=certificate.client_context())
        [received] = server.wait_for(1)
    assert received.tls is True
    assert received.rcpt_tos == RECIPIENTS


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_relay_signed_by_a_private_ca_is_trusted_through_ca_file(
    tmp_path: Path, certificate: Certificate, security: str
) -> None:
    """No test-only context here: the settings' `ca_file` alone makes the relay trusted,
    and without it the same relay is refused (system CAs do not know it)."""
    with MailSink(tmp_path, **tls_sink_options(certificate, security)) as server:
        system_cas = smtp_for(server.port, security=security)
        with pytest.raises(DeliveryError) as caught:
            send_email(render(make_alert()), system_cas)
        assert caught.value.retryable is True
        assert "not trusted" in str(caught.value)
        trusted = replace(system_cas, ca_file=str(certificate.cert_file))
        send_email(render(make_alert()), trusted)
        [received] = server.wait_for(1)
    assert received.tls is True
    assert received.rcpt_tos == RECIPIENTS


def test_login_over_starttls(
    tmp_path: Path, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    password = "hunter2-secret"
    options: dict[str, Any] = {
        "tls_context": certificate.server_context(),
        "authenticator": PasswordCheck("alerts", password),
        "auth_required": True,
    }
    with MailSink(tmp_path, **options) as server, caplog.at_level(logging.DEBUG):
        good = smtp_for(server.port, security="starttls", username="alerts", password=password)
        send_email(render(make_alert()), good, ssl_context=certificate.client_context())
        server.wait_for(1)
        bad = replace(good, password="wrong-" + password)
        with pytest.raises(DeliveryError) as caught:
            send_email(render(make_alert()), bad, ssl_context=certificate.client_context())
    assert caught.value.retryable is True  # the account, not this message: it waits for a fix
    assert "535" in str(caught.value) and "during login" in str(caught.value)
    assert password not in str(caught.value)
    assert password not in caplog.text
    assert len(server.received()) == 1


def test_starttls_required_but_not_offered_never_falls_back_to_plain_text(sink: MailSink) -> None:
    with pytest.raises(DeliveryError) as caught:
        send_email(render(make_alert()), smtp_for(sink.port, security="starttls"))
    assert caught.value.retryable is True
    assert "does not offer STARTTLS" in str(caught.value)
    assert sink.received() == []


def test_untrusted_certificate_is_refused(tmp_path: Path, certificate: Certificate) -> None:
    with MailSink(tmp_path, ssl_context=certificate.server_context()) as server:
        with pytest.raises(DeliveryError) as caught:  # system CAs do not know our certificate
            send_email(render(make_alert()), smtp_for(server.port, security="tls"))
        assert server.received() == []
    assert caught.value.retryable is True
    assert "certificate" in str(caught.value)


def test_server_requiring_starttls_refuses_plain_text_retryably(
    tmp_path: Path, certificate: Certificate
) -> None:
    options: dict[str, Any] = {
        "tls_context": certificate.server_context(),
        "require_starttls": True,
    }
    with MailSink(tmp_path, **options) as server, pytest.raises(DeliveryError) as caught:
        send_email(render(make_alert()), smtp_for(server.port, security="none"))
    assert caught.value.retryable is True
    assert "530" in str(caught.value)


# ---------------------------------------------------------------------------
# Retry backoff


def test_retry_delay_grows_then_stays_capped() -> None:
    base, cap = 60.0, 3600.0
    for seed in range(20):
        rng = random.Random(seed)
        delays = [retry_delay_seconds(n, base=base, cap=cap, rng=rng) for n in range(1, 16)]
        for attempts, delay in enumerate(delays, 1):
            ceiling = min(cap, base * 2 ** (attempts - 1))
            assert 0.8 * ceiling <= delay <= ceiling
        uncapped = [d for n, d in enumerate(delays, 1) if base * 2 ** (n - 1) < cap]
        assert uncapped == sorted(uncapped) and len(uncapped) == 6
        assert max(delays) <= cap


def test_retry_delay_has_jitter() -> None:
    delays = {retry_delay_seconds(3, rng=random.Random(seed)) for seed in range(10)}
    assert len(delays) == 10


@pytest.mark.parametrize("attempts", [-3, 0, 1])
def test_retry_delay_for_no_failures_yet_is_about_the_base(attempts: int) -> None:
    assert 48.0 <= retry_delay_seconds(attempts, rng=random.Random(1)) <= 60.0


def test_retry_delay_for_very_many_attempts_is_capped_without_overflow() -> None:
    assert 0.8 * 6 * 3600 <= retry_delay_seconds(10_000, rng=random.Random(1)) <= 6 * 3600


# ---------------------------------------------------------------------------
# Maildir and the sink


def test_write_to_maildir(tmp_path: Path) -> None:
    first = render(make_alert())
    second = render(make_alert("surge", decision=make_decision("surge")))
    paths = [write_to_maildir(m, tmp_path / "Mail") for m in (first, second)]

    assert [p.parent for p in paths] == [tmp_path / "Mail" / "new"] * 2
    assert all(p.is_file() for p in paths)
    box = mailbox.Maildir(tmp_path / "Mail", create=False)
    parsed = [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for key in box.iterkeys()
    ]
    stored = {str(m["Message-ID"]): str(m["Subject"]) for m in parsed}
    assert stored == {str(m["Message-ID"]): str(m["Subject"]) for m in (first, second)}


def test_write_to_unwritable_maildir_is_a_retryable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DeliveryError) as caught:
        write_to_maildir(render(make_alert()), blocker / "Mail")
    assert caught.value.retryable is True
    assert str(blocker / "Mail") in str(caught.value)


def test_sink_wait_is_bounded_and_numbering_continues(tmp_path: Path) -> None:
    with MailSink(tmp_path) as server:
        send_email(render(make_alert()), smtp_for(server.port))
        server.wait_for(1)
        with pytest.raises(TimeoutError, match="received 1 of 2 messages"):
            server.wait_for(2, timeout=0.05)
    with MailSink(tmp_path) as again:
        send_email(render(make_alert()), smtp_for(again.port))
        [received] = again.wait_for(1)
    assert received.eml_path.name.startswith("0002-")
    assert sorted(p.name[:4] for p in again.eml_dir.glob("*.eml")) == ["0001", "0002"]
    assert len(mailbox.Maildir(again.maildir_path, create=False)) == 2
