"""A generated corpus of malformed and hostile feeds (reliability.md tests 1-10).

Everything is built in code from a fixed seed, so the corpus is the same on every run and
needs no binary fixtures. `hostile_corpus(xxe_url)` returns the cases; `xxe_url` points
at a local server that must never be contacted.
"""

from __future__ import annotations

import codecs
import json
import random
from dataclasses import dataclass, field

FUZZ_SEED = 20240914
FUZZ_FLIPS = 100
FUZZ_SPLICES = 30


@dataclass(frozen=True)
class Case:
    name: str
    klass: str  # "entity", "encoding", "truncation", "structure", "fuzz"
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    expect_kind: str | None = None  # the error_kind the result must have, if fixed
    keep_titles: tuple[str, ...] = ()  # titles that must survive in the entries


def item(n: int, *, title: str | None = None, extra: str = "") -> str:
    title = title if title is not None else f"Item {n}: border talks continue in Batken"
    return (
        f"<item><title>{title}</title><link>https://news.example.org/a/{n}</link>"
        f"<guid>urn:item:{n}</guid><pubDate>Fri, 13 Sep 2024 0{n % 10}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;Paragraph {n} about the border.&lt;/p&gt;</description>"
        f"{extra}</item>"
    )


def rss(items: str, *, declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (
        f'{declaration}\n<rss version="2.0"><channel><title>Example</title>'
        f"<link>https://news.example.org/</link><ttl>45</ttl>{items}</channel></rss>"
    )


def good_rss(count: int = 5) -> bytes:
    return rss("".join(item(n) for n in range(1, count + 1))).encode()


def good_atom(count: int = 4) -> bytes:
    entries = "".join(
        f"<entry><title>Entry {n} on the frontier</title><id>tag:example.org,2024:{n}</id>"
        f'<link href="https://news.example.org/e/{n}"/><updated>2024-09-13T0{n}:00:00Z</updated>'
        f'<summary type="html">&lt;b&gt;Summary {n}&lt;/b&gt;</summary></entry>'
        for n in range(1, count + 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Atom example</title><id>tag:example.org,2024:feed</id>{entries}</feed>"
    ).encode()


RUSSIAN_TITLE = "Перестрелка на кыргызско-таджикской границе"


# ---------------------------------------------------------------------------
# Entity attacks


def billion_laughs(levels: int = 9) -> str:
    lines = ['<!ENTITY lol0 "lol">']
    for level in range(1, levels + 1):
        lines.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    subset = "\n".join(lines)
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{subset}\n]>\n'
        f'<rss version="2.0"><channel><item><title>&lol{levels};</title></item></channel></rss>'
    )


def quadratic_blowup(entity_bytes: int = 100_000, references: int = 5_000) -> bytes:
    """One 100 KB entity referenced 5,000 times; the newline layout is what feedparser's
    fallback parser accepts as a "safe" entity, so it expands it (reliability.md §2)."""
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n'
        f'<!ENTITY a "{"A" * entity_bytes}">\n]>\n'
        f'<rss version="2.0"><channel><item><title>{"&a;" * references}</title>'
        "<link>https://news.example.org/q</link></item></channel></rss>"
    ).encode()


def xxe(system_id: str, *, parameter: bool = False) -> bytes:
    if parameter:
        subset = f'<!ENTITY % ext SYSTEM "{system_id}">\n%ext;'
        use = "safe title"
    else:
        subset = f'<!ENTITY ext SYSTEM "{system_id}">'
        use = "&ext;"
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n{subset}\n]>\n'
        f'<rss version="2.0"><channel><item><title>{use}</title>'
        "<link>https://news.example.org/x</link></item></channel></rss>"
    ).encode()


def external_dtd(system_id: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{system_id}">\n'
        + rss(item(1), declaration="")
    ).encode()


def entity_cases(xxe_url: str) -> list[Case]:
    laughs = billion_laughs()
    utf7 = codecs.encode(laughs.replace('<?xml version="1.0"?>', ""), "utf-7")
    return [
        Case("billion-laughs", "entity", laughs.encode(), expect_kind="entity_declaration"),
        Case(
            "billion-laughs-utf16le-bom",
            "entity",
            codecs.BOM_UTF16_LE
            + laughs.replace("1.0", '1.0" encoding="utf-16').encode("utf-16-le"),
            expect_kind="entity_declaration",
        ),
        Case(
            "billion-laughs-utf16be",
            "entity",
            laughs.encode("utf-16-be"),
            expect_kind="entity_declaration",
        ),
        Case(
            "billion-laughs-lowercase",
            "entity",
            laughs.replace("<!ENTITY", "<!entity").encode(),
            expect_kind="entity_declaration",
        ),
        Case(
            "billion-laughs-utf7-header",
            "entity",
            utf7,
            headers={"content-type": "application/xml; charset=utf-7"},
            expect_kind="entity_declaration",
        ),
        Case(
            "billion-laughs-ebcdic",
            "entity",
            laughs.encode("cp037"),
            expect_kind="entity_declaration",
        ),
        Case("quadratic-blowup", "entity", quadratic_blowup(), expect_kind="entity_declaration"),
        Case("xxe-file", "entity", xxe("file:///etc/hostname"), expect_kind="entity_declaration"),
        Case("xxe-http", "entity", xxe(xxe_url), expect_kind="entity_declaration"),
        Case(
            "xxe-parameter-http",
            "entity",
            xxe(xxe_url, parameter=True),
            expect_kind="entity_declaration",
        ),
        Case("external-dtd-http", "entity", external_dtd(xxe_url), keep_titles=("Item 1",)),
        Case("external-dtd-file", "entity", external_dtd("file:///etc/hostname")),
    ]


# ---------------------------------------------------------------------------
# Encodings


DECLARED = [None, "utf-8", "\x80tf-8", "bogus-8", "windows-1251", "koi8-r", "iso-8859-1", "utf-16"]
ACTUAL = ["utf-8", "windows-1251", "koi8-r", "utf-16-le-bom"]


def _encode(text: str, actual: str) -> bytes:
    if actual == "utf-16-le-bom":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    return text.encode(actual)


def encoding_cases() -> list[Case]:
    cases: list[Case] = []
    body_items = item(1, title=RUSSIAN_TITLE) + item(2)
    for declared in DECLARED:
        for actual in ACTUAL:
            declaration = (
                '<?xml version="1.0"?>'
                if declared is None
                else f'<?xml version="1.0" encoding="{declared}"?>'
            )
            if declared == "\x80tf-8":  # the raw 0x80 byte, as in reliability.md
                text = rss(body_items, declaration=declaration.replace("\x80tf-8", "PLACEHOLDER"))
                placeholder = _encode("PLACEHOLDER", actual).removeprefix(codecs.BOM_UTF16_LE)
                data = _encode(text, actual).replace(placeholder, b"\x80tf-8")
            else:
                data = _encode(rss(body_items, declaration=declaration), actual)
            label = (declared or "none").encode("ascii", "backslashreplace").decode()
            cases.append(Case(f"declared-{label}-actual-{actual}", "encoding", data))
    base = good_rss(3)
    cases += [
        Case("utf-8-bom", "encoding", codecs.BOM_UTF8 + base, keep_titles=("Item 1",)),
        Case("utf-16-be-bom", "encoding", codecs.BOM_UTF16_BE + base.decode().encode("utf-16-be")),
        Case("utf-32-le-bom", "encoding", codecs.BOM_UTF32_LE + base.decode().encode("utf-32-le")),
        Case("utf-16-no-bom", "encoding", base.decode().encode("utf-16-le")),
        Case("nul-bytes", "encoding", base.replace(b"Item", b"It\x00em")),
        Case("nul-everywhere", "encoding", b"\x00".join(bytes([c]) for c in base[:4000])),
        Case("invalid-utf8", "encoding", base.replace(b"border", b"bor\xff\xfeder")),
        Case("overlong-utf8", "encoding", base.replace(b"Item", b"\xc0\xafItem")),
        Case("utf8-surrogates", "encoding", base.replace(b"Item", b"\xed\xa0\x80Item")),
        Case(
            "header-latin1-body-utf8",
            "encoding",
            rss(item(1, title=RUSSIAN_TITLE)).encode(),
            headers={"content-type": "text/xml; charset=iso-8859-1"},
        ),
        Case(
            "header-charset-garbage",
            "encoding",
            base,
            headers={"content-type": "text/xml; charset=\x80\x81"},
        ),
        Case(
            "header-charset-utf7",
            "encoding",
            base,
            headers={"content-type": "text/xml; charset=utf-7"},
        ),
        Case("ebcdic", "encoding", rss(item(1), declaration="").encode("cp037")),
        Case(
            "gb18030-declared",
            "encoding",
            rss(
                item(1, title="边境"), declaration='<?xml version="1.0" encoding="gb18030"?>'
            ).encode("gb18030"),
        ),
        Case(
            "control-chars",
            "encoding",
            base.replace(b"Item 2", b"Item\x01\x02\x1b[31m 2"),
        ),
    ]
    return cases


# ---------------------------------------------------------------------------
# Truncation and unclosed tags


def truncation_cases() -> list[Case]:
    body = good_rss(5)
    cases: list[Case] = []
    ends = [body.find(b"</item>", 0)]
    while True:
        nxt = body.find(b"</item>", ends[-1] + 1)
        if nxt < 0:
            break
        ends.append(nxt)
    item_ends = [e + len(b"</item>") for e in ends]
    for cut in range(40, len(body), max(1, len(body) // 40)):
        complete = sum(1 for e in item_ends if e <= cut)
        keep = tuple(f"Item {n}:" for n in range(1, complete + 1))
        cases.append(Case(f"truncated-at-{cut}", "truncation", body[:cut], keep_titles=keep))
    text = good_rss(3).decode()
    cases += [
        Case(
            "unclosed-item",
            "truncation",
            text.replace("</item>", "", 1).encode(),
        ),
        Case(
            "unclosed-channel-rss",
            "truncation",
            text.replace("</channel></rss>", "").encode(),
            keep_titles=("Item 1:", "Item 2:", "Item 3:"),
        ),
        Case(
            "unclosed-title",
            "truncation",
            text.replace("</title>", "", 2).encode(),
        ),
        Case(
            "stray-ampersand",
            "truncation",
            (
                text[: -len("</channel></rss>")]
                + item(4, title="Bad & broken <b>")
                + "</channel></rss>"
            ).encode(),
            keep_titles=("Item 1:", "Item 2:", "Item 3:"),
        ),
        Case(
            "garbage-after-good-items",
            "truncation",
            text.replace("</channel>", "<item><title>x<<<>>>&&&</channel>").encode(),
            keep_titles=("Item 1:", "Item 2:", "Item 3:"),
        ),
        Case(
            "unterminated-cdata",
            "truncation",
            text.replace("<description>", "<description><![CDATA[never closed", 1).encode(),
        ),
        Case("mismatched-tags", "truncation", text.replace("</link>", "</guid>").encode()),
    ]
    return cases


# ---------------------------------------------------------------------------
# Wrong documents and hostile structure


CHALLENGE_PAGE = b"""<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="35"><script>window._cf_chl_opt={cvId:'3'};</script>
</head><body><div class="main-wrapper"><h1>Checking if the site connection is secure</h1>
<noscript>Enable JavaScript and cookies to continue</noscript></div></body></html>"""


def structure_cases(xxe_url: str) -> list[Case]:
    deep = b"<a>" * 50_000 + b"</a>" * 50_000
    many_items = rss(
        "".join(f"<item><title>t{n}</title><guid>g{n}</guid></item>" for n in range(3000))
    )
    long_title = "Long " * 200_000
    script = (
        "<item><title>&lt;script&gt;alert(1)&lt;/script&gt;Headline</title>"
        "<link>javascript:alert(document.cookie)</link><guid>s1</guid>"
        '<description>&lt;img src=x onerror="alert(1)"&gt;&lt;script&gt;steal()&lt;/script&gt;'
        "Body text&lt;a href=&quot;javascript:alert(2)&quot;&gt;click&lt;/a&gt;</description>"
        "</item><item><title>Data link</title><link>data:text/html;base64,PHNjcmlwdD4=</link>"
        "<guid>s2</guid></item>"
    )
    return [
        Case("empty", "structure", b"", expect_kind="empty_body"),
        Case("whitespace", "structure", b" \n\t\r\n ", expect_kind="empty_body"),
        Case(
            "html-challenge",
            "structure",
            CHALLENGE_PAGE,
            {"content-type": "text/html"},
            expect_kind="no_entries",
        ),
        Case("html-challenge-xml-type", "structure", CHALLENGE_PAGE, expect_kind="no_entries"),
        Case(
            "json",
            "structure",
            json.dumps({"items": [{"title": "x"}]}).encode(),
            {"content-type": "application/json"},
            expect_kind="no_entries",
        ),
        Case("plain-text", "structure", b"Service Unavailable", expect_kind="no_entries"),
        Case(
            "png",
            "structure",
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            expect_kind="no_entries",
        ),
        Case("path-body", "structure", b"/etc/hostname", expect_kind="no_entries"),
        Case("file-url-body", "structure", b"file:///etc/hostname", expect_kind="no_entries"),
        Case("http-url-body", "structure", xxe_url.encode(), expect_kind="no_entries"),
        Case(
            "deep-nesting-50k",
            "structure",
            rss(deep.decode() + item(1)).encode(),
            keep_titles=("Item 1:",),
        ),
        Case(
            "deep-nesting-unclosed",
            "structure",
            rss(item(1) + "<div>" * 50_000).encode(),
            keep_titles=("Item 1:",),
        ),
        Case("many-items", "structure", many_items.encode()),
        Case("huge-title", "structure", rss(item(1, title=long_title)).encode()),
        Case(
            "huge-summary",
            "structure",
            rss(item(1, extra=f"<content:encoded>{'word ' * 400_000}</content:encoded>")).encode(),
        ),
        Case("script-injection", "structure", rss(script).encode()),
        Case(
            "crlf-title",
            "structure",
            rss(item(1, title="Breaking&#13;&#10;Bcc: victim@example.org&#10;X")).encode(),
        ),
        Case(
            "bidi-title",
            "structure",
            rss(item(1, title="abc\u202egnp.exe\u202c \u2066x\u2069")).encode(),
        ),
        Case("no-items", "structure", rss("").encode(), expect_kind="empty_feed"),
        Case(
            "empty-items",
            "structure",
            rss("<item></item><item> </item>").encode(),
            expect_kind="empty_feed",  # well-formed, carries nothing: like no items (issue 11)
        ),
        Case("duplicate-guids", "structure", rss(item(1) + item(1) + item(1)).encode()),
        Case(
            "no-guid-no-link",
            "structure",
            rss("<item><title>Only a title here</title></item>").encode(),
        ),
        Case(
            "future-date",
            "structure",
            rss(item(1).replace("Fri, 13 Sep 2024", "Fri, 13 Sep 2099")).encode(),
        ),
        Case(
            "invalid-dates",
            "structure",
            rss(item(1).replace("Fri, 13 Sep 2024 01:00:00 GMT", "Feb 30 99999 25:61")).encode(),
        ),
        Case("rss-091", "structure", good_rss(2).replace(b'version="2.0"', b'version="0.91"')),
        Case(
            "rdf-rss-10",
            "structure",
            (
                b'<?xml version="1.0"?><rdf:RDF '
                b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
                b'xmlns="http://purl.org/rss/1.0/"><channel rdf:about="x"><title>t</title>'
                b'</channel><item rdf:about="https://news.example.org/r/1"><title>RDF item</title>'
                b"<link>https://news.example.org/r/1</link></item></rdf:RDF>"
            ),
            keep_titles=("RDF item",),
        ),
        Case("atom-10", "structure", good_atom(), keep_titles=("Entry 1",)),
        Case(
            "atom-03",
            "structure",
            good_atom().replace(
                b'xmlns="http://www.w3.org/2005/Atom"',
                b'version="0.3" xmlns="http://purl.org/atom/ns#"',
            ),
        ),
        Case(
            "comment-only",
            "structure",
            b"<?xml version='1.0'?><!-- nothing -->",
            expect_kind="no_entries",
        ),
        Case("two-roots", "structure", good_rss(1) + good_rss(1)),
        Case(
            "processing-instructions",
            "structure",
            b'<?xml-stylesheet href="http://127.0.0.1/x.xsl"?>' + good_rss(1),
        ),
        Case(
            "relative-links",
            "structure",
            rss("<item><title>Rel</title><link>/a/rel</link></item>").encode(),
            {"content-location": "https://news.example.org/feed.xml"},
        ),
        Case(
            "huge-attribute",
            "structure",
            rss(item(1, extra=f'<x a="{"y" * 2_000_000}"/>')).encode(),
        ),
        Case(
            "many-attributes",
            "structure",
            rss(item(1, extra="<x " + " ".join(f"a{n}='1'" for n in range(4_000)) + "/>")).encode(),
        ),
    ]


# ---------------------------------------------------------------------------
# Fuzz


def fuzz_cases(seed: int = FUZZ_SEED) -> list[Case]:
    rng = random.Random(seed)
    seeds = [good_rss(5), good_atom(4), rss(item(1, title=RUSSIAN_TITLE)).encode("windows-1251")]
    cases: list[Case] = []
    for n in range(FUZZ_FLIPS):
        data = bytearray(seeds[n % len(seeds)])
        for _ in range(rng.randint(1, 32)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(Case(f"flip-{n:03d}", "fuzz", bytes(data)))
    for n in range(FUZZ_SPLICES):
        data = bytearray(seeds[n % len(seeds)])
        for _ in range(rng.randint(1, 6)):
            start = rng.randrange(len(data))
            length = rng.randint(1, 64)
            if rng.random() < 0.5:
                del data[start : start + length]
            else:
                data[start:start] = bytes(rng.randrange(256) for _ in range(length))
        cases.append(Case(f"splice-{n:03d}", "fuzz", bytes(data)))
    for n in range(10):
        cases.append(
            Case(
                f"random-{n}",
                "fuzz",
                bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096))),
            )
        )
    return cases


def hostile_corpus(xxe_url: str) -> list[Case]:
    """All cases: entity attacks, encodings, truncation, structure and fuzz."""
    return (
        entity_cases(xxe_url)
        + encoding_cases()
        + truncation_cases()
        + structure_cases(xxe_url)
        + fuzz_cases()
    )
