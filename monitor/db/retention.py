"""Retention: old data removed in small transactions, evidence never.

The rules (`[retention]` in monitor.toml, `RetentionSettings`; docs/operations.md):

- `score_points`: every point younger than `score_full_days` stays. Older, each theatre's
  points are downsampled to one hour (until `score_hourly_days`), then to one day: of each
  period the **peak** point (the highest score; the later one on a tie) and the **last**
  point stay, with their own contributions untouched; the other points go, with theirs.
  No point is averaged or rewritten, so each kept point is one the scorer really stored and
  `monitor explain` tells the same story for it as before; the period's peak and the level
  it ended on (`history --every`, the `daily_scores` view) are unchanged. A point an alert
  refers to (`alerts.score_id`) is never removed. The full-resolution stage is never
  shorter than what the scorer reads back (its baseline and 24 h/7 d changes).
- `uncounted_matches`: matches below the event confidence (denials, hypotheticals, old
  events, withdrawn ones) older than `uncounted_match_days`, unless a kept point's
  contributions or an alert name them. The match with the highest revision stays (the
  next match's revision is counted from it).
- `article_text`: the summary text of articles first seen more than `article_text_days`
  ago, unless one of their matches is evidence (of a kept point or of an alert). The row,
  its title, link, story and content hash stay: the feed's item is still known (never
  stored again) and every match keeps its article.
- `sent_emails`: the body of an email sent more than `sent_email_days` ago (the alert
  row, subject, Message-ID and delivery record stay). Pending and dead ones are kept.
- `runs`: the job log older than `run_days`, and beyond the newest `KEEP_RUNS_PER_JOB`
  of a job; each job's newest run always stays (`monitor status` reads it).

Runs in the order above (points first: what only a removed point needed is no longer
evidence). Each rule works in batches: candidates are read outside any transaction, then
one `BEGIN IMMEDIATE` transaction changes at most `batch_rows` rows, re-checking every
condition, and commits. `prune_steps` yields after each batch, so the daemon's event
loop (polling, scoring) runs between them and a writer in another process waits at most
one batch.

Owns: the retention SQL. Must not: hold a transaction across batches, touch evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from monitor.models import EVENT_CONFIDENCE, RetentionSettings, to_iso

if TYPE_CHECKING:
    from monitor.db import Store

RULES = ("score_points", "uncounted_matches", "article_text", "sent_emails", "runs")
RULE_UNITS = {
    "score_points": "score points (with their contributions)",
    "uncounted_matches": "matches that never counted",
    "article_text": "article texts",
    "sent_emails": "sent email bodies",
    "runs": "job log rows",
}
KEEP_RUNS_PER_JOB = 1000  # the job log's cap whatever its age (a poll round a minute)
# Points per score batch: each may carry up to MAX_STORED_CONTRIBUTIONS (30) contribution
# rows, so `batch_rows` points could be 15,000 rows; this keeps a batch near batch_rows.
CONTRIBUTIONS_PER_POINT = 20
SLICE = timedelta(days=7)  # score points are examined one theatre-week at a time
# Between two batches: long enough for a writer of another process, whose busy handler
# sleeps between tries, to take the write lock (SQLite's locks are not queued).
PRUNE_PAUSE_SECONDS = 0.05


def scorer_lookback_days(baseline_days: int) -> int:
    """The days of score history the scorer reads back (pipeline.score_theatres: its
    baseline of whole days and the 24 h/7 d changes), plus a day of margin."""
    return max(baseline_days, 8) + 2


@dataclass(frozen=True)
class RetentionPlan:
    """The cutoffs of one prune run (None: that rule is off)."""

    now: datetime
    batch_rows: int
    score_full_before: datetime | None
    score_hourly_before: datetime | None  # before it, daily; None: no daily stage
    uncounted_match_before: datetime | None
    article_text_before: datetime | None
    sent_email_before: datetime | None
    run_before: datetime | None
    score_full_days: int  # in effect (may be raised to the scorer's lookback)
    score_full_days_raised_from: int | None = None

    def describe(self) -> list[str]:
        """One line per rule, for `monitor prune`."""

        def age(cutoff: datetime | None) -> str:
            return "off (kept for ever)" if cutoff is None else f"before {to_iso(cutoff)}"

        full = age(self.score_full_before)
        if self.score_full_days_raised_from is not None:
            full += (
                f" ({self.score_full_days} days: raised from score_full_days = "
                f"{self.score_full_days_raised_from}, the scorer reads that far back)"
            )
        daily = (
            f"; daily before {to_iso(self.score_hourly_before)}"
            if self.score_hourly_before is not None
            else ""
        )
        return [
            f"score_points: downsampled {full}{daily if self.score_full_before else ''}",
            f"uncounted_matches: {age(self.uncounted_match_before)}",
            f"article_text: {age(self.article_text_before)}",
            f"sent_emails: {age(self.sent_email_before)}",
            f"runs: {age(self.run_before)}",
        ]


def retention_plan(
    settings: RetentionSettings, *, now: datetime, baseline_days: int
) -> RetentionPlan:
    """The cutoffs for `now`. Score cutoffs fall on UTC midnights, so no hour or day is
    split between two stages."""
    now = now.astimezone(UTC)

    def before(days: int) -> datetime | None:
        return None if days == 0 else now - timedelta(days=days)

    def midnight(days: int) -> datetime | None:
        moment = before(days)
        if moment is None:
            return None
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)

    full_days = settings.score_full_days
    raised_from = None
    floor = scorer_lookback_days(baseline_days)
    if full_days != 0 and full_days < floor:
        raised_from, full_days = full_days, floor
    hourly_days = settings.score_hourly_days
    if hourly_days != 0:
        hourly_days = max(hourly_days, full_days)
    return RetentionPlan(
        now=now,
        batch_rows=settings.batch_rows,
        score_full_before=midnight(full_days),
        score_hourly_before=midnight(hourly_days) if full_days else None,
        uncounted_match_before=before(settings.uncounted_match_days),
        article_text_before=before(settings.article_text_days),
        sent_email_before=before(settings.sent_email_days),
        run_before=before(settings.run_days),
        score_full_days=full_days,
        score_full_days_raised_from=raised_from,
    )


@dataclass
class PruneStep:
    """One committed batch (or, in a dry run, one batch of candidates)."""

    rule: str
    rows: int


@dataclass
class PruneResult:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    batches: int = 0
    stopped: bool = False  # `should_stop` said so before the end

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def prune(
    store: Store,
    plan: RetentionPlan,
    *,
    dry_run: bool = False,
    pause_seconds: float = PRUNE_PAUSE_SECONDS,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[PruneStep], None] | None = None,
) -> PruneResult:
    """Apply (or, with `dry_run`, count) every rule; the synchronous form of `prune_steps`,
    pausing `pause_seconds` after each committed batch."""
    result = PruneResult()
    for step in prune_steps(store, plan, dry_run=dry_run):
        result.rows[step.rule] += step.rows
        result.batches += 1
        if on_step is not None:
            on_step(step)
        if should_stop():
            result.stopped = True
            break
        if not dry_run and pause_seconds > 0:
            time.sleep(pause_seconds)
    return result


def prune_steps(store: Store, plan: RetentionPlan, *, dry_run: bool = False) -> Iterator[PruneStep]:
    """Each rule's batches in turn; a step is yielded after each committed transaction
    (no transaction is open while the caller holds the step)."""
    pruner = _Pruner(store, plan, dry_run=dry_run)
    yield from pruner.score_points()
    yield from pruner.uncounted_matches()
    yield from pruner.article_text()
    yield from pruner.sent_emails()
    yield from pruner.runs()


class _Pruner:
    def __init__(self, store: Store, plan: RetentionPlan, *, dry_run: bool) -> None:
        self.store = store
        self.conn = store.conn
        self.plan = plan
        self.dry_run = dry_run
        self.batch = plan.batch_rows
        # Matches named by alerts (their evidence), kept up to date batch by batch.
        self._alert_matches: set[int] = set()
        self._alert_articles: set[int] = set()
        self._alerts_seen = 0

    # -- helpers ---------------------------------------------------------------

    def _apply(self, rule: str, ids: Sequence[int], write: Callable[[list[int]], int]) -> PruneStep:
        """One batch: count it (dry run) or change it in one short write transaction."""
        if self.dry_run:
            return PruneStep(rule, len(ids))
        with self.store.transaction():
            rows = write(list(ids))
        self.store._drop_write_caches()  # what grouping remembers may name what went
        return PruneStep(rule, rows)

    def _candidates(
        self, sql: str, params: Sequence[object], *, before_each: Callable[[], None] | None = None
    ) -> Iterator[list[int]]:
        """The ids `sql` selects, a batch at a time in id order (keyset pagination: `sql`
        takes the last id seen as its first parameter and the batch size as its last)."""
        after = 0
        while True:
            if before_each is not None:
                before_each()
            rows = self.conn.execute(sql, (after, *params, self.batch)).fetchall()
            if not rows:
                return
            after = int(rows[-1][0])
            yield [int(row[0]) for row in rows]

    def _refresh_alert_evidence(self) -> None:
        """Add the evidence of alerts recorded since the last look (inside or outside a
        transaction: inside, no alert can appear before the batch commits)."""
        rows = self.conn.execute(
            "SELECT al.id, j.value FROM alerts al, json_each(coalesce(al.match_ids, '[]')) j "
            "WHERE al.id > ? ORDER BY al.id",
            (self._alerts_seen,),
        ).fetchall()
        new_ids = {int(value) for _, value in rows if isinstance(value, int)}
        last = self.conn.execute("SELECT max(id) FROM alerts").fetchone()[0]
        self._alerts_seen = max(self._alerts_seen, int(last or 0))
        new_ids -= self._alert_matches
        if not new_ids:
            return
        self._alert_matches |= new_ids
        ids = sorted(new_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            self._alert_articles.update(
                int(row[0])
                for row in self.conn.execute(
                    f"SELECT article_id FROM matches WHERE id IN ({_marks(chunk)})", chunk
                )
            )

    # -- score points ----------------------------------------------------------

    def score_points(self) -> Iterator[PruneStep]:
        plan = self.plan
        if plan.score_full_before is None:
            return
        points_per_batch = max(1, self.batch // CONTRIBUTIONS_PER_POINT)
        theatres = [
            str(row[0]) for row in self.conn.execute("SELECT DISTINCT theatre_id FROM scores")
        ]
        for theatre_id in theatres:
            first = self.conn.execute(
                "SELECT min(at) FROM scores WHERE theatre_id = ?", (theatre_id,)
            ).fetchone()[0]
            if first is None or first >= to_iso(plan.score_full_before):
                continue
            for lo, hi, width in self._slices(str(first)):
                ids = self._downsampled_away(theatre_id, lo, hi, width)
                for start in range(0, len(ids), points_per_batch):
                    chunk = ids[start : start + points_per_batch]
                    yield self._apply("score_points", chunk, self._delete_points)

    def _slices(self, first: str) -> Iterator[tuple[str, str, int]]:
        """[lo, hi) week slices from the day of `first` up to the full-resolution cutoff,
        cut at the hourly/daily boundary; `width` is the period's prefix of `at` (13
        characters: the hour, 10: the day)."""
        plan = self.plan
        assert plan.score_full_before is not None
        start = datetime.fromisoformat(first[:10]).replace(tzinfo=UTC)
        end = plan.score_full_before
        boundary = plan.score_hourly_before
        while start < end:
            stop = min(start + SLICE, end)
            if boundary is not None and start < boundary < stop:
                stop = boundary
            daily = boundary is not None and stop <= boundary
            yield to_iso(start), to_iso(stop), 10 if daily else 13
            start = stop

    def _downsampled_away(self, theatre_id: str, lo: str, hi: str, width: int) -> list[int]:
        """The points of [lo, hi) that are neither their period's peak nor its last, nor
        named by an alert."""
        named = {
            int(row[0])
            for row in self.conn.execute("SELECT score_id FROM alerts WHERE score_id IS NOT NULL")
        }
        return [
            int(row[0])
            for row in self.conn.execute(
                """
                SELECT id FROM (
                  SELECT id,
                    row_number() OVER (PARTITION BY substr(at, 1, :width)
                                       ORDER BY score DESC, at DESC) AS by_peak,
                    row_number() OVER (PARTITION BY substr(at, 1, :width)
                                       ORDER BY at DESC) AS by_time
                  FROM scores WHERE theatre_id = :theatre AND at >= :lo AND at < :hi
                ) WHERE by_peak > 1 AND by_time > 1
                ORDER BY id
                """,
                {"width": width, "theatre": theatre_id, "lo": lo, "hi": hi},
            )
            if int(row[0]) not in named
        ]

    def _delete_points(self, ids: list[int]) -> int:
        marks = _marks(ids)
        # Re-checked inside the transaction: an alert may have named a point since.
        keep = {
            int(row[0])
            for row in self.conn.execute(
                f"SELECT score_id FROM alerts WHERE score_id IN ({marks})", ids
            )
        }
        ids = [i for i in ids if i not in keep]
        if not ids:
            return 0
        marks = _marks(ids)
        self.conn.execute(f"DELETE FROM score_contributions WHERE score_id IN ({marks})", ids)
        return self.conn.execute(f"DELETE FROM scores WHERE id IN ({marks})", ids).rowcount

    # -- matches that never counted ----------------------------------------------

    def uncounted_matches(self) -> Iterator[PruneStep]:
        cutoff = self.plan.uncounted_match_before
        if cutoff is None:
            return
        batches = self._candidates(
            """
            SELECT m.id FROM matches m
            WHERE m.id > ? AND m.confidence < ? AND m.created_at < ?
              AND NOT EXISTS (SELECT 1 FROM score_contributions c WHERE c.match_id = m.id)
            ORDER BY m.id LIMIT ?
            """,
            (EVENT_CONFIDENCE, to_iso(cutoff)),
            before_each=self._refresh_alert_evidence,
        )
        for batch in batches:
            ids = [i for i in batch if i not in self._alert_matches]
            if ids:
                yield self._apply("uncounted_matches", ids, self._delete_matches)

    def _delete_matches(self, ids: list[int]) -> int:
        assert self.plan.uncounted_match_before is not None
        self._refresh_alert_evidence()
        ids = [i for i in ids if i not in self._alert_matches]
        if not ids:
            return 0
        return self.conn.execute(
            f"""
            DELETE FROM matches WHERE id IN ({_marks(ids)})
              AND confidence < ? AND created_at < ?
              AND NOT EXISTS (SELECT 1 FROM score_contributions c WHERE c.match_id = matches.id)
              AND revision < (SELECT max(revision) FROM matches)
            """,
            [*ids, EVENT_CONFIDENCE, to_iso(self.plan.uncounted_match_before)],
        ).rowcount

    # -- article text --------------------------------------------------------------

    def article_text(self) -> Iterator[PruneStep]:
        cutoff = self.plan.article_text_before
        if cutoff is None:
            return
        batches = self._candidates(
            f"""
            SELECT a.id FROM articles a
            WHERE a.id > ? AND a.first_seen_at < ? AND {_HAS_TEXT} AND NOT {_IS_EVIDENCE}
            ORDER BY a.id LIMIT ?
            """,
            (to_iso(cutoff),),
            before_each=self._refresh_alert_evidence,
        )
        for batch in batches:
            ids = [i for i in batch if i not in self._alert_articles]
            if ids:
                yield self._apply("article_text", ids, self._clear_text)

    def _clear_text(self, ids: list[int]) -> int:
        assert self.plan.article_text_before is not None
        self._refresh_alert_evidence()
        ids = [i for i in ids if i not in self._alert_articles]
        if not ids:
            return 0
        # The FTS triggers keep `articles_fts` in step (the title stays searchable).
        return self.conn.execute(
            f"""
            UPDATE articles AS a SET summary = '' WHERE a.id IN ({_marks(ids)})
              AND a.first_seen_at < ? AND {_HAS_TEXT} AND NOT {_IS_EVIDENCE}
            """,
            [*ids, to_iso(self.plan.article_text_before)],
        ).rowcount

    # -- sent emails -----------------------------------------------------------------

    def sent_emails(self) -> Iterator[PruneStep]:
        cutoff = self.plan.sent_email_before
        if cutoff is None:
            return
        for ids in self._candidates(
            "SELECT id FROM outbox WHERE id > ? AND status = 'sent' AND sent_at < ? "
            "AND message IS NOT NULL ORDER BY id LIMIT ?",
            (to_iso(cutoff),),
        ):
            yield self._apply("sent_emails", ids, self._clear_bodies)

    def _clear_bodies(self, ids: list[int]) -> int:
        assert self.plan.sent_email_before is not None
        return self.conn.execute(
            f"UPDATE outbox SET message = NULL WHERE id IN ({_marks(ids)}) "
            "AND status = 'sent' AND sent_at < ? AND message IS NOT NULL",
            [*ids, to_iso(self.plan.sent_email_before)],
        ).rowcount

    # -- runs ------------------------------------------------------------------------

    def runs(self) -> Iterator[PruneStep]:
        cutoff = self.plan.run_before
        stamp = None if cutoff is None else to_iso(cutoff)
        for ids in self._candidates(
            f"""
            SELECT id FROM ({_RUNS_RANKED}) WHERE id > ? AND n > 1
              AND (n > ? OR (? IS NOT NULL AND finished_at < ?))
            ORDER BY id LIMIT ?
            """,
            (KEEP_RUNS_PER_JOB, stamp, stamp),
        ):
            yield self._apply("runs", ids, self._delete_runs)

    def _delete_runs(self, ids: list[int]) -> int:
        # Each job's newest run stays whatever happened since the candidates were read.
        return self.conn.execute(
            f"DELETE FROM runs WHERE id IN ({_marks(ids)}) "
            "AND id NOT IN (SELECT max(id) FROM runs GROUP BY job)",
            ids,
        ).rowcount


_HAS_TEXT = "a.summary IS NOT NULL AND a.summary != ''"
# One of the article's matches is a contribution of a stored (so kept) score point.
_IS_EVIDENCE = (
    "EXISTS (SELECT 1 FROM matches m JOIN score_contributions c ON c.match_id = m.id "
    "WHERE m.article_id = a.id)"
)
_RUNS_RANKED = (
    "SELECT id, finished_at, row_number() OVER (PARTITION BY job ORDER BY id DESC) AS n FROM runs"
)


def _marks(ids: Sequence[object]) -> str:
    return ", ".join("?" * len(ids))
