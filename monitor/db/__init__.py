"""The state database: the only package that writes SQL.

One SQLite file through sqlite-utils, in WAL mode with `synchronous=FULL` (an alert
that was committed survives a crash or a kill -9), a busy timeout, and `BEGIN IMMEDIATE`
for every read-modify-write transaction. Readers (the CLI) open the file read-only
(`mode=ro`), so they can neither block the daemon for long nor change anything. No
`await` runs inside a transaction: the store is synchronous and used from one thread
at a time (the daemon's writer thread has its own connection).

Times are stored as fixed-width UTC text (`2024-09-14T08:30:00Z`), so text order is time
order and the file is readable in the sqlite3 shell or Datasette.

The modules, one per thing stored:

- `schema`: migrations (append-only) and views; `connection`: opening the file;
- `base`: `StoreBase`, the connection, transactions, migrating, `meta`;
- `feeds`, `articles` (and stories), `matches`, `scores` (and contributions),
  `alerts` (alert state, alerts, the outbox), `runs`: one `Store` mixin each;
- `reports`: the read-only queries behind the CLI, the report site, metrics and status;
- `vocabulary`: the theatre ids the database knows, the words of its full-text index;
- `writer`: the poll's single writer thread.
- `retention`: the `[retention]` rules, applied in small batches, never to evidence.

May import: `monitor.models`, `monitor.errors` and the pure story rules
(`monitor.score.stories`). Nothing here imports click, httpx or the pipeline.
"""

from __future__ import annotations

from monitor.db.alerts import AlertStore, OutboxItem
from monitor.db.articles import (
    CROSS_LANGUAGE_CANDIDATES,
    NAMES_CACHE_MAX,
    STORY_WINDOW_DAYS,
    ArticleStore,
    StoredArticle,
)
from monitor.db.connection import BUSY_TIMEOUT_MS, connect
from monitor.db.feeds import FeedStore
from monitor.db.matches import MatchStore
from monitor.db.reports import (
    ARTICLE_LOOKUP_COST,
    HISTORY_BUCKETS,
    STATUS_CYCLE_JOBS,
    alert_message,
    alert_rows,
    article_activity,
    article_match_rows,
    article_rows,
    explain_rows,
    feed_health_rows,
    history_rows,
    indicator_ids,
    last_run_rows,
    metrics_figures,
    newest_score_time,
    outbox_health,
    report_alert_rows,
    story_article_rows,
    top_story_rows,
)
from monitor.db.runs import RunStore
from monitor.db.schema import FEED_HEALTH_SQL, MIGRATIONS, SCHEMA_VERSION
from monitor.db.scores import (
    MAX_STORED_CONTRIBUTIONS,
    MIN_STORED_POINTS,
    ScoreStore,
    stored_contributions,
)
from monitor.db.vocabulary import fts_index_terms, has_theatre, theatre_ids


class Store(FeedStore, ArticleStore, MatchStore, ScoreStore, AlertStore, RunStore):
    """The daemon's (and the CLI's) handle on the database: every part's methods on one
    connection. Open with `Store.open(path, readonly=...)`."""


__all__ = [
    "ARTICLE_LOOKUP_COST",
    "BUSY_TIMEOUT_MS",
    "CROSS_LANGUAGE_CANDIDATES",
    "FEED_HEALTH_SQL",
    "HISTORY_BUCKETS",
    "MAX_STORED_CONTRIBUTIONS",
    "MIGRATIONS",
    "MIN_STORED_POINTS",
    "NAMES_CACHE_MAX",
    "SCHEMA_VERSION",
    "STATUS_CYCLE_JOBS",
    "STORY_WINDOW_DAYS",
    "OutboxItem",
    "Store",
    "StoredArticle",
    "alert_message",
    "alert_rows",
    "article_activity",
    "article_match_rows",
    "article_rows",
    "connect",
    "explain_rows",
    "feed_health_rows",
    "fts_index_terms",
    "has_theatre",
    "history_rows",
    "indicator_ids",
    "last_run_rows",
    "metrics_figures",
    "newest_score_time",
    "outbox_health",
    "report_alert_rows",
    "stored_contributions",
    "story_article_rows",
    "theatre_ids",
    "top_story_rows",
]
