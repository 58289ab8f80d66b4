"""The alert email as a message: plain text + HTML bodies, checked addresses, the stable
Message-ID, and the Subject folded and encoded here.

Hostile text is escaped before it reaches HTML. RFC 2047 encoded-word openers (`=?`) are broken
up in header text, because the stdlib's header parser decodes them and, before Python 3.11.10,
writes a decoded CR/LF back out raw (cpython gh-121650, CVE-2024-6923); and every rendered
message is re-parsed and its header set verified before it is returned. The Subject is folded
and encoded here rather than by the stdlib, whose folder on 3.11 loses spaces around
encoded-words and can glue them into `?==?` (cpython gh-144156).
"""

from __future__ import annotations

import base64
import email
import email.utils
import hashlib
import html
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy

from monitor.deliver.addresses import parse_address
from monitor.deliver.content import (
    AlertContent,
    AlertEmail,
    alert_content,
    clean_line,
    fmt_time,
    header_text,
)
from monitor.errors import DeliveryError
from monitor.models import utc

log = logging.getLogger(__name__)


# The headers a rendered message has, and no other (checked after rendering).
MESSAGE_HEADERS = frozenset(
    {
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
)


_LEVEL_COLOURS = {
    "low": "#2e7d32",
    "elevated": "#b26a00",
    "high": "#d84315",
    "critical": "#b71c1c",
}


# Where the policy knows it (Python 3.11.10+), also have the generator refuse bad headers.
_POLICY = (
    default_policy.clone(verify_generated_headers=True)
    if hasattr(default_policy, "verify_generated_headers")
    else default_policy
)


def _render_text(content: AlertContent) -> str:
    out = [content.headline]
    if content.reason:
        out.append(f"Why: {content.reason}")
    out.append(f"As of {content.as_of}.")
    if content.trend is not None:
        trend = content.trend
        out += [
            "",
            f"Trend (index 0–100): {trend.spark}  now {trend.last:.0f}",
            f"  from {fmt_time(trend.start)} to {fmt_time(trend.end)}",
        ]
    if content.feed:
        out.append("")
        out += [f"{label}: {value}" for label, value in content.feed]
        if content.feed_url:
            out.append(f"URL: {content.feed_url}")
    if content.stories:
        out += ["", "Top stories behind this score:"]
        for number, story in enumerate(content.stories, 1):
            flag = "[CRITICAL] " if story.critical else ""
            out.append(f"{number}. {flag}{story.title}")
            out.append(f"   {story.meta}")
            out += [f"   “{sentence}”" for sentence in story.evidence]
            if story.url:
                out.append(f"   {story.url}")
    if content.lines:
        out += ["", "Items:"]
        out += [f"- {line}" for line in content.lines]
    if content.report_link:
        out += ["", f"In the report: {content.report_link}"]
    if content.command:
        out += ["", f"More: {content.command}"]
    out += ["", "-- ", content.footer]
    return "\n".join(out) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _link(url: str, label: str) -> str:
    return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(label)}</a>'


def _render_html(content: AlertContent) -> str:
    colour = _LEVEL_COLOURS.get((content.level or "").lower(), "#455a64")
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{_e(content.subject)}</title></head>",
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;color:#222;'
        'max-width:720px">',
        f'<p style="font-size:19px;font-weight:bold;border-left:6px solid {colour};'
        f'padding-left:10px">{_e(content.headline)}</p>',
    ]
    if content.reason:
        out.append(f"<p><b>Why:</b> {_e(content.reason)}</p>")
    out.append(f'<p style="color:#555">As of {_e(content.as_of)}.</p>')
    if content.trend is not None:
        trend = content.trend
        out.append(
            '<p><span style="font-family:monospace;font-size:22px;letter-spacing:1px;'
            f'color:{colour}">{_e(trend.spark)}</span> now <b>{trend.last:.0f}</b><br>'
            f'<span style="color:#555;font-size:12px">index 0–100, from '
            f"{_e(fmt_time(trend.start))} to {_e(fmt_time(trend.end))}</span></p>"
        )
    if content.feed:
        out.append('<table style="border-collapse:collapse">')
        for label, value in content.feed:
            out.append(f"<tr><td><b>{_e(label)}</b></td><td>{_e(value)}</td></tr>")
        if content.feed_url:
            out.append(f"<tr><td><b>URL</b></td><td>{_link(content.feed_url, content.feed_url)}")
            out.append("</td></tr>")
        out.append("</table>")
    if content.stories:
        out.append(
            '<p style="font-weight:bold;margin-bottom:4px">Top stories behind this score</p>'
        )
        out.append("<ol>")
        for story in content.stories:
            flag = '<b style="color:#b71c1c">CRITICAL</b> ' if story.critical else ""
            title = _link(story.url, story.title) if story.url else _e(story.title)
            out.append(
                f'<li style="margin-bottom:10px">{flag}{title}<br>'
                f'<span style="color:#555;font-size:13px">{_e(story.meta)}</span>'
            )
            for sentence in story.evidence:
                out.append(f'<br><span style="font-style:italic">“{_e(sentence)}”</span>')
            out.append("</li>")
        out.append("</ol>")
    if content.lines:
        out.append("<ul>")
        out += [f"<li>{_e(line)}</li>" for line in content.lines]
        out.append("</ul>")
    if content.report_link:
        out.append(f"<p>{_link(content.report_link, 'See this alert in the report')}</p>")
    if content.command:
        out.append(
            '<p>More: <code style="background:#f2f2f2;padding:2px 4px">'
            f"{_e(content.command)}</code></p>"
        )
    out.append(f'<p style="color:#777;font-size:12px">{_e(content.footer)}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# A plain ASCII addr-spec; display names are handled separately. No "=?" (see module doc).


def checked_address(text: str, role: str) -> Address:
    """Parse "Name <a@b>" or "a@b" into an Address, or raise ValueError naming the problem.

    The same check as configuration loading (`monitor.deliver.addresses`), so an address that
    passed `check-config` renders."""
    address = parse_address(text, f"{role} address")
    return Address(display_name=header_text(address.display_name, 80), addr_spec=address.addr_spec)


def _checked_recipients(recipients: Sequence[str]) -> list[Address]:
    """The recipients that can be addressed, each once. A bad one (say, a theatre's address
    recorded before it was checked) is left out with a warning rather than failing the
    message to the others; ValueError only when none is left."""
    addresses: list[Address] = []
    seen: set[str] = set()
    problems: list[str] = []
    for recipient in recipients:
        try:
            address = checked_address(recipient, "recipient")
        except ValueError as error:
            problems.append(str(error))
            continue
        if address.addr_spec.lower() not in seen:
            seen.add(address.addr_spec.lower())
            addresses.append(address)
    if problems and not addresses:
        raise ValueError("; ".join(problems))
    for problem in problems:
        log.warning("recipient left out of the message: %s", problem)
    return addresses


def _list_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    return label[:60] or "alerts"


def _clean_domain(domain: str) -> str:
    """`domain` reduced to lower-case LDH labels joined by dots ("localhost" if nothing is left)."""
    labels = (re.sub(r"[^a-z0-9-]", "", label).strip("-") for label in domain.lower().split("."))
    return ".".join(label for label in labels if label)[:200] or "localhost"


def message_id_for(dedup_key: str, *, domain: str) -> str:
    """A Message-ID that depends only on the alert's dedup key, e.g. `<alert.3f2a…@example.org>`.

    A retry of the same alert (after a timeout or a crash after the server's 250) carries the
    same Message-ID, so mail clients and archives can recognise the duplicate.
    """
    digest = hashlib.sha256(dedup_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"<alert.{digest}@{_clean_domain(domain)}>"


_MESSAGE_ID = re.compile(r"<[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+>")


def _list_id(alert: AlertEmail, sender: Address) -> str:
    decision = alert.decision
    if decision.theatre_id:
        topic = decision.theatre_id
    elif decision.kind in ("feed_down", "feed_recovered"):
        topic = "feeds"
    else:
        topic = decision.kind
    return f"<{_list_label(topic)}.monitor.{_clean_domain(sender.domain)}>"


def render_email(
    alert: AlertEmail,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    now: datetime,
) -> EmailMessage:
    """Render `alert` as a multipart/alternative (plain text + HTML) message.

    `sender` and each recipient are "user@domain" or "Name <user@domain>" (no recipients: no
    To header, for the outbox to add one when they are configured); `message_id` is
    normally `message_id_for(decision.dedup_key, domain=...)`; `now` gives the Date header.
    Raises `DeliveryError(retryable=False)` when the message cannot be built (bad address,
    bad Message-ID, a header that would not survive): trying again would not help.
    """
    try:
        return _render(alert, sender=sender, recipients=recipients, message_id=message_id, now=now)
    except DeliveryError:
        raise
    except Exception as error:  # any rendering bug must fail this alert, not the outbox
        raise DeliveryError(
            f"cannot render alert {clean_line(alert.decision.dedup_key, 120)!r}: "
            f"{clean_line(error, 300)}",
            retryable=False,
        ) from error


def _render(
    alert: AlertEmail,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    now: datetime,
) -> EmailMessage:
    from_address = checked_address(sender, "sender")
    to_addresses = _checked_recipients(recipients)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"Message-ID {message_id!r} is not of the form <id@domain>")

    content = alert_content(alert)
    message = EmailMessage(policy=_POLICY)
    message["From"] = from_address
    if to_addresses:  # none yet: the outbox adds To when recipients are configured
        message["To"] = tuple(to_addresses)
    # Folded here, not by the stdlib: see _folded_subject.
    message.set_raw("Subject", _folded_subject(content.subject))
    message["Date"] = email.utils.format_datetime(utc(now))
    message["Message-ID"] = message_id
    # RFC 3834: this is automatic mail; well-behaved responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["List-Id"] = _list_id(alert, from_address)  # RFC 2919: lets people filter by theatre
    message["X-Monitor-Kind"] = _list_label(alert.decision.kind)
    # Quoted-printable keeps every line short and 7-bit, whatever the relay supports.
    message.set_content(_render_text(content), cte="quoted-printable")
    message.add_alternative(_render_html(content), subtype="html", cte="quoted-printable")
    _verify_headers(message)
    return message


_PLAIN_LINE_CHARS = 68  # "Subject: " + 68 < 78 (RFC 5322 2.1.1)


_ENCODED_CHUNK_BYTES = 39  # base64 of 39 bytes: 52 chars, 64 with "=?utf-8?b?…?="


def _folded_subject(text: str) -> str:
    """`text` (one clean line) folded for the wire, for `Message.set_raw`.

    The stdlib folder on Python 3.11 can drop or add spaces next to encoded-words, and glue two
    of them together ("?==?"), which some providers reject (cpython gh-144156, gh-124452). So:
    ASCII text with short words is folded at its spaces (unfolding restores it exactly);
    anything else becomes a run of base64 encoded-words, each holding whole characters, with
    only folding whitespace between them, which decoders ignore (RFC 2047 section 6.2).
    """
    words = text.split(" ")
    if text.isascii() and all(len(word) <= _PLAIN_LINE_CHARS - 8 for word in words):
        lines = [words[0]]
        for word in words[1:]:
            if len(lines[-1]) + 1 + len(word) > _PLAIN_LINE_CHARS:
                lines.append(word)
            else:
                lines[-1] += " " + word
        return "\n ".join(lines)
    chunks = [""]
    for char in text:
        if len((chunks[-1] + char).encode("utf-8")) > _ENCODED_CHUNK_BYTES:
            chunks.append("")
        chunks[-1] += char
    return "\n ".join(
        "=?utf-8?b?" + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + "?="
        for chunk in chunks
    )


def _verify_headers(message: EmailMessage) -> None:
    """Re-parse the serialised message: exactly our headers, each one line once decoded."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    names = [name.lower() for name in parsed]
    expected = MESSAGE_HEADERS if "to" in names else MESSAGE_HEADERS - {"to"}
    if set(names) != expected or len(names) != len(expected):
        raise ValueError(f"rendered headers are not the expected set: {sorted(names)}")
    for name in names:
        value = str(parsed[name])
        if "\r" in value or "\n" in value:
            raise ValueError(f"rendered header {name} contains a line break")
