"""Benchmark: story grouping per new article, with 1,000 / 10,000 / 50,000 stories in
the window (issue 17).

One SQLite file is filled through the real `Store.store_entries`, one feed poll per
transaction, with stories published over the last 70 hours (recent dates: every one of
them is inside the ±3-day window of a new article published now). At each size the
same set of new articles is grouped: a third near-duplicates of stored stories (one word
changed, an outlet suffix: they join), the rest new titles (they start a story).

Titles are made of words drawn from a Zipf distribution (P(rank r) ∝ 1/r, the shape of
word frequencies in news text) over a million ranks: the most frequent ranks are the
real words of the labelled corpora (English and Russian, by their frequency there), the
long tail stands for the names, places and numbers that make headlines distinct. 70%
English, 30% Russian, 5-10 words each.

Measured, as CPU time of this process (the host is shared; CPU time is less sensitive
to other load than wall time), median of repeated batches, each batch of 20 articles in
a transaction rolled back afterwards (so every size sees the same articles and the
same state):

- `Store._story_for`, the grouping itself (look-up, and a new story with its index
  entries), per new article;
- `Store.store_entries`, the whole storing of a new article, for context;
- the old grouping, a scan of every story of the language in the window with
  `is_same_story` (the code before the index, kept here as the baseline), on a few of
  the same articles at each size: the speed-up is scan / indexed look-up.

Target: grouping cost per article at 50,000 stories ≤ 1.3 × that at 1,000. Exit status
1 when missed. Run: `.venv/bin/python bench/grouping.py [--sizes 1000,10000,50000]`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import db
from monitor.lab.corpus import load_corpus
from monitor.models import Entry, Feed, from_iso, to_iso
from monitor.score.stories import is_same_story

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "corpus"
RANKS = 1_000_000
BATCH = 20
TARGET = 1.3
FEEDS = [
    Feed(id=f"feed{n}", url=f"https://f{n}.example/rss", name=f"Outlet {n}") for n in range(50)
]


class Vocabulary:
    """Zipf-distributed words of one language: corpus words first, then a long tail."""

    def __init__(self, words: Sequence[str], tag: str, rng: random.Random) -> None:
        self.words = list(words)
        self.tag = tag
        self.rng = rng

    def word(self) -> str:
        # inverse-CDF sampling of P(r) ∝ 1/r over 1..RANKS (approximately): RANKS ** u
        rank = int(RANKS ** self.rng.random())
        if rank <= len(self.words):
            return self.words[rank - 1]
        return f"{self.tag}{rank:x}"

    def title(self) -> str:
        return " ".join(self.word() for _ in range(self.rng.randint(5, 10)))


def corpus_words() -> dict[str, list[str]]:
    counts: dict[str, Counter[str]] = {"en": Counter(), "ru": Counter()}
    for path in sorted(CORPUS.glob("*.jsonl")):
        for item in load_corpus(path):
            if item.lang in counts:
                counts[item.lang].update(re.findall(r"[^\W\d_]+", item.text.casefold()))
    return {lang: [w for w, _ in c.most_common()] for lang, c in counts.items()}


def make_entry(n: int, title: str, language: str, published: datetime, feed: Feed) -> Entry:
    return Entry(
        entry_id=f"e{n}",
        feed_id=feed.id,
        url=None,
        title=title,
        summary="",
        published_at=published,
        language=language,
        content_hash=f"h{n}",
    )


class Workload:
    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        words = corpus_words()
        self.vocab = {
            "en": Vocabulary(words["en"], "x", self.rng),
            "ru": Vocabulary(words["ru"], "ы", self.rng),
        }
        self.now = now
        self.count = 0
        self.stored: list[Entry] = []

    def language(self) -> str:
        return "en" if self.rng.random() < 0.7 else "ru"

    def stored_entry(self) -> tuple[Feed, Entry]:
        language = self.language()
        published = self.now - timedelta(minutes=self.rng.randrange(70 * 60))
        feed = self.rng.choice(FEEDS)
        self.count += 1
        entry = make_entry(self.count, self.vocab[language].title(), language, published, feed)
        self.stored.append(entry)
        return feed, entry

    def new_entries(self, count: int) -> list[tuple[Feed, Entry]]:
        """New articles at `now`: a third near-duplicates of stored titles."""
        result = []
        for n in range(count):
            feed = self.rng.choice(FEEDS)
            if n % 3 == 0 and self.stored:
                base = self.rng.choice(self.stored[:1000])  # present at every size
                words = base.title.split()
                words[self.rng.randrange(len(words))] = self.vocab[base.language].word()
                title = " ".join(words) + " - Wire"
                language = base.language
            else:
                language = self.language()
                title = self.vocab[language].title()
            entry = make_entry(10**9 + n, title, language, self.now, feed)
            result.append((feed, entry))
        return result


def fill(store: db.Store, workload: Workload, target: int) -> float:
    """Store articles until the window holds `target` stories; return the seconds taken."""
    began = time.perf_counter()
    while story_count(store) < target:
        with store.transaction():
            for _ in range(min(500, target - story_count(store))):
                feed, entry = workload.stored_entry()
                store.store_entries(feed, [entry], now=workload.now)
    return time.perf_counter() - began


def story_count(store: db.Store) -> int:
    return int(store.conn.execute("SELECT count(*) FROM stories").fetchone()[0])


def per_article_cpu(
    store: db.Store, items: Sequence[tuple[Feed, Entry]], work: Callable[[Feed, Entry], object]
) -> float:
    """Median CPU seconds per article over batches, each batch rolled back afterwards."""
    samples = []
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        store.conn.execute("BEGIN IMMEDIATE")
        try:
            warm(store, batch)  # a running writer has the window loaded already
            began = time.process_time()
            for feed, entry in batch:
                work(feed, entry)
            samples.append((time.process_time() - began) / len(batch))
        finally:
            store.conn.execute("ROLLBACK")
            # Rolled back behind the store's back: what it remembers must go too (a
            # rollback through `Store.transaction` does this itself).
            store._drop_write_caches()
    return statistics.median(samples)


def warm(store: db.Store, batch: Sequence[tuple[Feed, Entry]]) -> None:
    """Load the story window's days for these entries, as earlier polls would have."""
    titles, _ = store._windows()
    for _, entry in batch:
        titles.load_around(entry.language, entry.published_at, window_days=db.STORY_WINDOW_DAYS)


def scan_story(store: db.Store, entry: Entry) -> int | None:
    """The grouping before the index: every story of the language in the window."""
    low = to_iso(entry.published_at - timedelta(days=db.STORY_WINDOW_DAYS))
    high = to_iso(entry.published_at + timedelta(days=db.STORY_WINDOW_DAYS))
    for story_id, title, language, published in store.conn.execute(
        "SELECT id, title, language, published_at FROM stories "
        "WHERE published_at BETWEEN ? AND ? AND language = ? ORDER BY published_at DESC",
        (low, high, entry.language),
    ):
        if is_same_story(
            entry.title,
            entry.language,
            entry.published_at,
            title,
            language,
            from_iso(published),
            window_days=db.STORY_WINDOW_DAYS,
        ):
            return int(story_id)
    return None


def indexed_story(store: db.Store, entry: Entry) -> int | None:
    from monitor.score.stories import title_fingerprint

    fingerprint = title_fingerprint(entry.title, entry.language)
    return store._indexed_story(fingerprint, entry.language, entry.published_at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--articles", type=int, default=600, help="new articles per size")
    parser.add_argument("--repeat", type=int, default=3, help="passes over them; median")
    parser.add_argument("--scan-seconds", type=float, default=4.0, help="CPU budget of the scan")
    parser.add_argument("--keep", type=Path, help="keep the database in this folder")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    workload = Workload(17, now)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-grouping-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grouping.db"
    path.unlink(missing_ok=True)
    rows = []
    with db.Store.open(path) as store:
        store.sync_feeds(FEEDS, now=now)
        fresh: list[tuple[Feed, Entry]] | None = None
        for size in sizes:
            seconds = fill(store, workload, size)
            if fresh is None:
                fresh = workload.new_entries(args.articles)
            joins = sum(1 for _, e in fresh if indexed_story(store, e) is not None)
            grouping = statistics.median(
                per_article_cpu(store, fresh, lambda f, e: store._story_for(f, e, now=now))
                for _ in range(args.repeat)
            )
            storing = statistics.median(
                per_article_cpu(store, fresh, lambda f, e: store.store_entries(f, [e], now=now))
                for _ in range(args.repeat)
            )
            lookup = statistics.median(
                per_article_cpu(store, fresh, lambda f, e: indexed_story(store, e))
                for _ in range(args.repeat)
            )
            scanned, began = 0, time.process_time()
            agree = True
            for _, entry in fresh:
                agree &= scan_story(store, entry) == indexed_story(store, entry)
                scanned += 1
                if time.process_time() - began > args.scan_seconds:
                    break
            scan = (time.process_time() - began) / scanned
            rows.append((size, grouping, storing, lookup, scan, scanned, joins, agree))
            print(
                f"{size:>6} stories (filled in {seconds:5.1f} s): grouping {grouping * 1e6:7.1f} µs"
                f"/article, store_entries {storing * 1e6:7.1f} µs, look-up {lookup * 1e6:6.1f} µs;"
                f" old scan {scan * 1e3:8.2f} ms ({scanned} articles, same answers: {agree});"
                f" {joins}/{len(fresh)} join a story"
            )
    if args.keep is None:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    print()
    smallest, largest = rows[0], rows[-1]
    for size, grouping, _, lookup, scan, _, _, _ in rows:
        print(
            f"{size:>6} stories: grouping / grouping at {smallest[0]}: {grouping / smallest[1]:.2f};"
            f" speed-up of the look-up against the old scan: {scan / lookup:,.0f}x"
        )
    ratio = largest[1] / smallest[1]
    verdict = "ok" if ratio <= TARGET else "MISSED"
    print(
        f"target: grouping at {largest[0]} <= {TARGET} x at {smallest[0]}: {ratio:.2f}  {verdict}"
    )
    same = all(row[7] for row in rows)
    if not same:
        print("the index and the old scan disagreed on some article: MISSED")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ratio <= TARGET and same else 1


if __name__ == "__main__":
    sys.exit(main())
