"""HTML built so that escaping is the default: every `str` is text, only `Html` is markup.

A page is assembled with `el("p", "text", el("a", "link", href=url))`: plain strings
(feed titles, evidence, error messages) are always escaped, attribute values too, and
only what this module built (an `Html`) passes unescaped. There is no template language
in which one forgotten filter lets a feed's `<script>` through; this is the same rule as
Jinja2's autoescape, without the dependency (see docs/decisions.md).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import urlsplit

# Elements with no content and no end tag.
_VOID = frozenset({"br", "hr", "img", "meta", "link", "col"})


class Html(str):
    """Markup that is safe to insert as it is (built here, never from feed text)."""

    __slots__ = ()


def text(value: object) -> Html:
    """`value` as escaped text."""
    return Html(html.escape("" if value is None else str(value), quote=True))


def _render(child: object) -> str:
    if child is None or child is False:
        return ""
    if isinstance(child, Html):
        return str(child)
    if isinstance(child, str | int | float):
        return text(child)
    if isinstance(child, Iterable):
        return "".join(_render(item) for item in child)
    return text(child)


def join(*children: object) -> Html:
    """Children side by side (each escaped unless it is `Html`)."""
    return Html("".join(_render(child) for child in children))


def el(tag: str, *children: object, **attrs: object) -> Html:
    """`<tag attrs>children</tag>`. Attribute names come from code (`class_` is `class`,
    `aria_label` is `aria-label`); values are escaped; None or False leave it out."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        key = name.rstrip("_").replace("_", "-")
        parts.append(key if value is True else f'{key}="{html.escape(str(value), quote=True)}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        return Html(opening)
    return Html(opening + "".join(_render(child) for child in children) + f"</{tag}>")


def safe_href(url: str | None) -> str | None:
    """A link from a feed, kept only when it is a plain http(s) URL (else None: no link)."""
    from monitor.deliver.content import safe_url

    found = safe_url(url)
    if found is None:
        return None
    return found if urlsplit(found).scheme.lower() in ("http", "https") else None
