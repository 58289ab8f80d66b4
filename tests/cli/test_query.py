"""The CLI's read queries (db) and reports (query) against real database files."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import db
from monitor.cli import query
from monitor.db import reports as db_reports
from monitor.models import Contribution, Entry, Feed, Match, ScorePoint
from tests.support.cli import START, add_articles, build_database


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_articles(build_database(tmp_path_factory.mktemp("q") / "m.db"))


@pytest.fixture
def store(prepared: Path) -> db.Store:
    with db.Store.open(prepared, readonly=True) as s:
        yield s


def ids_of(rows: list[dict[str, Any]]) -> list[str]:
    """Entry ids from the article URLs (build_database's e1 lives at /clash)."""
    return [r["url"].rsplit("/", 1)[-1].replace("clash", "e1") for r in rows]


# -- articles ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"search": "Batken"}, ["e3", "e1"]),
        ({"search": "batken guards"}, ["e1"]),
        ({"search": "Batken", "theatre_id": "kg-tj"}, ["e1"]),  # e3 is a denial
        ({"search": "границ*"}, ["r1"]),
        ({"search": "граница"}, ["r1"]),  # stemmed as the matcher stems: границе, границы
        ({"search": "clashes"}, ["e3"]),  # "clash"
        ({"search": "guard"}, ["e1"]),  # "guards"
        ({"search": "country shelling"}, []),  # each word must occur (in some form)
        ({"search": "country"}, ["e4"]),  # "countries": Porter2's stem "countri"
        ({"search": "shell"}, ["e2"]),  # "shelled", "shelling"
        ({"search": 'Dushanbe "AND'}, []),
        ({"search": "*"}, []),
        ({"indicator_id": "border_clash"}, ["r1", "e1", "e2"]),
        ({"theatre_id": "csto"}, ["r2"]),
        ({"theatre_id": "am-az", "indicator_id": "accusation_of_aggression"}, ["e2"]),
        ({"since": START + timedelta(days=15, hours=1)}, ["r2", "e3", "r1"]),
        ({"until": START + timedelta(days=12)}, ["e2", "e4"]),
        ({"search": "Dushanbe", "since": START + timedelta(days=10)}, ["e3"]),
        ({}, ["r2", "e3", "r1", "e1", "e2", "e4"]),
    ],
    ids=[
        "word", "two-words-all-must-occur", "word-and-theatre-skips-denial", "ru-prefix",
        "ru-other-form", "en-plural-finds-singular", "en-singular-finds-plural",
        "all-words-must-occur-stemmed", "en-y-to-ies", "en-verb-forms", "fts-syntax-is-text", "nothing-to-search", "indicator", "theatre",
        "theatre-and-indicator", "since", "until", "word-since", "everything-newest-first",
    ],
)  # fmt: skip
def test_article_rows(store: db.Store, filters: dict[str, Any], expected: list[str]) -> None:
    args: dict[str, Any] = {"theatre_id": None, "indicator_id": None, "since": None, "search": None}
    args.update(filters)
    assert ids_of(db.article_rows(store, **args)) == expected


def test_article_matches_list_counted_detections_only(store: db.Store) -> None:
    rows = db.article_rows(store, theatre_id=None, indicator_id=None, since=None, search="Batken")
    found = db.article_match_rows(store, [r["id"] for r in rows])
    assert {(m["theatre_id"], m["indicator_id"]) for m in found} == {("kg-tj", "border_clash")}
    assert all(m["confidence"] >= 0.5 for m in found)


def test_articles_report_formats(store: db.Store) -> None:
    def report(fmt: str, **kw: Any) -> str:
        args: dict[str, Any] = dict(
            theatre_id=None, indicator_id=None, since=None, until=None, search="Batken", limit=10
        )
        args.update(kw)
        return query.articles_report(store, fmt=fmt, **args)

    data = json.loads(report("json"))
    assert [d["title"] for d in data][1] == "Kyrgyz and Tajik guards trade fire near Batken"
    assert data[1]["indicators"][0] == {
        "theatre_id": "kg-tj",
        "indicator_id": "border_clash",
        "confidence": 0.9,
        "evidence": "Guards exchanged fire on the border.",
    }
    assert data[0]["indicators"] == []  # the denial counts for nothing
    assert "[Batken]" in data[0]["snippet"]
    rows = list(csv.DictReader(io.StringIO(report("csv"))))
    assert [r["indicators"] for r in rows] == ["", "kg-tj:border_clash"]
    table = report("table")
    assert "kg-tj:border_clash" in table and "2022-09-16 00:00" in table
    assert report("table", search="nothing-like-this") == "(no articles match)"
    assert "raise --limit" in report("table", limit=1)


# Both ways of finding articles (walk the date index, or look candidates up) must give
# the same answer as a plain filter over every article.

WORDS = ("border", "clash", "troops", "talks", "water", "gas", "drill", "summit")


@pytest.fixture(scope="module")
def random_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(5)
    path = tmp_path_factory.mktemp("r") / "random.db"
    feed = Feed(id="f", url="https://f.example/rss", name="F")
    with db.Store.open(path) as store:
        store.sync_feeds([feed], now=START)
        with store.transaction():
            for n in range(300):
                at = START + timedelta(hours=rng.randrange(24 * 200))
                title = " ".join(rng.choices(WORDS, weights=(30, 8, 4, 4, 2, 1, 1, 1), k=3))
                entry = Entry(
                    f"x{n}", "f", f"https://f.example/{n}", f"{title} n{n}", "", at, "en", str(n)
                )
                [article] = store.store_entries(feed, [entry], now=at)
                if rng.random() < 0.3:
                    theatre = rng.choice(("kg-tj", "am-az"))
                    conf = rng.choice((0.9, 0.2))
                    store.store_matches(
                        article, [Match("border_clash", theatre, conf, "e", ())], now=at
                    )
    return path


def reference(store: db.Store, *, search: str | None, theatre_id: str | None,
              since: datetime | None, limit: int) -> list[int]:  # fmt: skip
    rows = store.query("SELECT id, title, published_at FROM articles")
    counted = {
        (r["article_id"], r["theatre_id"])
        for r in store.query("SELECT article_id, theatre_id FROM matches WHERE confidence >= 0.5")
    }
    keep = []
    for row in rows:
        words = set(re.findall(r"\w+", row["title"].lower()))
        if search and not all(w.lower() in words for w in search.split()):
            continue
        if theatre_id and (row["id"], theatre_id) not in counted:
            continue
        if since and row["published_at"] < since.strftime("%Y-%m-%dT%H:%M:%SZ"):
            continue
        keep.append(row)
    keep.sort(key=lambda r: (r["published_at"], r["id"]), reverse=True)
    return [r["id"] for r in keep[:limit]]


@pytest.mark.parametrize("cost", [0.0, 1e9], ids=["candidates-first", "newest-first"])
@pytest.mark.parametrize(
    ("search", "theatre_id", "days", "limit"),
    [
        ("border", None, None, 10),
        ("gas", None, None, 10),
        ("border clash", None, None, 5),
        ("border", "kg-tj", None, 7),
        (None, "am-az", None, 10),
        ("troops", None, 150, 10),
        (None, "kg-tj", 190, 50),
        ("summit drill", None, None, 100),
    ],
    ids=["common", "rare", "two-words", "word-theatre", "theatre", "word-since", "theatre-since",
         "rarest"],
)  # fmt: skip
def test_both_search_plans_agree_with_a_plain_filter(
    random_store: Path,
    monkeypatch: pytest.MonkeyPatch,
    cost: float,
    search: str | None,
    theatre_id: str | None,
    days: int | None,
    limit: int,
) -> None:
    monkeypatch.setattr(db_reports, "ARTICLE_LOOKUP_COST", cost)
    since = START + timedelta(days=days) if days else None
    with db.Store.open(random_store, readonly=True) as store:
        got = db.article_rows(
            store, theatre_id=theatre_id, indicator_id=None, since=since, search=search, limit=limit
        )
        assert [r["id"] for r in got] == reference(
            store, search=search, theatre_id=theatre_id, since=since, limit=limit
        )


# -- history -----------------------------------------------------------------


def test_weekly_history_starts_weeks_on_monday(tmp_path: Path) -> None:
    monday = datetime(2024, 9, 16, 9, 0, tzinfo=UTC)
    with db.Store.open(tmp_path / "w.db") as store:
        with store.transaction():
            for days, score in ((-1, 10.0), (0, 20.0), (6, 30.0), (7, 40.0)):
                at = monday + timedelta(days=days)
                store.insert_score(ScorePoint("kg-tj", at, score / 2, score, "low", "1"))
        rows = db.history_rows(
            store, theatre_id="kg-tj", since=monday - timedelta(days=30),
            until=monday + timedelta(days=30), every="1w",
        )  # fmt: skip
    assert [(r["at"], r["score"], r["points"]) for r in rows] == [
        ("2024-09-09T00:00:00Z", 10.0, 1),  # Sunday 15th belongs to the week of the 9th
        ("2024-09-16T00:00:00Z", 30.0, 2),  # Monday 16th to Sunday 22nd
        ("2024-09-23T00:00:00Z", 40.0, 1),
    ]


def test_daily_history_takes_the_peak_and_the_last_level(tmp_path: Path) -> None:
    day = datetime(2024, 9, 16, tzinfo=UTC)
    with db.Store.open(tmp_path / "d.db") as store:
        with store.transaction():
            for hours, score, level in (
                (1, 20.0, "low"),
                (8, 70.0, "high"),
                (20, 40.0, "elevated"),
            ):
                store.insert_score(
                    ScorePoint("am-az", day + timedelta(hours=hours), 1.0, score, level, "1")
                )
        [row] = db.history_rows(
            store, theatre_id=None, since=day, until=day + timedelta(days=1), every="1d"
        )
    assert row == {"theatre_id": "am-az", "at": "2024-09-16T00:00:00Z", "score": 70.0,
                   "level": "elevated", "stories": 0, "points": 3}  # fmt: skip


def test_query_views_answer_in_sqlite(prepared: Path) -> None:
    with db.Store.open(prepared, readonly=True) as store:
        health = store.query("SELECT id, health FROM feed_health ORDER BY id")
        levels = store.query("SELECT theatre_id, level, score FROM theatre_levels")
        found = store.query(
            "SELECT title, counted FROM article_indicators WHERE indicator_id = 'border_clash' "
            "ORDER BY published_at"
        )
    assert health == [
        {"id": "ru-wire", "health": "never polled"},
        {"id": "wire", "health": "never polled"},
    ]
    assert levels == [{"theatre_id": "kg-tj", "level": "low", "score": 4.0}]
    assert [f["counted"] for f in found] == [1, 1, 1, 0]


def test_explain_table_lists_the_largest_and_sums_the_rest(tmp_path: Path) -> None:
    feed = Feed(id="f", url="https://f.example/rss", name="F")
    at = START + timedelta(days=3)
    with db.Store.open(tmp_path / "e.db") as store:
        store.sync_feeds([feed], now=START)
        contributions = []
        with store.transaction():
            for n in range(1, 26):
                entry = Entry(
                    f"x{n}", "f", f"https://f.example/{n}", f"Story {n}", "", at, "en", str(n)
                )
                [article] = store.store_entries(feed, [entry], now=at)
                [match_id] = store.store_matches(
                    article, [Match("border_clash", "kg-tj", 0.9, f"Sentence {n}.", ())], now=at
                )
                contributions.append(
                    Contribution(article.story_id, match_id, "border_clash", float(n))
                )
            store.insert_score(
                ScorePoint(
                    "kg-tj", at, 325.0, 99.0, "critical", "1", contributions=tuple(contributions)
                )
            )
    with db.Store.open(tmp_path / "e.db", readonly=True) as store:
        table = query.explain_report(store, theatre_id="kg-tj", at=None, fmt="table")
        data = json.loads(query.explain_report(store, theatre_id="kg-tj", at=None, fmt="json"))
        rows = list(
            csv.DictReader(
                io.StringIO(query.explain_report(store, theatre_id="kg-tj", at=None, fmt="csv"))
            )
        )
    assert "score 99 (critical), 25 contributing stories" in table
    assert " 1. +25.00  border clash  Story 25" in table and "20.  +6.00" in table
    assert "\n21. " not in table and "Story 5 " not in table
    assert table.endswith(
        "… and 5 smaller contributions adding +15.00 points (all of them: --format csv or json)"
    )
    assert [c["points"] for c in data["contributions"]] == [float(n) for n in range(25, 0, -1)]
    assert len(rows) == 25
