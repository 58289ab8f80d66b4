"""Benchmark: the CLI's query commands, each run as a whole process, on a year of data.

Builds (fast: `executemany` in one transaction, not through `Store.store_entries`) a
database of a year of heavy use ENDING NOW (the clock at bench time, floored to the
15-minute step), so `--since 365d` and `--since 30d` are full: 5 theatres scored every
15 minutes (about 175,700 score points), 500,000 articles (English and Russian, with
full-text search), 100,000 matches, 2,000 alerts with their outbox rows (messages of
realistic size), the runs the daemon keeps (1,000 per job after pruning) and score
contributions for the newest points (every counted match of the last 30 days, as an
upper bound of what the scoring keeps).

Then runs each command the way an operator does, `python -m monitor --db FILE …` in a
fresh process (interpreter start, imports, configuration, query, rendering, output),
in a directory with no `indicators.yaml` and no `MONITOR_*` variables (the built-in
configuration), with byte code cached (in a temporary directory) as in an installation. The commands are run round-robin, `--runs` times each, and the median
wall time of each counts, so a burst of load on the shared machine hits every command
alike. Baselines measured in the same rounds:

- `python -c pass`: the interpreter's own start, the floor of any command;
- `python -c "import sqlite3; …"`: open the database read-only and run one indexed
  query in a fresh process, the floor of a query command.

Prints each command's median wall time, its median CPU time (user + system: what the
load of a shared machine inflates least), the wall time's ratio to both baselines, and
its target, issue 17's: every query command ≤ 300 ms, `monitor --help` (and a command's
own `--help`) ≤ 150 ms, as a whole process. A command misses its target when its median
wall time or its median CPU time is over it (the CPU time alone says what the code costs
on a busy machine; the wall time is what the operator waits, on a quiet one). Exits 1
when a command misses its target, 2 when one fails. `check-config` is timed too but has
no target: it is not a query, and compiling the watch list's patterns is its job.

Run: `.venv/bin/python bench/query.py [--articles N] [--runs N] [--keep DIR] [--before DIR]`.
With `--keep DIR` the database is built there and reused by later runs on the same day
with the same options (a build takes 2–4 minutes; a reused one gets this monitor's
migrations first, as the daemon's start would give it). `--before DIR` also times another
copy of the package (`git archive REV monitor indicators.yaml | tar -x -C DIR`) in the
same rounds; when that copy is older than the database's schema it reads a copy of the
database whose `schema_migrations` stops at its version (made once, beside the database).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import db
from monitor.models import to_iso

BUILD_META_KEY = "bench_query_build"
TARGET_MS = 300.0
HELP_TARGET_MS = 150.0


def build_key(*, end: datetime, articles: int, matches: int, alerts: int, seed: int) -> str:
    """What a built database holds: reused only when every part is the same and its data
    ends on the same (UTC) day."""
    return json.dumps(
        {"day": end.date().isoformat(), "articles": articles, "matches": matches,
         "alerts": alerts, "seed": seed, "days": DAYS}, sort_keys=True,
    )  # fmt: skip


DAYS = 365
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


def data_end(now: datetime) -> datetime:
    """The last score point of the data: `now` floored to the 15-minute step, so a year
    back from the moment a command runs is all data."""
    step = int(SCORE_STEP.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)


def build(path: Path, *, end: datetime, articles: int, matches: int, alerts: int,
          contribution_days: float, seed: int = 7) -> dict[str, float]:  # fmt: skip
    """Create the database at `path`, its data ending at `end` and starting a year (and a
    day, so `--since 365d` is full whatever the hour) before; returns build timings in
    seconds."""
    start = end - timedelta(days=DAYS + 1)
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
                    to_iso(end + timedelta(minutes=30)),
                    3 if i < 2 else 0,
                    "error" if i < 2 else "not_modified",
                    to_iso(end),
                    to_iso(end - timedelta(days=2 if i < 2 else 0)),
                    17_520,
                    12_000,
                    articles // 40,
                    to_iso(end - timedelta(hours=30)) if i < 2 else None,
                    "http_status" if i < 2 else None,
                    "HTTP 503" if i < 2 else None,
                )
                for i, f in enumerate(feeds)
            ],
        )

        # Articles in time order (ids grow with time, as they do when polled), about
        # 1.5 articles per story, a third in Russian.
        span = (end - start).total_seconds()
        times = sorted(rng.random() * span for _ in range(articles))
        story_count = max(1, articles * 2 // 3)
        story_rows: list[tuple[Any, ...]] = []
        facts: list[tuple[int, int, str, str, str]] = []  # id, story, title, published, seen
        text = TextMaker(rng)

        def article_rows() -> Iterator[tuple[Any, ...]]:
            for index, offset in enumerate(times):
                published = start + timedelta(seconds=offset)
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
        # The writer indexes each article it stores (migration 12); rows inserted by hand
        # are indexed in one go.
        conn.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")
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
        steps = int((end - start) / SCORE_STEP)
        for theatre in THEATRES:
            value = 10.0
            for step in range(steps + 1):
                at = start + step * SCORE_STEP
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
            (to_iso(end - timedelta(days=contribution_days)),),
        )

        # Alerts (three quarters urgent, with an outbox row) and the runs the daemon keeps.
        kinds = ("level_up", "level_down", "surge", "resolved", "critical", "digest")
        message = ("Subject: [monitor] alert\r\n\r\n" + "x" * 5800).encode()
        alert_rows, outbox_rows = [], []
        for alert_id in range(1, alerts + 1):
            at = start + timedelta(seconds=span * alert_id / (alerts + 1))
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
                finished = end - timedelta(seconds=every * n)
                run_rows.append(
                    (job, to_iso(finished - timedelta(seconds=2)), to_iso(finished), 1, summary)
                )
        conn.executemany(
            "INSERT INTO runs (job, started_at, finished_at, ok, summary) VALUES (?, ?, ?, ?, ?)",
            run_rows,
        )
        store.set_meta(BUILD_META_KEY, build_key(end=end, articles=articles, matches=matches,
                                                 alerts=alerts, seed=seed))  # fmt: skip
        conn.execute("COMMIT")
        timings["rest"] = time.perf_counter() - t1
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return timings


# ---------------------------------------------------------------------------
# Measuring: whole commands as processes


@dataclass(frozen=True)
class Command:
    name: str
    argv: tuple[str, ...]  # after `python`
    target_ms: float | None  # None: a baseline
    ok_exits: tuple[int, ...] = (0,)
    pythonpath: str | None = None  # another copy of monitor to run (--before)
    untargeted: str | None = None  # a monitor command timed without a target: why


def with_before(cases: list[Command], before: list[Command], source: Path) -> list[Command]:
    """Each monitor command twice: as installed, then (from `before`, the same commands on
    the database that copy reads) from the copy of the package at `source` (no target: a
    comparison in the same rounds)."""
    twins = []
    for case, old in zip(cases, before, strict=True):
        twins.append(case)
        if case.target_ms is not None or case.untargeted is not None:
            twins.append(
                Command(f"{case.name} [before]", old.argv, None, case.ok_exits, str(source))
            )
    return twins


def before_database(path: Path, source: Path) -> Path:
    """The database the `--before` copy of monitor at `source` reads: `path` itself when
    that copy knows its schema; else a copy beside it whose `schema_migrations` stops at
    the copy's version (made once per build). The newer migrations' tables, triggers and
    indexes stay in it: the older code's queries do not use them, and they only ever make
    the before figures better, never worse."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    known = int(
        subprocess.run(
            [sys.executable, "-c", "from monitor.db.schema import SCHEMA_VERSION as v; print(v)"],
            env=env, cwd=source, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    with db.Store.open(path, readonly=True) as store:
        version, key = store.schema_version(), store.get_meta(BUILD_META_KEY)
    if version <= known:
        return path
    copy = path.with_name(f"{path.stem}-schema-{known}{path.suffix}")
    if copy.exists():
        with db.Store.open(copy, readonly=True) as store:
            if store.get_meta(BUILD_META_KEY) == key and store.schema_version() == known:
                return copy
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute("DELETE FROM schema_migrations WHERE version > ?", (known,))
    conn.close()
    return copy


def commands(path: Path) -> list[Command]:
    """The commands timed, each as an operator types it (default table output)."""
    at = str(path)
    uri = path.resolve().as_uri() + "?mode=ro"
    probe = (
        "import sqlite3; c = sqlite3.connect(" + repr(uri) + ", uri=True); "
        "c.execute(\"SELECT max(at) FROM scores WHERE theatre_id = 'kg-tj'\").fetchall()"
    )

    def run(
        name: str, *args: str, target: float = TARGET_MS, exits: tuple[int, ...] = (0,)
    ) -> Command:
        return Command(name, ("-m", "monitor", *args), target, exits)

    return [
        Command("python -c pass", ("-c", "pass"), None),
        Command("python: sqlite3 open + query", ("-c", probe), None),
        run("monitor --help", "--help", target=HELP_TARGET_MS),
        run("history --help", "history", "--help", target=HELP_TARGET_MS),
        run("history --since 365d --every 1d", "--db", at, "history", "--since", "365d", "--every", "1d"),
        run("history -t kg-tj --since 365d --every 1d", "--db", at, "history", "-t", "kg-tj", "--since", "365d", "--every", "1d"),
        run("history --every 1h (30 days)", "--db", at, "history", "--every", "1h"),
        run("history -t kg-tj (30 days raw)", "--db", at, "history", "-t", "kg-tj"),
        run("history --format csv (30 days raw)", "--db", at, "history", "--format", "csv"),
        run("explain -t kg-tj", "--db", at, "explain", "-t", "kg-tj"),
        run("explain -t kg-tj --format json", "--db", at, "explain", "-t", "kg-tj", "--format", "json"),
        run("articles", "--db", at, "articles"),
        run("articles --search Vorukh", "--db", at, "articles", "--search", "Vorukh"),
        run("articles --search border", "--db", at, "articles", "--search", "border"),
        run("articles --search 'границ*'", "--db", at, "articles", "--search", "границ*"),
        run("articles -t kg-tj -i border_clash", "--db", at, "articles", "-t", "kg-tj", "-i", "border_clash"),
        run("alerts", "--db", at, "alerts"),
        run("alerts --status dead", "--db", at, "alerts", "--status", "dead"),
        run("feeds", "--db", at, "feeds"),
        # 0 ok, 1 degraded (the data has failing feeds), 2 down (a reused build's last
        # cycle is hours old): each is a full answer.
        run("status", "--db", at, "status", exits=(0, 1, 2)),
        Command("check-config", ("-m", "monitor", "check-config"), None,
                untargeted="(no target: not a query)"),
    ]  # fmt: skip


def clean_environment(pycache: Path) -> dict[str, str]:
    """This environment without MONITOR_* settings (every command runs on defaults), and
    with byte-code caching on, into `pycache`: an installed monitor runs from compiled
    byte code, and a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every
    module from source at every command (0.2-0.3 s), which is not what an operator sees."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


class CommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Timing:
    wall_ms: float  # what the operator waits
    cpu_ms: float  # user + system time of the process: what load on the machine inflates least


def run_once(command: Command, *, cwd: Path, env: dict[str, str]) -> Timing:
    """One run of `command` in a fresh process: its wall time and its CPU time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        if command.pythonpath is not None:
            env = {**env, "PYTHONPATH": command.pythonpath}
        child = subprocess.Popen([sys.executable, *command.argv], cwd=cwd, env=env,
                                 stdout=out, stderr=err)  # fmt: skip
        _, wait_status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(wait_status)
        out.seek(0)
        err.seek(0)
        printed = out.read().strip()
        expects_output = command.argv[:2] == ("-m", "monitor")
        if child.returncode not in command.ok_exits or (expects_output and not printed):
            raise CommandFailed(
                f"{command.name}: exit {child.returncode}: "
                f"{err.read().decode(errors='replace')[-500:]}"
            )
    return Timing(elapsed * 1000, (usage.ru_utime + usage.ru_stime) * 1000)


def measure(
    cases: Sequence[Command], *, runs: int, cwd: Path, env: dict[str, str]
) -> dict[str, Timing]:
    """name -> median wall and CPU milliseconds of `runs` runs, the commands taken
    round-robin."""
    samples: dict[str, list[Timing]] = {c.name: [] for c in cases}
    for case in cases:  # one unmeasured run each: the page cache, as on a used machine
        run_once(case, cwd=cwd, env=env)
    for _ in range(runs):
        for case in cases:
            samples[case.name].append(run_once(case, cwd=cwd, env=env))
    return {
        name: Timing(
            statistics.median(t.wall_ms for t in values),
            statistics.median(t.cpu_ms for t in values),
        )
        for name, values in samples.items()
    }


def report(cases: Sequence[Command], medians: dict[str, Timing]) -> list[str]:
    """Print the table; return the names of the commands that missed their target."""
    floor = medians[cases[0].name].wall_ms
    query_floor = medians[cases[1].name].wall_ms
    print(
        f"\n{'command':<52} {'wall ms':>8} {'CPU ms':>7} {'× python':>9} {'× sqlite3':>10}  target"
    )
    missed = []
    for case in cases:
        wall, cpu = medians[case.name].wall_ms, medians[case.name].cpu_ms
        if case.pythonpath is not None:
            verdict = "(before)"
        elif case.untargeted is not None:
            verdict = case.untargeted
        elif case.target_ms is None:
            verdict = "(baseline)"
        else:
            over = [what for what, ms in (("wall", wall), ("CPU", cpu)) if ms > case.target_ms]
            verdict = f"≤ {case.target_ms:.0f} ms " + (
                f"MISSED ({' and '.join(over)})" if over else "ok"
            )
            if over:
                missed.append(case.name)
        print(
            f"{case.name:<52} {wall:>8.0f} {cpu:>7.0f} {wall / floor:>8.1f}x "
            f"{wall / query_floor:>9.1f}x  {verdict}"
        )
    return missed


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def ensure_database(path: Path, args: argparse.Namespace, *, end: datetime) -> str:
    """Build the database at `path` unless the one there holds this data, ending today."""
    key = build_key(end=end, articles=args.articles, matches=args.matches, alerts=args.alerts,
                    seed=args.seed)  # fmt: skip
    if path.exists():
        try:
            with db.Store.open(path, readonly=True) as store:
                if store.get_meta(BUILD_META_KEY) == key:
                    return "reused"
        except Exception:  # any doubt: rebuild
            pass
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    began = time.perf_counter()
    times = build(path, end=end, articles=args.articles, matches=args.matches,
                  alerts=args.alerts, contribution_days=args.contribution_days, seed=args.seed)  # fmt: skip
    return (
        f"built in {time.perf_counter() - began:.0f} s (articles + full-text index "
        f"{times['articles']:.0f} s)"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=500_000)
    parser.add_argument("--matches", type=int, default=None, help="default: articles / 5")
    parser.add_argument("--alerts", type=int, default=2_000)
    parser.add_argument("--contribution-days", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=7, help="runs of each command; median")
    parser.add_argument("--keep", type=Path, help="build in this directory, keep and reuse it")
    parser.add_argument(
        "--before",
        type=Path,
        help="a directory holding another version of the `monitor` package (e.g. from "
        "`git archive`): its commands are timed too, in the same rounds",
    )
    args = parser.parse_args(argv)
    if args.matches is None:
        args.matches = args.articles // 5
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    end = data_end(datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "year.db"
        how = ensure_database(path, args, end=end)
        # a database reused from an older build gets this monitor's migrations, as the
        # daemon's first start would give it
        db.Store.open(path).close()
        with db.Store.open(path, readonly=True) as store:
            (last,) = store.conn.execute("SELECT max(at) FROM scores").fetchone()
        print(
            f"database: {args.articles:,} articles, {args.matches:,} matches, "
            f"{len(THEATRES)} theatres × a year of 15-minute scores ending {last}, "
            f"{args.alerts:,} alerts; {path.stat().st_size / 2**20:,.0f} MiB; {how}"
        )
        print(f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
              f"{os.cpu_count()} CPUs; load average at start: {load()}")  # fmt: skip
        cases = commands(path)
        if args.before is not None:
            source = args.before.resolve()
            old = before_database(path, source)
            if old != path:
                print(f"--before reads {old.name}: a copy at its schema version")
            cases = with_before(cases, commands(old), source)
        cwd = Path(tmp) / "cwd"  # no indicators.yaml here: the built-in configuration
        cwd.mkdir(exist_ok=True)
        try:
            env = clean_environment(Path(tmp) / "pycache")
            medians = measure(cases, runs=args.runs, cwd=cwd, env=env)
        except CommandFailed as exc:
            print(f"FAILED: {exc}")
            return 2
        missed = report(cases, medians)
        print(f"\nload average at end: {load()}; median of {args.runs} runs each")
        if missed:
            print(f"MISSED: {', '.join(missed)}")
            return 1
        print("every command within its target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
