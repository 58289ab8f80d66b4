"""Benchmark: retention (`monitor prune`) and `monitor backup` on a year of data.

`.venv/bin/python bench/retention.py [FILE]` (3-5 minutes; FILE defaults to a temporary
one). Builds, straight into the schema, a year of 3 theatres scored every 15 minutes with
10 contributions a point (105,120 points, ~1 M contributions), 60,000 articles (half with
a match that never counted), 2,000 alerts with sent 20 KB emails and 8,000 runs; then
prunes it with the default `[retention]` one day after its last point (a dry run, then
for real, with no pause between batches) and backs it up.

The figure that matters is what a writer can wait behind: the longest batch, and its
ratio to the whole prune (the wait a single-transaction prune would impose).
"""

import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import db
from monitor.db.retention import prune, retention_plan
from monitor.models import RetentionSettings, to_iso
from monitor.service.backup import backup_database

path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "year.db"
path.unlink(missing_ok=True)
rng = random.Random(1)
start = datetime(2025, 1, 1, tzinfo=UTC)
with db.Store.open(path) as store:
    c = store.conn
    c.execute("BEGIN")
    c.execute("INSERT INTO feeds (id, name, url, configured_url) VALUES ('f','f','u','u')")
    n_articles = 60_000
    for i in range(1, n_articles + 1):
        at = to_iso(start + timedelta(minutes=i * 8.76))
        c.execute(
            "INSERT INTO stories (id, first_seen_at, published_at, title) VALUES (?,?,?,?)",
            (i, at, at, f"t{i}"),
        )
        c.execute(
            "INSERT INTO articles (id, feed_id, entry_id, story_id, title, summary, first_seen_at, published_at) VALUES (?,?,?,?,?,?,?,?)",
            (i, "f", f"e{i}", i, f"Title {i} border", "word " * 150, at, at),
        )
        conf = 0.9 if i % 2 else 0.3
        c.execute(
            "INSERT INTO matches (id, article_id, story_id, indicator_id, theatre_id, confidence, evidence, occurred_at, created_at, revision) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                i,
                i,
                i,
                "border_clash",
                ["kg-tj", "am-az", "csto"][i % 3],
                conf,
                "sentence",
                at,
                at,
                i,
            ),
        )
    sid = 0
    for theatre in ["kg-tj", "am-az", "csto"]:
        at = start
        while at < start + timedelta(days=365):
            sid += 1
            c.execute(
                "INSERT INTO scores (id, theatre_id, at, score, level, methodology_version) VALUES (?,?,?,?,?,?)",
                (sid, theatre, to_iso(at), rng.random() * 60, "low", "1"),
            )
            minute = int((at - start).total_seconds() // 60)
            base = max(1, minute // 9)  # the articles of the last days
            for k in range(10):
                m = max(1, min(n_articles, base - k * 40)) | 1  # counted (odd) matches
                c.execute(
                    "INSERT OR IGNORE INTO score_contributions VALUES (?,?,?,?,?)",
                    (sid, m, m, "border_clash", 1.0),
                )
            at += timedelta(minutes=15)
    for a in range(1, 2001):
        at = start + timedelta(hours=a * 4)
        c.execute(
            "INSERT INTO alerts (id, dedup_key, kind, theatre_id, created_at, urgent, match_ids, score_id) VALUES (?,?,?,?,?,1,?,?)",
            (a, f"k{a}", "level_up", "kg-tj", to_iso(at), f"[{a * 29 | 1}]", a * 17),
        )
        c.execute(
            "INSERT INTO outbox (alert_id, message_id, status, created_at, sent_at, message) VALUES (?,?,?,?,?,?)",
            (a, f"<{a}>", "sent", to_iso(at), to_iso(at), b"x" * 20000),
        )
    for r in range(8000):
        at = start + timedelta(minutes=r * 60)
        c.execute(
            "INSERT INTO runs (job, started_at, finished_at, ok) VALUES (?,?,?,1)",
            (["poll", "score"][r % 2], to_iso(at), to_iso(at)),
        )
    # rows inserted by hand: indexed in one go, as the writer indexes what it stores
    c.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")
    c.execute("COMMIT")
    print(
        "rows",
        {
            t: c.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ["scores", "score_contributions", "articles", "matches", "alerts", "runs"]
        },
    )
print("size MB", round(path.stat().st_size / 1e6, 1))
now = start + timedelta(days=366)
for label in ("dry", "real"):
    with db.Store.open(path) as store:
        plan = retention_plan(RetentionSettings(), now=now, baseline_days=28)
        t = time.monotonic()
        longest = [0.0]
        last = [t]

        def step(_, longest=longest, last=last):
            longest[0] = max(longest[0], time.monotonic() - last[0])
            last[0] = time.monotonic()

        r = prune(store, plan, dry_run=(label == "dry"), pause_seconds=0, on_step=step)
        total = time.monotonic() - t
        print(
            label,
            r.rows,
            "batches",
            r.batches,
            "seconds",
            round(total, 1),
            "longest batch s",
            round(longest[0], 3),
            "longest/total",
            round(longest[0] / total, 4),
        )
        print(
            "left",
            {
                t: store.conn.execute(f"select count(*) from {t}").fetchone()[0]
                for t in ["scores", "score_contributions", "matches"]
            },
        )
t = time.monotonic()
out = path.with_name(path.stem + "-backup.db")
out.unlink(missing_ok=True)
res = backup_database(path, out)
print("backup MB", round(res.size_bytes / 1e6, 1), "seconds", round(res.seconds, 2))
