"""`monitor feeds import/export`: OPML in and out; a hostile or broken file is refused
whole with one line, and the watch list is left as it was."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.ops.opml import MAX_OPML_BYTES, parse_opml
from tests.ops.support import REPO, monitor, one_error_line
from tests.support.http import Sentinel

SHIPPED = (REPO / "indicators.yaml").read_text(encoding="utf-8")


@pytest.fixture
def watch_list(tmp_path: Path) -> Path:
    path = tmp_path / "indicators.yaml"
    path.write_text(SHIPPED, encoding="utf-8")
    return path


def opml(body: str, *, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}'
        f'<opml version="2.0"><head><title>reader</title></head><body>\n{body}\n</body></opml>\n'
    ).encode()


def run_import(watch_list: Path, document: bytes | Path, *extra: str):  # type: ignore[no-untyped-def]
    if isinstance(document, bytes):
        path = watch_list.parent / "list.opml"
        path.write_bytes(document)
    else:
        path = document
    return monitor("--indicators", str(watch_list), "feeds", "import", str(path), *extra)


def test_import_adds_the_good_outlines_and_says_why_it_skips_the_others(
    watch_list: Path,
) -> None:
    document = opml(
        """
  <outline text="Central Asia">
    <outline type="rss" text="Steppe Wire" xmlUrl="https://steppe.example/rss" language="en-US"/>
    <outline type="rss" text="Steppe again" xmlUrl="https://STEPPE.example/rss/"/>
    <outline type="rss" text="Already here" xmlUrl="https://eurasianet.org/rss.xml"/>
    <outline type="rss" text="Script" xmlUrl="javascript:alert(document.cookie)"/>
    <outline type="rss" text="Data" xmlUrl="data:text/xml,&lt;rss/&gt;"/>
    <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
    <outline type="rss" text="Intranet" xmlUrl="http://192.168.1.10/rss"/>
    <outline type="rss" text="Новости Оша" xmlUrl="https://osh.example/rss" language="ru"/>
  </outline>
  <outline type="link" text="a web page, not a feed" url="https://example.org/"/>"""
    )
    before = watch_list.read_text(encoding="utf-8")
    ran = run_import(watch_list, document)
    assert ran.code == 0, ran.err
    skipped = ran.err.strip().splitlines()
    assert skipped == [
        "skipped (line 6): https://STEPPE.example/rss/ repeats an earlier entry (added as 'steppe-wire')",
        "skipped (line 7): https://eurasianet.org/rss.xml is already watched, as feed 'eurasianet'",
        "skipped (line 8): 'javascript:alert(document.cookie)': scheme 'javascript' is not allowed (use http or https)",
        "skipped (line 9): 'data:text/xml,<rss/>': scheme 'data' is not allowed (use http or https)",
        "skipped (line 10): 'file:///etc/passwd': scheme 'file' is not allowed (use http or https)",
        "skipped (line 11): 192.168.1.10 is private: feeds on private or loopback addresses are refused unless http.allow_private_networks (or MONITOR_ALLOW_PRIVATE_NETWORKS) lists their network",
    ]
    assert "8 feeds; added 2" in ran.out and "skipped 6" in ran.out
    assert "systemctl reload monitor" in ran.out
    after = watch_list.read_text(encoding="utf-8")
    assert after.startswith(before[: before.index("\n# ----", before.index("feeds:"))])
    feeds = {f.url: f for f in load_config(indicators_path=watch_list, env={}).feeds}
    assert (
        feeds["https://steppe.example/rss"].name,
        feeds["https://steppe.example/rss"].language,
    ) == ("Steppe Wire", "en")
    assert feeds["https://osh.example/rss"].name == "Новости Оша"
    assert feeds["https://osh.example/rss"].language == "ru"


def test_a_dry_run_writes_nothing(watch_list: Path) -> None:
    original = watch_list.read_bytes()
    ran = run_import(
        watch_list, opml('<outline xmlUrl="https://steppe.example/rss" text="S"/>'), "--dry-run"
    )
    assert ran.code == 0
    assert "would add 's'" in ran.out and "dry run: nothing written" in ran.out
    assert watch_list.read_bytes() == original


def test_export_then_import_into_an_empty_list_gives_the_same_feeds(tmp_path: Path) -> None:
    out = tmp_path / "feeds.opml"
    ran = monitor(
        "--indicators", str(REPO / "indicators.yaml"), "feeds", "export", "--out", str(out)
    )
    assert ran.code == 0, ran.err
    shipped = load_config(indicators_path=REPO / "indicators.yaml", env={}).feeds
    assert f"wrote {len(shipped)} feeds" in ran.out
    start = SHIPPED.index("feeds:\n")
    end = SHIPPED.index("\n# ----", start) + 1
    empty = tmp_path / "indicators.yaml"
    empty.write_text(SHIPPED[:start] + "feeds: []\n" + SHIPPED[end:], encoding="utf-8")
    imported = monitor("--indicators", str(empty), "feeds", "import", str(out))
    assert imported.code == 0, imported.err
    assert imported.err == ""
    again = load_config(indicators_path=empty, env={}).feeds
    assert [(f.url, f.name, f.language) for f in again] == [
        (f.url, f.name, f.language) for f in shipped
    ]


def test_export_to_standard_output_is_opml_2(tmp_path: Path) -> None:
    ran = monitor("--indicators", str(REPO / "indicators.yaml"), "feeds", "export")
    assert ran.code == 0
    assert ran.out.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    outlines = parse_opml(ran.out.encode())
    assert outlines[0].request.url == "https://eurasianet.org/rss.xml"
    assert outlines[0].request.name == "Eurasianet"


# -- hostile and broken files ---------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'
        for n in range(1, 10)
    )
    + ']>\n<opml version="2.0"><body><outline text="&lol9;" xmlUrl="https://x.example/"/></body></opml>\n'
).encode()


def hostile_cases(sentinel_port: int) -> dict[str, tuple[bytes, str]]:
    return {
        "billion laughs": (
            BILLION_LAUGHS,
            "line 2: declares a document type (<!DOCTYPE>); refused",
        ),
        "external entity (file)": (
            opml(
                '<outline text="&xxe;" xmlUrl="https://x.example/"/>',
                prolog='<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>\n',
            ),
            "declares a document type",
        ),
        "external entity (network)": (
            opml(
                '<outline text="&xxe;" xmlUrl="https://x.example/"/>',
                prolog=f'<!DOCTYPE opml [<!ENTITY xxe SYSTEM "http://127.0.0.1:{sentinel_port}/x">]>\n',
            ),
            "declares a document type",
        ),
        "parameter entity": (
            opml(
                "",
                prolog=f'<!DOCTYPE opml [<!ENTITY % p SYSTEM "http://127.0.0.1:{sentinel_port}/p"> %p;]>\n',
            ),
            "declares a document type",
        ),
        "external DTD": (
            opml(
                "", prolog=f'<!DOCTYPE opml SYSTEM "http://127.0.0.1:{sentinel_port}/opml.dtd">\n'
            ),
            "declares a document type",
        ),
        "truncated": (opml('<outline xmlUrl="https://x.example/"/>')[:-30], "not well-formed XML"),
        "unclosed attribute": (
            b'<opml><body><outline xmlUrl="https://x.example/',
            "not well-formed XML",
        ),
        "empty": (b"", "not well-formed XML (no element found)"),
        "binary": (bytes(range(256)) * 4, "not well-formed XML"),
        "an RSS feed, not OPML": (
            b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>',
            "not OPML (the root element is <rss>, not <opml>)",
        ),
        "nested 200 deep": (
            opml("<outline>" * 200 + "</outline>" * 200),
            "outlines nested deeper than 64 levels",
        ),
    }


CASE_NAMES = list(hostile_cases(0))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_a_hostile_or_broken_file_is_refused_whole(watch_list: Path, case: str) -> None:
    original = watch_list.read_bytes()
    with Sentinel() as sentinel:
        document, reason = hostile_cases(sentinel.port)[case]
        started = time.monotonic()
        ran = run_import(watch_list, document)
        elapsed = time.monotonic() - started
        assert sentinel.connections == 0
    assert ran.code == 2, ran.out + ran.err
    line = one_error_line(ran)
    assert reason in line, line
    assert ran.out == ""
    assert watch_list.read_bytes() == original
    assert elapsed < 60  # generous: an expanded bomb would not finish at all
    assert "lollol" not in line


def test_a_50_mb_file_is_refused_without_reading_it_all(watch_list: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.opml"
    with huge.open("wb") as handle:
        handle.write(opml('<outline xmlUrl="https://x.example/"/>')[:-9])  # no closing tags
        handle.truncate(50 * 1024 * 1024)
    original = watch_list.read_bytes()
    ran = run_import(watch_list, huge)
    assert ran.code == 2
    assert one_error_line(ran) == (
        f"monitor: {huge}: larger than {MAX_OPML_BYTES // (1024 * 1024)} MiB; "
        "not read (an OPML list of feeds is far smaller)"
    )
    assert watch_list.read_bytes() == original


def test_a_file_that_is_not_there_or_a_folder_is_a_usage_error(
    watch_list: Path, tmp_path: Path
) -> None:
    for path in (tmp_path / "missing.opml", tmp_path):
        ran = monitor("--indicators", str(watch_list), "feeds", "import", str(path))
        assert ran.code == 2
        assert "Traceback" not in ran.err


def test_too_many_outlines_are_refused(watch_list: Path) -> None:
    many = "".join(f'<outline xmlUrl="https://f{n}.example/"/>' for n in range(20_001))
    ran = run_import(watch_list, opml(many))
    assert ran.code == 2 and "more than 20000 feeds" in one_error_line(ran)


def test_latin1_and_utf16_files_are_read() -> None:
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><opml><body><outline text="Café" xmlUrl="https://c.example/"/></body></opml>'
    [outline] = parse_opml(latin.encode("latin-1"))
    assert outline.request.name == "Café"
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><opml><body><outline text="Ош" xmlUrl="https://o.example/"/></body></opml>'
    [outline] = parse_opml(utf16.encode("utf-16"))
    assert outline.request.name == "Ош"
