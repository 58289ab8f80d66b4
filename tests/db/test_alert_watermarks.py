"""Every critical sign becomes an alert exactly once, however the poll and score jobs interleave.

These run the production path (`pipeline.record_feed_result` with the real matcher and the
repo's indicators, `pipeline.score_theatres`, `pipeline.run_digest`) on a real SQLite file.
The poll and score jobs of the daemon share one database; here they share one `Store`, and
an interleaving is played by the order of the calls, each with the `now` its job would
have had: a poll's rows are stamped with the poll's *start* time, whenever it commits.
"""

from __future__ import annotations

import email
import email.policy
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import pipeline
from monitor.config import Config
from monitor.db import Store
from monitor.models import AlertDecision, Entry, Feed, FetchResult, ParseResult, to_iso
from tests.support.crash import base_config
from tests.support.daemon import CLASH_HEADLINES as HEADLINES

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SCORE_TICK = timedelta(seconds=900)
FEEDS = (
    Feed(id="outlet-a", url="http://127.0.0.1:9/a.xml", name="Outlet A", language="en"),
    Feed(id="outlet-b", url="http://127.0.0.1:9/b.xml", name="Outlet B", language="en"),
)


def clash(number: int, *, entry_id: str | None = None, at: datetime = T0) -> Entry:
    title = HEADLINES[number % len(HEADLINES)]
    return entry(entry_id or f"clash-{number}", title, f"{title}.", at=at)


def entry(entry_id: str, title: str, summary: str, *, at: datetime) -> Entry:
    return Entry(
        entry_id=entry_id,
        feed_id="",
        url=None,
        title=title,
        summary=summary,
        published_at=at,
        language="en",
        content_hash=str(hash((title, summary))),
    )


@pytest.fixture
def config() -> Config:
    return replace(base_config(), feeds=FEEDS)


@pytest.fixture
def store(tmp_path: Path, config: Config) -> Iterator[Store]:
    with Store.open(tmp_path / "monitor.db") as s:
        s.sync_feeds(config.feeds, now=T0 - timedelta(days=1))
        yield s


def record_poll(
    store: Store, config: Config, feed: Feed, entries: Sequence[Entry], *, started: datetime
) -> None:
    """Commit one feed's poll as the poll job does, stamped with the poll's start time."""
    state = store.feed_state(feed.id)
    assert state is not None
    entries = tuple(replace(e, feed_id=feed.id) for e in entries)
    pipeline.record_feed_result(
        store,
        config,
        feed,
        state,
        FetchResult(feed_id=feed.id, outcome="ok", fetched_at=started, http_status=200),
        ParseResult(entries=entries, status="ok"),
        now=started,
        rng=random.Random(0),
        summary=pipeline.PollSummary(),
    )


def critical_match_ids(store: Store) -> dict[int, int]:
    """Each counted critical match (by id) and its story."""
    return {
        int(match_id): int(story_id)
        for match_id, story_id in store.conn.execute(
            "SELECT id, story_id FROM matches WHERE indicator_id = 'border_clash' "
            "AND confidence >= 0.5"
        )
    }


def alerted_stories(store: Store) -> list[int]:
    """The story of every critical match carried by an alert, once per alert carrying it."""
    stories = critical_match_ids(store)
    carried: list[int] = []
    for (match_ids,) in store.conn.execute("SELECT match_ids FROM alerts ORDER BY id"):
        ids = {int(i) for i in json.loads(match_ids or "[]")}
        carried.extend(sorted({stories[i] for i in ids if i in stories}))
    return carried


# ---------------------------------------------------------------------------
# The race of the shipped schedule


def test_a_poll_that_commits_after_the_score_tick_it_started_before_is_alerted(
    store: Store, config: Config
) -> None:
    # A quiet first tick, so the theatre has a state and a last score point.
    pipeline.score_theatres(store, config, now=T0 - SCORE_TICK)
    # The poll starts at T0; the score job fires in the same second and commits first.
    poll_started = T0
    pipeline.score_theatres(store, config, now=T0)
    record_poll(store, config, FEEDS[0], [clash(0)], started=poll_started)
    assert alerted_stories(store) == []
    # The next score tick must alert the poll's critical match.
    pipeline.score_theatres(store, config, now=T0 + SCORE_TICK)
    [story] = set(critical_match_ids(store).values())
    assert alerted_stories(store) == [story]
    # And never again.
    pipeline.score_theatres(store, config, now=T0 + 2 * SCORE_TICK)
    pipeline.score_theatres(store, config, now=T0 + timedelta(days=2))
    assert alerted_stories(store) == [story]


@dataclass(frozen=True)
class Op:
    kind: str  # "start" a poll, "commit" the oldest started poll, or "score"
    seconds: int  # the clock moves by this much before the step


ops = st.lists(
    st.builds(
        Op,
        st.sampled_from(["start", "commit", "score", "score"]),
        st.integers(min_value=0, max_value=2),
    ),
    min_size=1,
    max_size=24,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_any_interleaving_alerts_every_critical_match_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Op]
) -> None:
    config = replace(base_config(), feeds=FEEDS)
    path = tmp_path_factory.mktemp("interleaving") / "monitor.db"
    with Store.open(path) as store:
        store.sync_feeds(config.feeds, now=T0 - timedelta(days=1))
        now = T0
        started: list[tuple[datetime, Entry]] = []
        polls = 0
        for step in steps:
            now += timedelta(seconds=step.seconds)
            if step.kind == "start":
                started.append((now, clash(polls, at=now)))
                polls += 1
            elif step.kind == "commit" and started:
                poll_started, item = started.pop(0)
                record_poll(store, config, FEEDS[polls % 2], [item], started=poll_started)
            elif step.kind == "score":
                pipeline.score_theatres(store, config, now=now)
        for poll_started, item in started:
            record_poll(store, config, FEEDS[0], [item], started=poll_started)
        pipeline.score_theatres(store, config, now=now + SCORE_TICK)
        stories = set(critical_match_ids(store).values())
        assert len(stories) == min(polls, len(HEADLINES))
        carried = alerted_stories(store)
        assert sorted(carried) == sorted(stories), "every critical story alerted exactly once"


# ---------------------------------------------------------------------------
# Other ways a critical sign went unalerted or repeated


def test_an_edited_item_that_becomes_an_event_is_alerted(store: Store, config: Config) -> None:
    pipeline.score_theatres(store, config, now=T0 - SCORE_TICK)
    warning = entry(
        "guid-1",
        "Kyrgyzstan and Tajikistan could open fire, officials warn",
        "Officials warned that Kyrgyz and Tajik border guards could open fire if talks fail.",
        at=T0,
    )
    record_poll(store, config, FEEDS[0], [warning], started=T0)
    pipeline.score_theatres(store, config, now=T0 + SCORE_TICK)
    assert alerted_stories(store) == []
    # The same GUID, re-published with the news.
    edited = clash(0, entry_id="guid-1", at=T0)
    record_poll(store, config, FEEDS[0], [edited], started=T0 + 2 * SCORE_TICK)
    pipeline.score_theatres(store, config, now=T0 + 3 * SCORE_TICK)
    [story] = set(critical_match_ids(store).values())
    assert alerted_stories(store) == [story]
    # A later edit that keeps it an event with the same evidence is not news again.
    pipeline.score_theatres(store, config, now=T0 + 4 * SCORE_TICK)
    assert alerted_stories(store) == [story]


def test_a_second_outlet_a_day_later_does_not_alert_the_story_again(
    store: Store, config: Config
) -> None:
    first = clash(0, entry_id="a-1", at=T0)
    record_poll(store, config, FEEDS[0], [first], started=T0)
    pipeline.score_theatres(store, config, now=T0 + SCORE_TICK)
    [story] = set(critical_match_ids(store).values())
    assert alerted_stories(store) == [story]
    # 25 h later (past the repeat interval) a second outlet carries the same story, in the
    # same cycle as a new clash elsewhere.
    later = T0 + timedelta(hours=25)
    again = clash(0, entry_id="b-1", at=T0)
    other = clash(2, entry_id="b-2", at=later)
    record_poll(store, config, FEEDS[1], [again, other], started=later)
    pipeline.score_theatres(store, config, now=later + SCORE_TICK)
    stories = set(critical_match_ids(store).values())
    assert len(stories) == 2, "the second outlet's article joined the first story"
    [new_story] = stories - {story}
    assert alerted_stories(store) == [story, new_story]


# ---------------------------------------------------------------------------
# The digest


def non_urgent(number: int, at: datetime) -> AlertDecision:
    return AlertDecision(
        dedup_key=f"kg-tj:level_down:elevated@{to_iso(at)}",
        kind="level_down",
        theatre_id="kg-tj",
        created_at=at,
        urgent=False,
        level="elevated",
        previous_level="high",
        reason=f"fell to ELEVATED, change number {number}",
    )


def digest_reasons(store: Store) -> list[list[str]]:
    bodies = []
    for (raw,) in store.conn.execute(
        "SELECT o.message FROM outbox o JOIN alerts a ON a.id = o.alert_id "
        "WHERE a.kind = 'digest' ORDER BY a.id"
    ):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        bodies.append([line for line in text.splitlines() if "change number" in line])
    return bodies


def test_no_item_appears_in_two_digests(store: Store, config: Config) -> None:
    day1 = datetime(2026, 12, 7, tzinfo=UTC)
    record = pipeline.record_alert
    with store.transaction():
        record(store, config, non_urgent(1, day1 + timedelta(hours=7)), now=day1)
    with store.transaction():
        # After the digest slot (08:00), before the digest job ran (08:05).
        record(store, config, non_urgent(2, day1 + timedelta(hours=8, minutes=2)), now=day1)
    assert pipeline.run_digest(store, config, now=day1 + timedelta(hours=8, minutes=5))
    day2 = day1 + timedelta(days=1)
    with store.transaction():
        record(store, config, non_urgent(3, day2 + timedelta(hours=7)), now=day2)
    assert pipeline.run_digest(store, config, now=day2 + timedelta(hours=8, minutes=5))
    first, second = digest_reasons(store)
    assert [line.rsplit(" ", 1)[-1] for line in first] == ["1", "2"]
    assert [line.rsplit(" ", 1)[-1] for line in second] == ["3"]


# ---------------------------------------------------------------------------
# Upgrading a database of the previous schema


def test_migration_keeps_what_was_alerted_and_seen(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.db import base

    path = tmp_path / "old.db"
    with monkeypatch.context() as patch:
        patch.setattr(base, "SCHEMA_VERSION", 2)  # the version `migrate` brings a file to
        with Store.open(path) as old:
            assert old.schema_version() == 2
            old.sync_feeds(config.feeds, now=T0 - timedelta(days=1))
            with old.transaction():
                old.conn.execute(
                    "INSERT INTO stories (id, first_seen_at, title) VALUES (7, ?, 'Clash')",
                    (to_iso(T0),),
                )
                old.conn.execute(
                    "INSERT INTO articles (id, feed_id, entry_id, story_id, title, first_seen_at) "
                    "VALUES (1, 'outlet-a', 'e1', 7, 'Clash', ?)",
                    (to_iso(T0),),
                )
                for match_id, created in ((1, T0), (2, T0 + SCORE_TICK)):
                    old.conn.execute(
                        "INSERT INTO matches (id, article_id, story_id, indicator_id, theatre_id, "
                        "confidence, occurred_at, created_at) "
                        "VALUES (?, 1, 7, ?, 'kg-tj', 0.9, ?, ?)",
                        (
                            match_id,
                            ("border_clash", "arms")[match_id - 1],
                            to_iso(T0),
                            to_iso(created),
                        ),
                    )
                old.conn.execute(
                    "INSERT INTO scores (theatre_id, at, score, level, methodology_version) "
                    "VALUES ('kg-tj', ?, 40, 'elevated', '1')",
                    (to_iso(T0 + timedelta(seconds=1)),),
                )
                old.conn.execute(
                    "INSERT INTO alert_state (theatre_id, level, level_since, last_sent) "
                    "VALUES ('kg-tj', 'elevated', ?, '[]')",
                    (to_iso(T0),),
                )
                old.conn.execute(
                    "INSERT INTO alerts (id, dedup_key, kind, theatre_id, created_at, match_ids) "
                    "VALUES (5, 'kg-tj:critical:stories:7', 'critical', 'kg-tj', ?, '[1]')",
                    (to_iso(T0),),
                )
                old.set_meta("digest_last_slot", to_iso(T0))
    with Store.open(path) as upgraded:
        assert upgraded.schema_version() == base.SCHEMA_VERSION
        revisions = dict(upgraded.conn.execute("SELECT id, revision FROM matches").fetchall())
        assert revisions == {1: 1, 2: 2}
        # Match 1 was created before the last score point; match 2 after it is still new.
        assert upgraded.alert_match_revision("kg-tj") == 1
        assert upgraded.alerted_signs("kg-tj", [7]) == {(7, "border_clash")}
        assert upgraded.get_meta("digest_last_alert_id") == "5"
