"""`monitor feeds add/remove`: the watch list edited in place, every other byte kept, or
the edit refused with one line and the file untouched."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml

from monitor.config import load_config
from tests.ops.support import REPO, monitor, one_error_line

SHIPPED = (REPO / "indicators.yaml").read_text(encoding="utf-8")
NEW_URL = "https://news.example.org/feed.xml"


@pytest.fixture
def watch_list(tmp_path: Path) -> Path:
    """The shipped watch list, with comments of every kind around and inside its feeds."""
    text = SHIPPED.replace(
        "feeds:\n",
        "feeds:   # the outlets we read\n  # first, the regional wires\n",
        1,
    ).replace(
        "    url: https://24.kg/rss/\n",
        "    url: https://24.kg/rss/   # answers slowly\n    # interval_minutes: 60\n",
        1,
    )
    path = tmp_path / "indicators.yaml"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def edit(watch_list: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return monitor("--indicators", str(watch_list), "feeds", *args, env=env)


def changes(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    """The differing runs of lines: (kind, old lines, new lines)."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    return [
        (tag, old[i1:i2], new[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def test_add_inserts_one_entry_and_keeps_every_other_byte(watch_list: Path) -> None:
    before = watch_list.read_text(encoding="utf-8")
    ran = edit(
        watch_list, "add", NEW_URL, "--name", "Example Wire", "--language", "en", "--interval", "45"
    )
    assert ran.code == 0, ran.err
    assert "added feed 'example-wire'" in ran.out
    assert "systemctl reload monitor" in ran.out
    after = watch_list.read_text(encoding="utf-8")
    [(kind, removed, inserted)] = changes(before, after)
    assert kind == "insert" and removed == []
    assert inserted == [
        "  - id: example-wire\n",
        "    name: Example Wire\n",
        f"    url: {NEW_URL}\n",
        "    language: en\n",
        "    interval_minutes: 45\n",
    ]
    # after the last feed, before the comments that introduce the next section
    assert after.index(inserted[0]) > after.index("id: gnews-odkb-ru")
    assert after.index(inserted[0]) < after.index("# Scoring")
    feed = load_config(indicators_path=watch_list, env={}).feed("example-wire")
    assert feed is not None
    assert (feed.url, feed.name, feed.language, feed.interval_seconds) == (
        NEW_URL,
        "Example Wire",
        "en",
        45 * 60,
    )


def test_remove_deletes_exactly_the_entry_and_its_own_comments(watch_list: Path) -> None:
    before = watch_list.read_text(encoding="utf-8")
    ran = edit(watch_list, "remove", "24kg")
    assert ran.code == 0, ran.err
    assert "removed feed '24kg'" in ran.out and "systemctl reload monitor" in ran.out
    [(kind, removed, inserted)] = changes(before, watch_list.read_text(encoding="utf-8"))
    assert kind == "delete" and inserted == []
    assert removed == [
        "  - id: 24kg\n",
        "    name: 24.kg\n",
        "    url: https://24.kg/rss/   # answers slowly\n",
        "    # interval_minutes: 60\n",
        "    language: ru\n",
    ]


@pytest.mark.parametrize("key", ["gnews-odkb-ru", "Eurasianet", "HTTPS://EURASIANET.ORG/rss.xml"])
def test_add_then_remove_gives_back_the_same_bytes(watch_list: Path, key: str) -> None:
    original = watch_list.read_bytes()
    if key != "gnews-odkb-ru":
        assert edit(watch_list, "remove", key).code == 0
        text = watch_list.read_text(encoding="utf-8")
        assert "id: eurasianet" not in text
        return
    assert edit(watch_list, "add", NEW_URL).code == 0
    assert edit(watch_list, "remove", NEW_URL).code == 0
    assert watch_list.read_bytes() == original


def test_crlf_line_endings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "indicators.yaml"
    original = SHIPPED.replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(original)
    assert edit(path, "add", NEW_URL, "--name", "Wire").code == 0
    edited = path.read_bytes()
    assert b"  - id: wire\r\n    name: Wire\r\n" in edited
    assert b"\n" not in edited.replace(b"\r\n", b"")
    assert edit(path, "remove", "wire").code == 0
    assert path.read_bytes() == original


def test_a_symlinked_watch_list_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text(SHIPPED, encoding="utf-8")
    real.chmod(0o640)
    link = tmp_path / "indicators.yaml"
    link.symlink_to(real)
    assert edit(link, "add", NEW_URL).code == 0
    assert link.is_symlink() and NEW_URL in real.read_text(encoding="utf-8")
    assert real.stat().st_mode & 0o777 == 0o640


# -- refusals: one line, exit 2, the file byte for byte as it was -------------------------

REFUSED_ADDS = {
    "duplicate URL": (["https://eurasianet.org/rss.xml"], "already watched, as feed 'eurasianet'"),
    "duplicate URL, other spelling": (
        ["HTTPS://Eurasianet.org:443/rss.xml/"],
        "already watched, as feed 'eurasianet'",
    ),
    "duplicate id": ([NEW_URL, "--id", "kabar"], "id 'kabar' is already used"),
    "bad id": ([NEW_URL, "--id", "two words"], "id 'two words'"),
    "ftp scheme": (["ftp://news.example.org/feed"], "scheme 'ftp' is not allowed"),
    "javascript": (["javascript:alert(1)"], "scheme 'javascript' is not allowed"),
    "file": (["file:///etc/passwd"], "scheme 'file' is not allowed"),
    "no scheme": (["news.example.org/feed"], "no scheme"),
    "space": (["https://news.example.org/a feed"], "spaces or control characters"),
    "private address": (["http://10.1.2.3/rss"], "10.1.2.3 is private"),
    "loopback": (["http://127.0.0.1:8080/rss"], "127.0.0.1 is loopback"),
    "localhost": (["http://localhost/rss"], "localhost is loopback"),
    "ipv6 loopback": (["http://[::1]/rss"], "::1 is loopback"),
    "metadata service": (["http://169.254.169.254/latest"], "169.254.169.254 is link-local"),
    "decimal spelling": (["http://2130706433/rss"], "non-canonical spelling of 127.0.0.1"),
    "bad language": ([NEW_URL, "--language", "de"], "language 'de': expected one of en, ru"),
    "zero interval": ([NEW_URL, "--interval", "0"], "interval 0: expected minutes"),
    "empty name": ([NEW_URL, "--name", "  "], "the name is empty"),
}


@pytest.mark.parametrize("case", list(REFUSED_ADDS))
def test_a_refused_add_is_one_line_and_changes_nothing(watch_list: Path, case: str) -> None:
    args, reason = REFUSED_ADDS[case]
    original = watch_list.read_bytes()
    ran = edit(watch_list, "add", *args)
    assert ran.code == 2, ran.out + ran.err
    line = one_error_line(ran)
    assert line.startswith("monitor: feed not added: ") and reason in line, line
    assert ran.out == ""
    assert watch_list.read_bytes() == original
    assert [p.name for p in watch_list.parent.iterdir()] == ["indicators.yaml"]  # no temp left


def test_a_private_network_the_operator_allowed_is_accepted(watch_list: Path) -> None:
    ran = edit(
        watch_list,
        "add",
        "http://10.1.2.3/rss",
        env={"MONITOR_ALLOW_PRIVATE_NETWORKS": "10.0.0.0/8"},
    )
    assert ran.code == 0, ran.err
    assert "url: http://10.1.2.3/rss\n" in watch_list.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("no-such-feed", "no feed 'no-such-feed' (give an id, a URL or a name; ids: eurasianet,"),
        ("https://unknown.example/rss", "no feed 'https://unknown.example/rss'"),
        ("Google News (search)", "2 feeds are named 'Google News (search)'"),
    ],
)
def test_removing_an_unknown_or_ambiguous_feed_is_refused(
    watch_list: Path, key: str, reason: str
) -> None:
    original = watch_list.read_bytes()
    ran = edit(watch_list, "remove", key)
    assert ran.code == 2
    assert reason in one_error_line(ran)
    assert watch_list.read_bytes() == original


def test_a_watch_list_that_does_not_load_is_not_edited(tmp_path: Path) -> None:
    path = tmp_path / "indicators.yaml"
    path.write_text(SHIPPED.replace("weight: 8", "weight: high", 1), encoding="utf-8")
    original = path.read_bytes()
    ran = edit(path, "add", NEW_URL)
    assert ran.code == 2 and "expected a number, got 'high'" in one_error_line(ran)
    assert path.read_bytes() == original


def test_without_a_watch_list_file_the_builtin_one_is_not_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = monitor("feeds", "add", NEW_URL)
    assert ran.code == 2
    assert "monitor init" in one_error_line(ran)
    assert list(tmp_path.iterdir()) == []


# -- lists written in other shapes ---------------------------------------------------------


def without_feeds(replacement: str) -> str:
    start = SHIPPED.index("feeds:\n")
    end = SHIPPED.index("\n# ----", start) + 1
    return SHIPPED[:start] + replacement + SHIPPED[end:]


@pytest.mark.parametrize(
    ("replacement", "expected_line"),
    [
        ("feeds: []   # none yet\n", "feeds:   # none yet\n"),
        ("feeds:\n", "feeds:\n"),
        ("feeds: ~\n", "feeds:\n"),
        ("", "feeds:\n"),
    ],
    ids=["flow empty", "null", "tilde", "absent"],
)
def test_adding_to_an_empty_or_missing_list(
    tmp_path: Path, replacement: str, expected_line: str
) -> None:
    path = tmp_path / "indicators.yaml"
    path.write_text(without_feeds(replacement), encoding="utf-8")
    ran = edit(path, "add", NEW_URL, "--name", "Wire")
    assert ran.code == 0, ran.err
    text = path.read_text(encoding="utf-8")
    assert expected_line + f"  - id: wire\n    name: Wire\n    url: {NEW_URL}\n" in text
    assert [f.id for f in load_config(indicators_path=path, env={}).feeds] == ["wire"]
    # and removing the only feed leaves an empty list, not a null
    assert edit(path, "remove", "wire").code == 0
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["feeds"] == []


def test_a_flow_style_list_is_refused_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "indicators.yaml"
    path.write_text(
        without_feeds('feeds: [{id: a, url: "https://a.example/rss"}]\n'), encoding="utf-8"
    )
    original = path.read_bytes()
    ran = edit(path, "add", NEW_URL)
    assert ran.code == 2 and "edit this file by hand" in one_error_line(ran)
    assert path.read_bytes() == original


def test_names_that_need_quoting_read_back_exactly(watch_list: Path) -> None:
    names = ['Name: with # and "quotes"', "- dash", "yes", "123", "Газета.kg", "@at *star"]
    for number, name in enumerate(names):
        ran = edit(watch_list, "add", f"https://n{number}.example/rss", "--name", name)
        assert ran.code == 0, ran.err
    loaded = {f.url: f.name for f in load_config(indicators_path=watch_list, env={}).feeds}
    assert [loaded[f"https://n{n}.example/rss"] for n in range(len(names))] == names


def test_control_characters_in_a_name_are_dropped(watch_list: Path) -> None:
    ran = edit(watch_list, "add", NEW_URL, "--name", "Evil\r\nBcc: x@example.org\x85\x07")
    assert ran.code == 0, ran.err
    feed = load_config(indicators_path=watch_list, env={}).feed("evil-bcc-x-example-org")
    assert feed is not None and feed.name == "Evil Bcc: x@example.org"


@pytest.mark.parametrize("line_break", ["\r", "\u2028", "\x85"], ids=["CR", "LS", "NEL"])
def test_other_line_breaks_are_refused(tmp_path: Path, line_break: str) -> None:
    """YAML counts lines at these too; Python's and YAML's line numbers must agree."""
    path = tmp_path / "indicators.yaml"
    text = SHIPPED.replace("version: 1\n", f"version: 1\n# a{line_break}# comment\n", 1)
    path.write_bytes(text.encode())
    original = path.read_bytes()
    ran = edit(path, "add", NEW_URL)
    assert ran.code == 2 and "line breaks other than LF and CRLF" in one_error_line(ran)
    assert path.read_bytes() == original
