"""OPML 2.0 subscription lists: reading one (untrusted input) and writing one.

OPML is how feed readers move their lists (http://opml.org/spec2.opml). Reading uses the
standard library's expat parser directly, with the defences defusedxml would add:
a document type declaration (and so any entity, internal or external) is refused
before anything is expanded, external entities are never fetched, and the file is read
only up to MAX_OPML_BYTES. Each outline with an `xmlUrl` becomes a `FeedRequest`; what
the feed list accepts is decided by `feedlist` (URL scheme, duplicates, addresses).

Must not: touch the network or the feed list file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree
from xml.parsers import expat

from monitor.errors import ConfigError
from monitor.models import Feed
from monitor.ops.feedlist import FeedRequest

MAX_OPML_BYTES = 5 * 1024 * 1024  # a 10,000-feed list is about 2 MB
MAX_OUTLINES = 20_000
MAX_DEPTH = 64


class OpmlError(ConfigError):
    """An OPML file that is refused as a whole (hostile, malformed, too big). Exit 2."""


@dataclass(frozen=True)
class OpmlOutline:
    request: FeedRequest
    line: int  # in the file, for messages


def _language(value: str | None) -> str | None:
    """`en`, `en-US`, `ru_RU` -> `en`/`ru`; anything else: no language hint."""
    if not value:
        return None
    primary = re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]
    return primary if primary in ("en", "ru") else None


def read_opml(source: Path | BinaryIO, *, name: str | None = None) -> list[OpmlOutline]:
    """The subscriptions of an OPML file, or OpmlError with one line saying why not."""
    label = name or str(source)
    if isinstance(source, Path):
        try:
            with source.open("rb") as handle:
                data = handle.read(MAX_OPML_BYTES + 1)
        except OSError as exc:
            raise OpmlError(f"{label}: cannot read: {exc.strerror or exc}") from None
    else:
        data = source.read(MAX_OPML_BYTES + 1)
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(
            f"{label}: larger than {MAX_OPML_BYTES // (1024 * 1024)} MiB; "
            "not read (an OPML list of feeds is far smaller)"
        )
    return parse_opml(data, label=label)


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_opml(data: bytes, *, label: str = "OPML") -> list[OpmlOutline]:
    parser = expat.ParserCreate()
    outlines: list[OpmlOutline] = []
    stack: list[str] = []
    seen_root = False

    def refuse_doctype(*_: object) -> None:
        raise _Refused(
            "declares a document type (<!DOCTYPE>); refused: OPML needs none, and "
            "entities in it are how XML bombs and file reads are smuggled in"
        )

    def refuse_entity(*_: object) -> None:
        raise _Refused("declares an entity; refused")

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal seen_root
        if not stack:
            if tag != "opml":
                raise _Refused(f"not OPML (the root element is <{tag[:40]}>, not <opml>)")
            seen_root = True
        stack.append(tag)
        if len(stack) > MAX_DEPTH:
            raise _Refused(f"outlines nested deeper than {MAX_DEPTH} levels")
        if tag != "outline" or "body" not in stack:
            return
        url = attributes.get("xmlUrl") or attributes.get("xmlurl")
        if url is None:
            return  # a category (folder) outline
        if len(outlines) >= MAX_OUTLINES:
            raise _Refused(f"more than {MAX_OUTLINES} feeds")
        title = attributes.get("title") or attributes.get("text") or None
        outlines.append(
            OpmlOutline(
                FeedRequest(url=url, name=title, language=_language(attributes.get("language"))),
                line=parser.CurrentLineNumber,
            )
        )

    def end(_tag: str) -> None:
        stack.pop()

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity  # type: ignore[assignment]
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise OpmlError(f"{label}: line {parser.CurrentLineNumber}: {exc.message}") from None
    except expat.ExpatError as exc:
        problem = expat.ErrorString(exc.code)
        raise OpmlError(f"{label}: line {exc.lineno}: not well-formed XML ({problem})") from None
    except RecursionError:  # not expected from expat's handlers; a bound all the same
        raise OpmlError(f"{label}: nested too deeply") from None
    if not seen_root:
        raise OpmlError(f"{label}: empty, not OPML")
    return outlines


def write_opml(feeds: Iterable[Feed], *, title: str, now: datetime) -> str:
    """An OPML 2.0 document listing `feeds` (type rss, with title, text and language)."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = ElementTree.SubElement(root, "body")
    for feed in feeds:
        attributes = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.language:
            attributes["language"] = feed.language
        ElementTree.SubElement(body, "outline", attributes)
    ElementTree.indent(root)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + ElementTree.tostring(root, encoding="unicode")
        + "\n"
    )
