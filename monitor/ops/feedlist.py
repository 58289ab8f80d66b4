"""Editing the feed list of `indicators.yaml` in place: add, remove, import many.

Owns checking a requested feed the way loading the configuration checks it (the URL
guard of `monitor.fetch.netguard`, the languages, intervals and ids `config` accepts),
plus what only an edit can see: a URL already watched, an address literal on a private
network. It then rewrites the file as text, touching only the lines of the entries it
adds or removes, so every comment, blank line and layout choice elsewhere stays as it
was, byte for byte. A round-trip YAML library would re-flow other parts of the file
(measured in docs/decisions.md). Safety net: the edited text is loaded again by
`config.parse_indicators_text` and written only when its feeds are exactly the old ones
plus or minus the edit; the write is atomic (a temporary file renamed over the old one).

Must not: open the database or the network (host names are resolved, and checked, by the
fetcher at connect time).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from monitor.config import parse_feed_list, parse_indicators_text
from monitor.errors import ConfigError
from monitor.fetch.netguard import describe_address, is_address_allowed, parse_ip_literal
from monitor.fetch.netguard import validate_feed_url as check_url_form
from monitor.models import Feed

LANGUAGES = ("en", "ru")  # what config accepts for a feed's language
FEED_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_NAME_CHARS = 200
DEFAULT_DASH_INDENT = 2  # a new `feeds:` list is written like the shipped file's


class FeedListError(ConfigError):
    """An edit of the feed list is refused; the message says why. Exit 2."""


class DuplicateFeedError(ValueError):
    """The requested URL is one an existing feed already has."""

    def __init__(self, message: str, feed: Feed) -> None:
        super().__init__(message)
        self.feed = feed


@dataclass(frozen=True)
class FeedRequest:
    """A feed an operator asks to add (`feeds add` options, or one OPML outline)."""

    url: str
    name: str | None = None
    feed_id: str | None = None
    language: str | None = None
    interval_minutes: float | None = None


@dataclass(frozen=True)
class Refusal:
    """A request that was not added, and why (one line)."""

    request: FeedRequest
    reason: str


@dataclass(frozen=True)
class Edit:
    """The outcome of an edit: the new file text and what changed."""

    text: str
    added: tuple[Feed, ...] = ()
    removed: tuple[Feed, ...] = ()
    refused: tuple[Refusal, ...] = ()


# ---------------------------------------------------------------------------
# Checking a request


def canonical_url(url: str) -> str:
    """The form two URLs are compared in: scheme and host lower-cased, the default port,
    the fragment and a trailing slash dropped (`HTTPS://X.org:443/feed/` = `https://x.org/feed`)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    if ":" in (parts.hostname or "") and not host.startswith("["):
        host = f"[{host}]" if port is None else host
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def check_address(url: str, allow_private_networks: Sequence[str]) -> None:
    """Refuse a URL whose host is an address (or `localhost`) outside the allowed ones.

    The same rule the fetcher applies at connect time, applied early where no lookup is
    needed; a DNS name is checked when it is resolved, on every poll and redirect.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        candidates = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    else:
        address = parse_ip_literal(host)
        candidates = [] if address is None else [address]
    for address in candidates:
        if not is_address_allowed(address, allow_private_networks):
            raise ValueError(
                f"{host} is {describe_address(address)}: feeds on private or loopback "
                "addresses are refused unless http.allow_private_networks (or "
                "MONITOR_ALLOW_PRIVATE_NETWORKS) lists their network"
            )


def clean_name(name: str) -> str:
    """A feed title fit for the file and for email headers: no control characters, one
    line, at most MAX_NAME_CHARS."""
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in name)
    collapsed = " ".join(kept.split())
    return collapsed[:MAX_NAME_CHARS].rstrip()


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:40].strip("-")


def propose_id(request: FeedRequest, url: str, taken: set[str]) -> str:
    """A new id: the name's slug, else the host's (`www.` dropped), made unique with -2, -3…"""
    host = (urlsplit(url).hostname or "feed").lower().removeprefix("www.")
    base = _slug(request.name or "") or _slug(host) or "feed"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def build_feed(
    request: FeedRequest,
    existing: Sequence[Feed],
    *,
    allow_private_networks: Sequence[str] = (),
) -> Feed:
    """The Feed that adding `request` to `existing` would load as; ValueError says why not."""
    try:
        url = check_url_form(request.url)
    except ValueError as exc:
        raise ValueError(f"{request.url.strip()[:200]!r}: {exc}") from None
    check_address(url, allow_private_networks)
    wanted = canonical_url(url)
    for feed in existing:
        if canonical_url(feed.url) == wanted:
            raise DuplicateFeedError(f"{url} is already watched, as feed {feed.id!r}", feed)
    taken = {feed.id for feed in existing}
    if request.feed_id is not None:
        if not FEED_ID_PATTERN.fullmatch(request.feed_id):
            raise ValueError(
                f"id {request.feed_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if request.feed_id in taken:
            raise ValueError(
                f"id {request.feed_id!r} is already used by {_feed_url(existing, request.feed_id)}"
            )
        feed_id = request.feed_id
    else:
        feed_id = propose_id(request, url, taken)
    name = clean_name(request.name) if request.name is not None else ""
    if request.name is not None and not name:
        raise ValueError("the name is empty")
    language = request.language
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"language {language!r}: expected one of {', '.join(LANGUAGES)}")
    interval = request.interval_minutes
    if interval is not None and not (1 <= interval <= 7 * 24 * 60):
        raise ValueError(f"interval {interval:g}: expected minutes from 1 to {7 * 24 * 60}")
    return Feed(
        id=feed_id,
        url=url,
        name=name or feed_id,
        interval_seconds=None if interval is None else int(interval * 60),
        language=language,
    )


def _feed_url(feeds: Sequence[Feed], feed_id: str) -> str:
    return next(feed.url for feed in feeds if feed.id == feed_id)


def find_feed(feeds: Sequence[Feed], key: str) -> Feed:
    """The feed `key` names: its id, its URL, or its name when only one feed has it."""
    text = key.strip()
    for feed in feeds:
        if feed.id == text:
            return feed
    try:
        wanted = canonical_url(text) if "://" in text else None
    except ValueError:
        wanted = None
    for feed in feeds:
        if wanted is not None and canonical_url(feed.url) == wanted:
            return feed
    named = [feed for feed in feeds if feed.name.casefold() == text.casefold()]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(feed.id for feed in named)
        raise FeedListError(f"{len(named)} feeds are named {text!r} ({ids}): give the id")
    known = ", ".join(feed.id for feed in feeds[:30]) + (", …" if len(feeds) > 30 else "")
    raise FeedListError(f"no feed {text!r} (give an id, a URL or a name; ids: {known or 'none'})")


# ---------------------------------------------------------------------------
# Where the feeds are written in the file


@dataclass(frozen=True)
class _Layout:
    """Where the `feeds:` list sits in the text (0-based lines)."""

    key_line: int | None  # the `feeds:` line; None: no such key
    value_span: tuple[int, int, int] | None  # (line, start col, end col) of an empty value
    items: tuple[tuple[int, int], ...]  # (first line, last line) of each entry
    dash_column: int
    key_column: int


def _content_end(node: yaml.Node) -> yaml.Mark:
    """Where the text of a node ends (a block mapping's own end mark runs on over the
    comments and blank lines that follow it)."""
    if isinstance(node, yaml.MappingNode) and node.value and node.flow_style is not True:
        return _content_end(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and node.flow_style is not True:
        return _content_end(node.value[-1])
    return node.end_mark


def _lines(text: str) -> list[str]:
    """The lines as YAML counts them here: split after each LF only, ends kept (not
    `str.splitlines`, which also splits at form feeds and other separators)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


_OTHER_LINE_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


def _locate(text: str, source: str) -> _Layout:
    if _OTHER_LINE_BREAKS.search(text):
        raise FeedListError(
            f"{source}: has line breaks other than LF and CRLF; edit this file by hand"
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:  # parse_indicators_text reported it already, normally
        raise FeedListError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise FeedListError(f"{source}: expected a mapping at the top")
    lines = [line.rstrip("\r\n") for line in _lines(text)]
    for key, value in root.value:
        if not (isinstance(key, yaml.ScalarNode) and key.value == "feeds"):
            continue
        if key.start_mark.column != 0:
            raise FeedListError(f"{source}: the feeds key is indented; edit this file by hand")
        if isinstance(value, yaml.ScalarNode) or (
            isinstance(value, yaml.SequenceNode) and not value.value and value.flow_style
        ):
            if (
                value.start_mark.line != key.start_mark.line
                or value.end_mark.line != key.start_mark.line
            ):
                if isinstance(value, yaml.ScalarNode) and value.value == "":
                    # `feeds:` with nothing after it: the (empty) value has no text
                    return _Layout(
                        key.start_mark.line, None, (), DEFAULT_DASH_INDENT, DEFAULT_DASH_INDENT + 2
                    )
                raise FeedListError(f"{source}: the empty feeds list spans lines; edit it by hand")
            span: tuple[int, int, int] | None = (
                value.start_mark.line,
                value.start_mark.column,
                value.end_mark.column,
            )
            if value.start_mark.column == value.end_mark.column:
                span = None  # `feeds:` then a comment: nothing to replace
            return _Layout(
                key.start_mark.line, span, (), DEFAULT_DASH_INDENT, DEFAULT_DASH_INDENT + 2
            )
        if not isinstance(value, yaml.SequenceNode) or value.flow_style:
            raise FeedListError(
                f"{source}: feeds is not a block list (one '- id: …' entry per feed); "
                "edit this file by hand"
            )
        items: list[tuple[int, int]] = []
        dash_column = key_column = -1
        for item in value.value:
            line = lines[item.start_mark.line]
            before = line[: item.start_mark.column]
            stripped = before.rstrip()
            if (
                not isinstance(item, yaml.MappingNode)
                or not stripped.endswith("-")
                or stripped[:-1].strip()
            ):
                raise FeedListError(
                    f"{source}: line {item.start_mark.line + 1}: a feed entry this command "
                    "cannot edit safely (write '- id: …' with the first key on the dash's line)"
                )
            column = len(stripped) - 1
            if dash_column not in (-1, column) or key_column not in (-1, item.start_mark.column):
                raise FeedListError(
                    f"{source}: the feed entries are indented unevenly; edit by hand"
                )
            dash_column, key_column = column, item.start_mark.column
            end = _content_end(item)
            last = end.line if end.column > 0 else end.line - 1
            # comment lines indented under the entry belong to it
            while last + 1 < len(lines):
                following = lines[last + 1]
                indent = len(following) - len(following.lstrip())
                if following.strip().startswith("#") and indent > dash_column:
                    last += 1
                else:
                    break
            items.append((item.start_mark.line, last))
        return _Layout(key.start_mark.line, None, tuple(items), dash_column, key_column)
    return _Layout(None, None, (), DEFAULT_DASH_INDENT, DEFAULT_DASH_INDENT + 2)


def yaml_scalar(value: str | float) -> str:
    """`value` written so that YAML reads it back as exactly this value."""
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    if "\n" not in value and value == value.strip():
        try:
            plain = yaml.safe_load(f"k: {value}\n")
        except yaml.YAMLError:
            plain = None
        if plain == {"k": value}:
            return value
    import json

    return json.dumps(value, ensure_ascii=False)  # a JSON string is a double-quoted YAML one


def _entry_lines(feed: Feed, request_interval: float | None, layout: _Layout) -> list[str]:
    pad = " " * layout.key_column
    fields: list[tuple[str, str | float]] = [
        ("id", feed.id),
        ("name", feed.name),
        ("url", feed.url),
    ]
    if feed.language is not None:
        fields.append(("language", feed.language))
    if request_interval is not None:
        fields.append(("interval_minutes", request_interval))
    lines = []
    for index, (key, value) in enumerate(fields):
        lead = " " * layout.dash_column + "-" + " " * (layout.key_column - layout.dash_column - 1)
        lines.append(f"{lead if index == 0 else pad}{key}: {yaml_scalar(value)}")
    return lines


# ---------------------------------------------------------------------------
# Edits (pure: text in, text out)


def load_feeds(text: str, source: str) -> tuple[Feed, ...]:
    """The feeds the file holds, after the whole file is validated as config loads it: an
    edit of a file that does not load is refused with the loading error."""
    return parse_indicators_text(text, source=source).feeds


def add_feeds(
    text: str,
    requests: Iterable[FeedRequest],
    *,
    source: str,
    allow_private_networks: Sequence[str] = (),
) -> Edit:
    """Add every acceptable request after the last entry; refuse the others with a reason."""
    original = load_feeds(text, source)
    existing = list(original)
    layout = _locate(text, source)
    added: list[Feed] = []
    refused: list[Refusal] = []
    new_lines: list[str] = []
    for request in requests:
        try:
            feed = build_feed(request, existing, allow_private_networks=allow_private_networks)
        except DuplicateFeedError as exc:
            reason = str(exc)
            if exc.feed in added:
                reason = (
                    f"{request.url.strip()} repeats an earlier entry (added as {exc.feed.id!r})"
                )
            refused.append(Refusal(request, reason))
            continue
        except ValueError as exc:
            refused.append(Refusal(request, str(exc)))
            continue
        existing.append(feed)
        added.append(feed)
        new_lines += _entry_lines(feed, request.interval_minutes, layout)
    if not added:
        return Edit(text=text, refused=tuple(refused))
    lines = _lines(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = [line + newline for line in new_lines]
    if layout.items:
        at = layout.items[-1][1] + 1
    elif layout.key_line is not None:
        if layout.value_span is not None:
            line_no, start, end = layout.value_span
            old = lines[line_no]
            body = old.rstrip("\r\n")
            kept = (body[:start].rstrip() + body[end:]).rstrip()
            lines[line_no] = kept + old[len(body) :]
        at = layout.key_line + 1
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += newline
        block = ["feeds:" + newline, *block]
        at = len(lines)
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += newline
    new_text = "".join(lines[:at] + block + lines[at:])
    _verify(new_text, source, [*original, *added])
    return Edit(text=new_text, added=tuple(added), refused=tuple(refused))


def remove_feed(text: str, key: str, *, source: str) -> Edit:
    """Remove the entry `key` names (id, URL or unique name): exactly its lines."""
    feeds = load_feeds(text, source)
    feed = find_feed(feeds, key)
    index = feeds.index(feed)
    layout = _locate(text, source)
    if len(layout.items) != len(feeds):
        raise FeedListError(f"{source}: cannot find the entries of the feed list; edit by hand")
    first, last = layout.items[index]
    lines = _lines(text)
    if len(feeds) == 1:  # the last one: an empty list must stay a list
        newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
        assert layout.key_line is not None
        key_line = lines[layout.key_line]
        body = key_line.rstrip("\r\n")
        head, _, comment = body.partition("#")
        lines[layout.key_line] = (
            head.rstrip() + " []" + (f"  #{comment}" if comment else "") + newline
        )
    new_text = "".join(lines[:first] + lines[last + 1 :])
    _verify(new_text, source, [f for f in feeds if f.id != feed.id])
    return Edit(text=new_text, removed=(feed,))


def _verify(new_text: str, source: str, expected: list[Feed]) -> None:
    """The edited text must load, and hold exactly the expected feeds. (The rest of the
    file was validated before the edit, and the edit touched only the feed list.)"""
    try:
        loaded = parse_feed_list(new_text, source=source)
    except ConfigError as exc:
        raise FeedListError(
            f"{source}: the edit would not load ({exc}); nothing was written"
        ) from None
    if list(loaded) != expected:
        raise FeedListError(
            f"{source}: the edit would not read back as intended; nothing was written "
            "(edit this file by hand)"
        )


# ---------------------------------------------------------------------------
# The file


def read_text_exact(path: Path) -> str:
    """The file's text with its line endings as they are (CRLF stays CRLF)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FeedListError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedListError(f"{path}: cannot read: {exc}") from None


def watch_list_target(path: Path) -> Path:
    """The file to rewrite: a symlink's target, so the link stays a link."""
    return path.resolve()


def write_text_atomically(path: Path, new_text: str, *, expected_old: str) -> None:
    """Replace `path` with `new_text` through a temporary file in the same folder, keeping
    its mode (and owner, when run as root). Refused when the file changed since it was
    read, so two edits never lose one another."""
    target = watch_list_target(path)
    current = read_text_exact(target)
    if current != expected_old:
        raise FeedListError(f"{path}: changed while being edited; nothing was written, try again")
    try:
        status = target.stat()
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise FeedListError(f"{target.parent}: cannot write here: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(new_text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, status.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(temporary, status.st_uid, status.st_gid)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise FeedListError(f"{target}: cannot write: {exc.strerror or exc}") from None
    try:
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        pass  # the rename is done; a folder that cannot be synced is still consistent
