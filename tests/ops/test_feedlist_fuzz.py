"""Any feed request either is refused with a reason, or lands in the file so that the
file loads with exactly that feed, the other lines untouched, and removing it gives the
original text back (property test over names, URLs, languages and intervals)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from monitor.config import parse_indicators_text
from monitor.errors import ConfigError
from monitor.ops.feedlist import FeedRequest, add_feeds, clean_name, remove_feed

MINIMAL = (
    (Path(__file__).parents[1] / "fixtures" / "config" / "bad_feed_bad_language.yaml")
    .read_text(encoding="utf-8")
    .replace("language: de", "language: en  # the wire's own language")
)

hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)
paths = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
urls = st.one_of(
    st.builds(
        lambda s, h, p: f"{s}://{h}/{p}",
        st.sampled_from(["http", "https", "ftp", "javascript"]),
        hosts,
        paths,
    ),
    st.text(max_size=60),
)
names = st.one_of(st.none(), st.text(max_size=80))
languages = st.sampled_from([None, "en", "ru", "de", "", "EN"])
intervals = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 20000).map(float)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=urls, name=names, language=languages, interval=intervals)
def test_a_request_is_refused_or_round_trips(
    url: str, name: str | None, language: str | None, interval: float | None
) -> None:
    request = FeedRequest(url=url, name=name, language=language, interval_minutes=interval)
    edit = add_feeds(MINIMAL, [request], source="fuzz.yaml")
    event("refused" if edit.refused else "added")
    if edit.refused:
        assert edit.text == MINIMAL and not edit.added
        [refusal] = edit.refused
        assert refusal.reason and "\n" not in refusal.reason
        return
    [feed] = edit.added
    loaded = parse_indicators_text(edit.text, source="fuzz.yaml").feeds
    assert loaded[0].id == "wire" and loaded[1] == feed
    assert feed.url == url.strip()
    assert feed.name == (clean_name(name) if name is not None else feed.id)
    kept = [
        line
        for line in edit.text.splitlines(keepends=True)
        if line not in MINIMAL.splitlines(keepends=True)
    ]
    assert len(kept) >= 2  # the new entry's lines, and nothing else changed:
    assert (
        "".join(line for line in edit.text.splitlines(keepends=True) if line not in kept) == MINIMAL
    )
    assert remove_feed(edit.text, feed.id, source="fuzz.yaml").text == MINIMAL


def test_removing_from_a_file_that_does_not_load_is_refused() -> None:
    broken = MINIMAL.replace("weight: 25", "weight: high")
    with pytest.raises(ConfigError, match="expected a number, got 'high'"):
        remove_feed(broken, "wire", source="fuzz.yaml")
