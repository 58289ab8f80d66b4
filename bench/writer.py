"""Writer benchmark: the poll's writer alone, on the poll bench's feeds, at two sizes.

`bench/poll.py` measures the whole cycle; its writer thread (store the articles, group
them into stories, store the matches, join stories across languages, record each feed)
shares the cycle with fetching, parsing and matching, so its own cost is hard to read
there. This bench parses and matches the same feeds first (in a process pool, not
timed), then replays `pipeline.record_feed_result` for every feed, one transaction per
batch of 64 feeds as the writer thread does, on a new SQLite file, and times the CPU of
that replay alone.

Printed for each size: CPU per stored article over the whole replay, over its first and
its last tenth, and the garbage collector's share; with `--profile`, the top functions.

Target (issue 17: the per-feed cost at 5,000 feeds within 1.3 x that at 1,000): the
writer's CPU per article at the larger size within 1.3 x that at the smaller one, in
this run. Exit status 1 when missed.

    .venv/bin/python bench/writer.py                      # 1,000 and 5,000 feeds (several minutes)
    .venv/bin/python bench/writer.py --feeds 200,1000     # quicker
    .venv/bin/python bench/writer.py --feeds 1000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pickle
import pstats
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import poll  # (the poll bench's feeds, deployment and corpus; finds monitor)

BATCH = 64  # feeds per transaction, as StoreWriter's DEFAULT_BATCH_JOBS
TARGET_GROWTH = 1.3

_worker_rules: Any = None


def _init_worker(indicators: str, settings: str) -> None:
    global _worker_rules
    from monitor.config import load_config

    _worker_rules = load_config(
        indicators_path=Path(indicators), settings_path=Path(settings), env={}
    ).rules


def _parse(args: tuple[int, int, datetime, str]) -> Any:
    index, feeds, start, feed_id = args
    from monitor.fetch.parse_sandbox import _match_entries, _try_entry_facts
    from monitor.fetch.parser import parse_feed

    texts = _texts()
    body = poll.make_feed(index, feeds, texts, start)
    result = parse_feed(body, feed_id=feed_id, fetched_at=start, headers={})
    return (
        index,
        result,
        _match_entries(result, _worker_rules),
        _try_entry_facts(result, _worker_rules),
    )


_TEXTS: Any = None


def _texts() -> Any:
    global _TEXTS
    if _TEXTS is None:
        _TEXTS = poll.load_texts()
    return _TEXTS


def replay(feeds: int, start: datetime, profile: bool, cache: str | None) -> dict[str, float]:
    from monitor import pipeline
    from monitor.db import Store
    from monitor.fetch.parse_sandbox import article_text
    from monitor.models import FetchResult

    with tempfile.TemporaryDirectory(prefix="bench-writer-") as folder:
        config = poll.write_deployment(Path(folder), feeds, 8080)
        ids = [feed.id for feed in config.feeds]
        began = time.perf_counter()
        cached = Path(cache) / f"writer-{feeds}-{start:%Y%m%d%H%M}.pickle" if cache else None
        if cached is not None and cached.exists():
            parsed = pickle.loads(cached.read_bytes())
        else:
            with ProcessPoolExecutor(
                max_workers=os.cpu_count() or 2,
                initializer=_init_worker,
                initargs=(
                    str(Path(folder) / "indicators.yaml"),
                    str(Path(folder) / "monitor.toml"),
                ),
            ) as pool:
                parsed = sorted(
                    pool.map(
                        _parse,
                        [(i, feeds, start, ids[i]) for i in range(feeds)],
                        chunksize=16,
                    )
                )
            if cached is not None:
                cached.write_bytes(pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
        print(f"  {feeds:,} feeds parsed and matched in {time.perf_counter() - began:.1f} s")
        feeds_by_id = {feed.id: feed for feed in config.feeds}
        with Store.open(config.settings.db_path) as store:
            store.sync_feeds(config.feeds, now=start)
            states = {state.feed_id: state for state in store.due_feeds(now=start)}
            rng = random.Random(1)
            collections = poll.GcPauses(time.process_time)

            # (articles stored, CPU) at the start and after each batch
            marks: list[tuple[int, float]] = [(0, 0.0)]
            summary = pipeline.PollSummary()
            profiler = cProfile.Profile() if profile else None
            gc.callbacks.append(collections.on_gc)
            cpu0 = time.process_time()
            if profiler:
                profiler.enable()
            for first in range(0, feeds, BATCH):
                with store.transaction():
                    for index, result, matches, facts in parsed[first : first + BATCH]:
                        feed = feeds_by_id[ids[index]]
                        fetched = FetchResult(
                            feed_id=feed.id,
                            outcome="ok",
                            http_status=200,
                            fetched_at=start,
                            body=None,
                            etag=f'"{index}"',
                            last_modified=None,
                        )
                        matched = {
                            article_text(entry): found
                            for entry, found in zip(result.entries, matches, strict=True)
                        }
                        pipeline.record_feed_result(
                            store,
                            config,
                            feed,
                            states[feed.id],
                            fetched,
                            result,
                            now=start,
                            rng=rng,
                            summary=summary,
                            matched=matched,
                            facts=facts,
                        )
                marks.append((summary.new_articles, time.process_time() - cpu0))
            if profiler:
                profiler.disable()
            gc.callbacks.remove(collections.on_gc)
            total = time.process_time() - cpu0
            stored = {
                table: int(store.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])
                for table in ("articles", "stories", "matches")
            }
    articles = summary.new_articles
    tenth = max(1, (len(marks) - 1) // 10)  # batches in a tenth of the cycle
    head_n, head_cpu = marks[tenth]
    tail_n = marks[-1][0] - marks[-1 - tenth][0]
    tail_cpu = marks[-1][1] - marks[-1 - tenth][1]
    gc_pauses = collections.pauses
    print(
        f"  {feeds:,} feeds: {articles:,} articles, {stored['stories']:,} stories, "
        f"{stored['matches']:,} matches; writer CPU {total:.1f} s = "
        f"{1000 * total / articles:.3f} ms per article (first tenth "
        f"{1000 * head_cpu / max(head_n, 1):.3f}, last tenth {1000 * tail_cpu / max(tail_n, 1):.3f}); "
        f"garbage collection {sum(gc_pauses):.1f} s ({100 * sum(gc_pauses) / total:.0f} %), "
        f"longest {1000 * max(gc_pauses, default=0):.0f} ms"
    )
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(25)
    return {"per_article": total / articles, "articles": articles, "cpu": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", default="1000,5000", help="comma-separated sizes")
    parser.add_argument("--profile", action="store_true", help="cProfile the replay")
    parser.add_argument(
        "--cache",
        help="folder where parsed feeds are kept between runs (with --start, for profiling)",
    )
    parser.add_argument("--start", help="the run's clock, ISO 8601 (default: now)")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.feeds.split(",")]
    start = (datetime.fromisoformat(args.start) if args.start else datetime.now(UTC)).replace(
        microsecond=0
    )
    print(
        f"writer bench: {', '.join(f'{n:,}' for n in sizes)} feeds of {poll.ITEMS_PER_FEED} "
        f"items; load average {os.getloadavg()[0]:.1f}"
    )
    results = [replay(n, start, args.profile, args.cache) for n in sizes]
    if len(results) < 2:
        return 0
    growth = results[-1]["per_article"] / results[0]["per_article"]
    ok = growth <= TARGET_GROWTH
    print(
        f"per-article writer CPU at {sizes[-1]:,} feeds / at {sizes[0]:,}: {growth:.2f} x "
        f"(target <= {TARGET_GROWTH}): {'met' if ok else 'MISSED'}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
