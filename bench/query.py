"""Benchmark: the CLI's read queries on a database the size of a year of heavy use.

Builds (fast: `executemany` in one transaction, not through `Store.store_entries`) a
database with 5 theatres scored every 15 minutes for a year (175,200 score points),
500,000 articles (English and Russian, with full-text search), 100,000 matches, 2,000
alerts with their outbox rows (messages of realistic size), the runs the daemon keeps
(1,000 per job after pruning) and score contributions for the newest points (every
counted match of the last 30 days, as the scoring does; see "contributions" below).

Then times, on a read-only connection and through the same functions the CLI calls:

- a year of one theatre's history aggregated daily (`monitor history --every 1d`),
- 30 days of one theatre's raw points (`monitor history --since 30d`),
- the evidence behind the latest point (`monitor explain`),
- article searches (`monitor articles --search`, a rare and a common word, a Russian
  prefix, and a theatre + indicator filter),
- `monitor status`,

each as the query alone (the `db` function) and the whole command body (query +
rendering, JSON). The baseline, measured in the same run, is a copy of the database
with the query indexes dropped (only primary keys and the full-text index remain).
Prints milliseconds (median of several runs) and baseline / indexed ratios, then the
database size per article.

Contributions: the scoring stores one row per counted story in the 30-day window for
every score point. Writing that for a whole year would take minutes (and is measured
as a size extrapolation instead); only the newest `--contribution-days` of points get
them, which is all `explain` of the latest point reads.

Run: `.venv/bin/python bench/query.py [--articles N] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import db, query, status
from monitor.models import to_iso

END = datetime(2025, 1, 1, tzinfo=UTC)
START = END - timedelta(days=365)
THEATRES = ("kg-tj", "am-az", "csto", "kz-ru", "ge-ru")
INDICATORS = (
    "border_clash",
    "troop_buildup",
    "territorial_claim",
    "arms_delivery",
    "exercise_cancellation",
    "alliance_freeze",
    "accusation_of_aggression",
    "mobilisation",
    "diplomatic_expulsion",
    "infrastructure_attack",
    "ceasefire_violation",
    "de_escalation",
)
LEVELS = ((80, "critical"), (55, "high"), (30, "elevated"), (0, "low"))
SCORE_STEP = timedelta(minutes=15)

# Text: a Zipf-distributed vocabulary of pseudo-words, with the words people search for
# injected at realistic document frequencies (the share of articles that contain them).
VOCABULARY = 20_000
TOPIC_WORDS_EN = {
    "border": 0.08, "troops": 0.03, "clash": 0.02, "ceasefire": 0.01, "Batken": 0.01,
    "Syunik": 0.005, "drones": 0.005, "Vorukh": 0.002, "Isfara": 0.002, "Lachin": 0.002,
}  # fmt: skip
TOPIC_WORDS_RU = {
    "граница": 0.03, "границе": 0.03, "границы": 0.03, "войска": 0.03, "перестрелка": 0.01,
    "Баткен": 0.01, "Ворух": 0.002,
}  # fmt: skip
SYLLABLES_EN = ("ka", "lo", "mi", "ter", "an", "gro", "vel", "sti", "bu", "ron", "de", "pa")
SYLLABLES_RU = ("ка", "ло", "ми", "тер", "ан", "гро", "вел", "сти", "бу", "рон", "де", "па")


def _vocabulary(rng: random.Random, syllables: tuple[str, ...]) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 5))))
    return sorted(words)


class TextMaker:
    """Titles and summaries: Zipf-distributed words plus topic words."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        total = 0.0
        self.cumulative = []
        for rank in range(VOCABULARY):
            total += 1.0 / (rank + 1)
            self.cumulative.append(total)
        self.words = {"en": _vocabulary(rng, SYLLABLES_EN), "ru": _vocabulary(rng, SYLLABLES_RU)}
        for words in self.words.values():
            rng.shuffle(words)
        self.topics = {"en": TOPIC_WORDS_EN, "ru": TOPIC_WORDS_RU}

    def article(self, language: str) -> tuple[str, str]:
        rng, words = self.rng, self.words[language]
        title = rng.choices(words, cum_weights=self.cumulative, k=rng.randint(6, 10))
        summary = rng.choices(words, cum_weights=self.cumulative, k=rng.randint(30, 50))
        for word, share in self.topics[language].items():
            if rng.random() < share:
                target = title if rng.random() < 0.4 else summary
                target.insert(rng.randrange(len(target) + 1), word)
        return " ".join(title).capitalize(), " ".join(summary) + "."


def _levels(score: float) -> str:
    return next(name for floor, name in LEVELS if score >= floor)


def build(path: Path, *, articles: int, matches: int, alerts: int, contribution_days: float,
          seed: int = 7) -> dict[str, float]:  # fmt: skip
    """Create the database at `path`; returns build timings in seconds."""
    rng = random.Random(seed)
    timings: dict[str, float] = {}
    with db.Store.open(path) as store:
        conn = store.conn
        t0 = time.perf_counter()
        conn.execute("PRAGMA foreign_keys = OFF")  # consistent by construction; faster
        conn.execute("BEGIN IMMEDIATE")
        feeds = [f"feed-{i:02d}" for i in range(40)]
        conn.executemany(
            "INSERT INTO feeds (id, name, configured_url, url, configured, source_weight, "
            "next_check_at, consecutive_failures, last_status, last_polled_at, last_success_at, "
            "polls, not_modified_polls, entries_seen, failing_since, last_error_kind, "
            "last_error_message) VALUES (?, ?, ?, ?, 1, 1.0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f,
                    f"Outlet {i}",
                    f"https://news{i}.example/rss",
                    f"https://news{i}.example/rss",
                    to_iso(END + timedelta(minutes=30)),
                    3 if i < 2 else 0,
                    "error" if i < 2 else "not_modified",
                    to_iso(END),
                    to_iso(END - timedelta(days=2 if i < 2 else 0)),
                    17_520,
                    12_000,
                    articles // 40,
                    to_iso(END - timedelta(hours=30)) if i < 2 else None,
                    "http_status" if i < 2 else None,
                    "HTTP 503" if i < 2 else None,
                )
                for i, f in enumerate(feeds)
            ],
        )

        # Articles in time order (ids grow with time, as they do when polled), about
        # 1.5 articles per story, a third in Russian.
        span = (END - START).total_seconds()
        times = sorted(rng.random() * span for _ in range(articles))
        story_count = max(1, articles * 2 // 3)
        story_rows: list[tuple[Any, ...]] = []
        facts: list[tuple[int, int, str, str, str]] = []  # id, story, title, published, seen
        text = TextMaker(rng)

        def article_rows() -> Iterator[tuple[Any, ...]]:
            for index, offset in enumerate(times):
                published = START + timedelta(seconds=offset)
                story_id = index * story_count // articles + 1
                language = "ru" if index % 3 == 2 else "en"
                title, summary = text.article(language)
                if len(story_rows) < story_id:
                    story_rows.append(
                        (story_id, to_iso(published), to_iso(published), title, language,
                         f"https://news.example/{story_id}", 1, 1.0)
                    )  # fmt: skip
                seen = to_iso(published + timedelta(minutes=rng.randint(1, 40)))
                facts.append((index + 1, story_id, title, to_iso(published), seen))
                yield (
                    index + 1, feeds[index % len(feeds)], f"e{index}", story_id,
                    f"Outlet {index % 40}", f"https://news{index % 40}.example/a/{index}", title,
                    summary, language, to_iso(published), seen, to_iso(published), f"h{index}",
                )  # fmt: skip

        conn.executemany(
            "INSERT INTO articles (id, feed_id, entry_id, story_id, outlet, url, title, summary, "
            "language, published_at, first_seen_at, updated_at, content_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            article_rows(),
        )
        conn.executemany(
            "INSERT INTO stories (id, first_seen_at, published_at, title, language, "
            "canonical_url, sources, source_weight) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            story_rows,
        )
        timings["articles"] = time.perf_counter() - t0

        # Matches: a fifth of the articles have one; a fifth of those are non-events.
        t1 = time.perf_counter()
        picked = rng.sample(range(articles), min(matches, articles))
        match_rows = []
        for match_id, article_index in enumerate(sorted(picked), 1):
            article_id, story_id, title, published, seen = facts[article_index]
            match_rows.append(
                (match_id, article_id, story_id, rng.choice(INDICATORS), rng.choice(THEATRES),
                 rng.choice((0.9, 0.85, 0.75, 0.6, 0.2)), title, '["term"]', "[]", published, seen)
            )  # fmt: skip
        conn.executemany(
            "INSERT INTO matches (id, article_id, story_id, indicator_id, theatre_id, confidence, "
            "evidence, terms, qualifiers, occurred_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            match_rows,
        )

        # Scores: every 15 minutes for a year, a slow random walk with bursts.
        score_rows = []
        steps = int((END - START) / SCORE_STEP)
        for theatre in THEATRES:
            value = 10.0
            for step in range(steps):
                at = START + step * SCORE_STEP
                value = max(0.0, min(100.0, value * 0.999 + rng.gauss(0, 0.6)))
                if rng.random() < 0.0005:
                    value = min(100.0, value + rng.uniform(20, 60))
                score_rows.append(
                    (theatre, to_iso(at), round(value, 3), _levels(value), round(value / 2, 4),
                     0.0, 0.0, 10.0, 0.0, rng.randint(0, 40), "1")
                )  # fmt: skip
        conn.executemany(
            "INSERT INTO scores (theatre_id, at, score, level, raw, change_24h, change_7d, "
            "baseline, surge, stories, methodology_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            score_rows,
        )
        # Contributions of the newest points: every counted match of the 30 days before.
        conn.execute(
            """
            INSERT INTO score_contributions (score_id, match_id, story_id, indicator_id, points)
            SELECT s.id, m.id, m.story_id, m.indicator_id,
                   round(10.0 * m.confidence * (julianday(m.occurred_at) - julianday(s.at) + 31)
                         / 31.0, 4)
            FROM scores s CROSS JOIN matches m ON m.theatre_id = s.theatre_id
             AND m.occurred_at BETWEEN strftime('%Y-%m-%dT%H:%M:%SZ', s.at, '-30 days') AND s.at
             AND m.confidence >= 0.5
            WHERE s.at >= ?
            """,
            (to_iso(END - timedelta(days=contribution_days)),),
        )

        # Alerts (three quarters urgent, with an outbox row) and the runs the daemon keeps.
        kinds = ("level_up", "level_down", "surge", "resolved", "critical", "digest")
        message = ("Subject: [monitor] alert\r\n\r\n" + "x" * 5800).encode()
        alert_rows, outbox_rows = [], []
        for alert_id in range(1, alerts + 1):
            at = START + timedelta(seconds=span * alert_id / (alerts + 1))
            theatre = rng.choice(THEATRES)
            urgent = alert_id % 4 != 0
            alert_rows.append(
                (alert_id, f"k{alert_id}", rng.choice(kinds), theatre, to_iso(at), int(urgent),
                 "high", "elevated", 60.0, 12.0, "entered HIGH", "[]")
            )  # fmt: skip
            if urgent:
                state = "dead" if alert_id % 400 == 1 else "sent"
                outbox_rows.append(
                    (alert_id, alert_id, f"<{alert_id}@monitor>", '["desk@example.org"]',
                     "[monitor] HIGH", message, state, 1, to_iso(at), to_iso(at), to_iso(at),
                     to_iso(at + timedelta(seconds=3)) if state == "sent" else None)
                )  # fmt: skip
        conn.executemany(
            "INSERT INTO alerts (id, dedup_key, kind, theatre_id, created_at, urgent, level, "
            "previous_level, score, change_24h, reason, match_ids) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            alert_rows,
        )
        conn.executemany(
            "INSERT INTO outbox (id, alert_id, message_id, recipients, subject, message, status, "
            "attempts, next_attempt_at, created_at, not_before, sent_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            outbox_rows,
        )
        summary = json.dumps(
            {"feeds": 12, "ok": 3, "not_modified": 8, "errors": 1, "new_articles": 4}
        )
        run_rows = []
        for job, every in (("poll", 60), ("score", 900), ("outbox", 3600)):
            for n in range(1000):
                finished = END - timedelta(seconds=every * n)
                run_rows.append(
                    (job, to_iso(finished - timedelta(seconds=2)), to_iso(finished), 1, summary)
                )
        conn.executemany(
            "INSERT INTO runs (job, started_at, finished_at, ok, summary) VALUES (?, ?, ?, ?, ?)",
            run_rows,
        )
        conn.execute("COMMIT")
        timings["rest"] = time.perf_counter() - t1
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return timings


QUERY_INDEX_PREFIX = "idx_"


def make_baseline(source: Path, target: Path) -> list[str]:
    """Copy `source` to `target` and drop every index we created (not primary keys, not
    the full-text index): the same data with no query indexes."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    conn = sqlite3.connect(target, isolation_level=None)
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ? AND sql IS NOT NULL",
            (QUERY_INDEX_PREFIX + "%",),
        )
    ]
    for name in names:
        conn.execute(f'DROP INDEX "{name}"')
    conn.close()
    return names


# ---------------------------------------------------------------------------
# Measuring


def median_ms(func: Callable[[], Any], *, budget: float = 0.4, most: int = 25) -> float:
    func()  # warm the page cache and the statement cache, as a second run of a command would
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - started < budget and len(samples) < most):
        t = time.perf_counter()
        func()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def cases(store: db.Store, path: Path) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (the db query alone, the whole command body), as the CLI calls them."""
    year: dict[str, Any] = dict(theatre_id="kg-tj", since=START, until=END, every="1d")
    month: dict[str, Any] = dict(
        theatre_id="kg-tj", since=END - timedelta(days=30), until=END, every=None
    )
    policy = status.StatusPolicy()

    def status_query() -> Any:
        return status.assess(
            store, database=str(path), daemon=status.daemon_state(path), now=END, policy=policy
        )

    def latest_point() -> int:
        point = store.score_at("kg-tj", None)
        assert point is not None
        return int(point["id"])

    def articles(**kw: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
        args = dict(theatre_id=None, indicator_id=None, since=None, until=None, search=None)
        args.update(kw)
        return (
            lambda: db.article_match_rows(
                store, [r["id"] for r in db.article_rows(store, **args, limit=100)]
            ),
            lambda: query.articles_report(store, **args, limit=100, fmt="json"),
        )

    return {
        "history, 1 year daily": (
            lambda: db.history_rows(store, **year),
            lambda: query.history_report(store, **year, fmt="json"),
        ),
        "history, 30 days raw": (
            lambda: db.history_rows(store, **month),
            lambda: query.history_report(store, **month, fmt="json"),
        ),
        "explain, latest point": (
            lambda: db.explain_rows(store, latest_point(), limit=query.EXPLAIN_TABLE_ROWS),
            lambda: query.explain_report(store, theatre_id="kg-tj", at=None, fmt="table"),
        ),
        "explain, all, JSON": (
            lambda: db.explain_rows(store, latest_point()),
            lambda: query.explain_report(store, theatre_id="kg-tj", at=None, fmt="json"),
        ),
        "articles: rare word": articles(search="Vorukh"),
        "articles: common word": articles(search="border"),
        "articles: 2 words": articles(search="troops Batken"),
        "articles: word, 30 days": articles(search="clash", since=END - timedelta(days=30)),
        "articles: ru prefix": articles(search="границ*"),
        "articles: word+theatre": articles(search="border", theatre_id="kg-tj"),
        "articles: theatre+ind.": articles(theatre_id="kg-tj", indicator_id="border_clash"),
        "status": (status_query, lambda: status.render_status(status_query(), fmt="json")),
    }


def measure(path: Path) -> dict[str, tuple[float, float]]:
    with db.Store.open(path, readonly=True) as store:
        return {
            name: (median_ms(q), median_ms(full)) for name, (q, full) in cases(store, path).items()
        }


def sizes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    conn.close()
    return {str(name): int(size) for name, size in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=500_000)
    parser.add_argument("--matches", type=int, default=None, help="default: articles / 5")
    parser.add_argument("--alerts", type=int, default=2_000)
    parser.add_argument("--contribution-days", type=float, default=2.0)
    parser.add_argument("--keep", type=Path, help="build in this directory and keep the files")
    args = parser.parse_args(argv)
    matches = args.matches if args.matches is not None else args.articles // 5

    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path, base = folder / "year.db", folder / "baseline.db"
        for stale in (path, base):
            stale.unlink(missing_ok=True)
        t = time.perf_counter()
        build_times = build(
            path,
            articles=args.articles,
            matches=matches,
            alerts=args.alerts,
            contribution_days=args.contribution_days,
        )
        dropped = make_baseline(path, base)
        print(
            f"built {args.articles:,} articles, {matches:,} matches, "
            f"{len(THEATRES) * int((END - START) / SCORE_STEP):,} score points, {args.alerts:,} "
            f"alerts in {time.perf_counter() - t:.1f} s (articles + FTS "
            f"{build_times['articles']:.1f} s); baseline drops {len(dropped)} indexes",
            flush=True,
        )
        indexed, baseline = measure(path), measure(base)

        print(
            f"\n{'query':<24} {'query ms':>9} {'command ms':>11} {'no-index ms':>12} {'ratio':>7}"
        )
        worst = 0.0
        for name, (q_ms, full_ms) in indexed.items():
            base_ms = baseline[name][0]
            worst = max(worst, q_ms)
            print(
                f"{name:<24} {q_ms:>9.1f} {full_ms:>11.1f} {base_ms:>12.1f} {base_ms / q_ms:>6.1f}x"
            )
        print(f"\nslowest query: {worst:.1f} ms (target ≤ 50 ms)")

        size = path.stat().st_size
        parts = sizes(path)
        with db.Store.open(path, readonly=True) as store:
            (contrib_rows,) = store.conn.execute(
                "SELECT count(*) FROM score_contributions"
            ).fetchone()
            (points_with,) = store.conn.execute(
                "SELECT count(DISTINCT score_id) FROM score_contributions"
            ).fetchone()
            (points,) = store.conn.execute("SELECT count(*) FROM scores").fetchone()
        contrib_bytes = parts.get("score_contributions", 0) + parts.get(
            "sqlite_autoindex_score_contributions_1", 0
        )
        print(f"\ndatabase: {size / 2**20:.0f} MiB, {size / args.articles:,.0f} bytes per article")
        biggest = sorted(parts.items(), key=lambda kv: -kv[1])[:8]
        print("  largest: " + ", ".join(f"{n} {s / 2**20:.0f} MiB" for n, s in biggest))
        if points_with:
            per_point = contrib_rows / points_with
            full = contrib_bytes / contrib_rows * per_point * points
            print(
                f"  contributions: {contrib_rows:,} rows for the newest {points_with:,} points "
                f"({per_point:,.0f} per point, {contrib_bytes / contrib_rows:.0f} bytes per row); "
                f"for every point of the year that would be {per_point * points / 1e6:,.0f} M rows, "
                f"{full / 2**30:.1f} GiB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
