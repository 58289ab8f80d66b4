"""One poll cycle, one scoring cycle, one outbox drain, the digest: the stages wired.

Owns the order of the calls and what goes into one transaction; it holds no policy of
its own (that lives in politeness, matcher, scoring, alerts) and no SQL (that lives in
db). Every function takes `now`, so the daemon passes the clock and the demo and replay
pass a simulated one.

Why one module of this size (~900 lines): it is the wiring of every round (poll, score and
alert, email and channel delivery, digest, one whole cycle), kept in one place so the walk
of one item (docs/architecture.md) reads top to bottom. Splitting it into a package by
round (poll, alerting, delivery, cycle) is the next step; it was deferred in issue 16 so
that the parallel branches of issues 12, 13, 15 and 17 could merge safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from monitor.config import Config
from monitor.db import Store, StoredArticle
from monitor.db import channels as db_channels
from monitor.db.writer import StoreWriter
from monitor.deliver.channels import dispatch
from monitor.deliver.channels.dispatch import RouteSummary
from monitor.deliver.channels.enqueue import plan_rows
from monitor.deliver.channels.routing import route_alert_settings
from monitor.deliver.content import AlertEmail, FeedNotice, StoryLine
from monitor.deliver.email_message import message_id_for, render_email
from monitor.deliver.smtp import (
    DeliveryInterrupted,
    DeliveryStop,
    SmtpSession,
    retry_delay_seconds,
    send_email,
    write_to_maildir,
)
from monitor.detect.matcher import match_article
from monitor.errors import DeliveryError
from monitor.fetch import politeness
from monitor.fetch.fetcher import Fetcher
from monitor.fetch.parse_sandbox import EntryFacts, ParserPool, article_text
from monitor.models import (
    AlertDecision,
    ArticleText,
    Feed,
    FeedState,
    FetchResult,
    Match,
    ParseResult,
    Route,
    ScoredMatch,
    ScorePoint,
    SmtpSettings,
    from_iso,
    to_iso,
)
from monitor.score import alerts, scoring

log = logging.getLogger(__name__)

TOP_STORIES = 5
HISTORY_DAYS_IN_EMAIL = 14
DIGEST_META_KEY = "digest_last_slot"
DIGEST_ALERT_META_KEY = "digest_last_alert_id"

Sender = Callable[[EmailMessage, SmtpSettings], None]


# ---------------------------------------------------------------------------
# Polling


@dataclass
class PollSummary:
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    errors: int = 0
    new_articles: int = 0
    matches: int = 0
    events: int = 0
    notices: int = 0
    theatres_touched: set[str] = field(default_factory=set)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    matched_here: int = 0  # articles matched by the pipeline, not by a parser worker
    # CPU seconds of the thread that recorded the feeds, per step (`WRITER_STEPS`): where
    # the writer's time goes (`bench/poll.py`), not part of `as_dict`.
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, other: PollSummary) -> None:
        """Count another (committed) part of the same poll in."""
        self.feeds += other.feeds
        self.ok += other.ok
        self.not_modified += other.not_modified
        self.errors += other.errors
        self.new_articles += other.new_articles
        self.matches += other.matches
        self.events += other.events
        self.notices += other.notices
        self.matched_here += other.matched_here
        self.theatres_touched |= other.theatres_touched
        for kind, count in other.errors_by_kind.items():
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + count
        self.add_cpu(other.cpu)

    def add_cpu(self, steps: Mapping[str, float]) -> None:
        """Count CPU seconds per step in (`cpu`)."""
        for step, seconds in steps.items():
            self.cpu[step] = self.cpu.get(step, 0.0) + seconds

    def as_dict(self) -> dict[str, object]:
        return {
            "feeds": self.feeds,
            "ok": self.ok,
            "not_modified": self.not_modified,
            "errors": self.errors,
            "new_articles": self.new_articles,
            "matches": self.matches,
            "events": self.events,
            "notices": self.notices,
            "errors_by_kind": dict(self.errors_by_kind),
        }


WRITER_STEPS = ("grouping", "articles", "matches", "join", "record")
"""The steps of recording a feed, as `PollSummary.cpu` counts them: choosing each new
article's story, storing the articles (and their full-text index), storing the matches,
the cross-language join, and the feed's poll record, notices and the commit."""

MAX_FEEDS_IN_HAND = 32
"""Feeds taken from the fetcher and not yet stored (being parsed, matched or written).

With the fetcher's own bound (`global_concurrency` results fetched and not yet taken),
this bounds the bodies and entries a poll holds, whatever the number of feeds."""


async def poll_feeds(
    store: Store,
    config: Config,
    fetcher: Fetcher,
    parsers: ParserPool,
    *,
    now: datetime,
    rng: random.Random,
) -> PollSummary:
    """Fetch every due feed, store what is new, match it, record each feed's state.

    The event loop only waits: bodies are parsed and their entries matched in the parser
    workers (`ParserPool.parse_and_match`), and each feed is recorded by one writer
    thread with its own connection (`StoreWriter`), a batch of feeds per transaction.
    """
    summary = PollSummary()
    states = store.due_feeds(now=now)
    feeds = {feed.id: feed for feed in config.feeds}
    states = [state for state in states if state.feed_id in feeds]
    if not states:
        return summary
    by_id = {state.feed_id: state for state in states}
    in_hand = asyncio.Semaphore(MAX_FEEDS_IN_HAND)
    failures: list[BaseException] = []
    tasks: set[asyncio.Task[None]] = set()

    async def parse_and_record(result: FetchResult, writer: StoreWriter) -> None:
        try:
            feed = feeds[result.feed_id]
            parsed: ParseResult | None = None
            matched: dict[ArticleText, Sequence[Match]] | None = None
            facts: EntryFacts | None = None
            if result.outcome == "ok" and result.body is not None:
                parsed_feed = await parsers.parse_and_match(
                    result.body,
                    rules=config.rules,
                    feed_id=feed.id,
                    fetched_at=result.fetched_at,
                    headers=result.headers,
                    language_hint=feed.language,
                )
                parsed = parsed_feed.result
                facts = parsed_feed.facts
                if parsed_feed.matches is not None:
                    matched = {
                        article_text(entry): matches
                        for entry, matches in zip(parsed.entries, parsed_feed.matches, strict=True)
                    }
            result = replace(result, body=None)  # parsed: the body is not needed any more
            state = by_id[feed.id]

            def record(writer_store: Store) -> PollSummary:
                part = PollSummary()
                record_feed_result(
                    writer_store,
                    config,
                    feed,
                    state,
                    result,
                    parsed,
                    now=now,
                    rng=rng,
                    summary=part,
                    matched=matched,
                    facts=facts,
                )
                return part

            summary.add(await writer.submit(record))
        finally:
            in_hand.release()

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            failures.append(error)

    async with StoreWriter(store.path) as writer:
        try:
            fetches = fetcher.iter_fetches(
                states, now=now, max_pending=fetcher.settings.global_concurrency
            )
            async with contextlib.aclosing(fetches):  # a failure stops the fetches at once
                async for result in fetches:
                    await in_hand.acquire()
                    if failures:
                        break
                    task = asyncio.create_task(parse_and_record(result, writer))
                    tasks.add(task)
                    task.add_done_callback(finished)
            while tasks and not failures:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
            if failures:
                raise failures[0]
        finally:
            for task in list(tasks):
                task.cancel()
    return summary


def record_feed_result(
    store: Store,
    config: Config,
    feed: Feed,
    state: FeedState,
    result: FetchResult,
    parsed: ParseResult | None,
    *,
    now: datetime,
    rng: random.Random,
    summary: PollSummary,
    matched: Mapping[ArticleText, Sequence[Match]] | None = None,
    facts: EntryFacts | None = None,
) -> None:
    """Store one feed's poll in one transaction: articles, matches, state, notices.

    `matched` holds matches already made (by the parser workers) for the texts they
    were made for; an article whose text is not there is matched here. `facts`, each
    entry's grouping facts made by the same workers with the same rules (or None).
    """
    summary.feeds += 1
    effective = result
    if parsed is not None and parsed.status == "error":
        # A 200 that is not a feed (an HTML challenge page, garbage) is a failure, and its
        # validators must not be kept, or the next poll would get a 304 for the garbage.
        effective = replace(
            result,
            outcome="error",
            error_kind=parsed.error_kind,
            error_message=parsed.message,
            etag=None,
            last_modified=None,
        )
    new_state = politeness.next_state(
        state,
        effective,
        now=now,
        schedule=config.settings.schedule,
        feed_interval_seconds=feed.interval_seconds,
        feed_ttl_seconds=parsed.feed_ttl_seconds if parsed is not None else None,
        rng=rng,
    )
    entries = parsed.entries if parsed is not None and parsed.status != "error" else ()
    clock = time.thread_time
    grouped = store.grouping_seconds
    began = clock()
    with store.transaction():
        articles = store.store_entries(
            feed, entries, now=now, facts=facts if entries else None, rules=config.rules
        )
        stored = clock()
        for article in articles:
            _match_and_store(store, config, article, now=now, summary=summary, matched=matched)
        matched_at = clock()
        # A story this poll started may be an event already stored in another language.
        store.join_across_languages(articles, config.rules, now=now)
        joined = clock()
        store.record_poll(new_state, result, parsed, entries_seen=len(entries))
        _feed_notices(store, config, feed, new_state, now=now, summary=summary)
    grouping = store.grouping_seconds - grouped
    summary.add_cpu(
        dict(
            zip(
                WRITER_STEPS,
                (
                    grouping,
                    stored - began - grouping,
                    matched_at - stored,
                    joined - matched_at,
                    clock() - joined,
                ),
                strict=True,
            )
        )
    )
    summary.new_articles += len(articles)
    if effective.outcome == "not_modified":
        summary.not_modified += 1
    elif effective.outcome == "ok":
        summary.ok += 1
    else:
        summary.errors += 1
        kind = effective.error_kind or effective.outcome
        summary.errors_by_kind[kind] = summary.errors_by_kind.get(kind, 0) + 1
        log.info(
            "feed failed feed=%s kind=%s failures=%d next_check=%s detail=%s",
            feed.id,
            kind,
            new_state.consecutive_failures,
            to_iso(new_state.next_check_at) if new_state.next_check_at else "-",
            (effective.error_message or "")[:200],
        )


def _match_and_store(
    store: Store,
    config: Config,
    article: StoredArticle,
    *,
    now: datetime,
    summary: PollSummary,
    matched: Mapping[ArticleText, Sequence[Match]] | None = None,
) -> None:
    text = ArticleText(
        title=article.title,
        text=article.summary,
        language=article.language,
        published_at=article.published_at,
    )
    # Matching is a pure function of the text and the rules: a match made for this very
    # text (by a parser worker, with these rules) is the match it would make here.
    matches = matched.get(text) if matched is not None else None
    if matches is None:
        matches = match_article(text, config.rules)
        summary.matched_here += 1
    store.store_matches(article, matches, now=now)
    summary.matches += len(matches)
    for match in matches:
        if match.is_event:
            summary.events += 1
            summary.theatres_touched.add(match.theatre_id)


def _feed_notices(
    store: Store,
    config: Config,
    feed: Feed,
    state: FeedState,
    *,
    now: datetime,
    summary: PollSummary,
) -> None:
    down_notified = store.feed_down_notified(feed.id)
    notified, decisions = alerts.feed_notices(
        feed.id,
        feed.name,
        failing_since=state.failing_since,
        down_notified=down_notified,
        now=now,
        settings=config.alerts,
    )
    if notified != down_notified:
        store.set_feed_down_notified(feed.id, notified)
    for decision in decisions:
        if record_alert(store, config, decision, now=now, feed=feed) is not None:
            summary.notices += 1


# ---------------------------------------------------------------------------
# Scoring and alert decisions


@dataclass
class ScoreSummary:
    points: list[ScorePoint] = field(default_factory=list)
    alerts: list[AlertDecision] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "scores": {p.theatre_id: round(p.index, 1) for p in self.points},
            "levels": {p.theatre_id: p.level for p in self.points},
            "alerts": [a.kind for a in self.alerts],
        }


def score_theatres(store: Store, config: Config, *, now: datetime) -> ScoreSummary:
    """Score every theatre at `now`, decide alerts, and record both in one transaction each.

    What is new to the alert decisions is decided by the match revision high-water mark
    stored with the theatre's alert state, read and written in the same transaction as
    the score point (never by comparing clock times written by different jobs): a poll
    that started before this scoring and commits after it is new to the next scoring.
    """
    summary = ScoreSummary()
    scoring_settings = config.scoring
    indicators = config.rules.indicators
    lookback = timedelta(days=max(scoring_settings.baseline_days, 8))
    window_start = now - timedelta(days=scoring_settings.window_days)
    for theatre_id in config.rules.theatres:
        with store.transaction():
            matches = store.scored_matches(
                theatre_id,
                since=window_start,
                until=now,
                indicators=indicators,
                created_before=now,
            )
            history = store.score_series(
                theatre_id, since=now - lookback, until=now - timedelta(seconds=1)
            )
            last = store.last_score(theatre_id)
            point = scoring.score_theatre(
                theatre_id,
                matches,
                now=now,
                settings=scoring_settings,
                history=history,
                previous_level=last["level"] if last else None,
            )
            seen_revision = store.match_revision()
            critical = _new_critical_matches(store, config, theatre_id, since=window_start)
            state = store.alert_state(theatre_id)
            new_state, decisions = alerts.decide_alerts(
                state,
                point,
                now=now,
                settings=config.alerts,
                levels=scoring_settings.levels,
                critical_matches=critical,
            )
            score_id = store.insert_score(point)
            store.save_alert_state(new_state, match_revision=seen_revision)
            known = {m.match_id for m in matches}
            evidence = [*matches, *(m for m in critical if m.match_id not in known)]
            for decision in decisions:
                alert_id = record_alert(
                    store,
                    config,
                    decision,
                    now=now,
                    score_id=score_id,
                    point=point,
                    matches=evidence,
                )
                if alert_id is not None:
                    summary.alerts.append(decision)
                store.remember_alerted_signs(
                    theatre_id,
                    alerts.alerted_signs(decision, critical),
                    alert_id=alert_id,
                    now=now,
                )
        summary.points.append(point)
    return summary


def _new_critical_matches(
    store: Store, config: Config, theatre_id: str, *, since: datetime
) -> list[ScoredMatch]:
    """The theatre's critical event matches new since its last scoring, not alerted yet."""
    indicators = config.rules.indicators
    candidates = [
        m
        for m in store.new_event_matches(
            theatre_id,
            after_revision=store.alert_match_revision(theatre_id),
            since=since,
            indicators=indicators,
        )
        if indicators[m.indicator_id].severity == "critical"
    ]
    if not candidates:
        return []
    alerted = store.alerted_signs(theatre_id, [m.story_id for m in candidates])
    return [m for m in candidates if (m.story_id, m.indicator_id) not in alerted]


def record_alert(
    store: Store,
    config: Config,
    decision: AlertDecision,
    *,
    now: datetime,
    score_id: int | None = None,
    point: ScorePoint | None = None,
    matches: Sequence[ScoredMatch] = (),
    feed: Feed | None = None,
    lines: Sequence[str] = (),
    line_theatres: Sequence[str | None] = (),
) -> int | None:
    """Record an alert and, if urgent, its email in the outbox (inside the caller's transaction),
    and a row for each route that takes it (`deliver.channels.enqueue`; `line_theatres`: the theatre
    of each digest line, for the routes' theatre filters).

    Returns the alert id, or None when this alert (by dedup key) was recorded before.
    """
    alert_id = store.insert_alert(decision, score_id=score_id, feed_id=feed.id if feed else None)
    if alert_id is None:
        return alert_id
    if config.settings.routes:
        _record_channel_rows(
            store,
            config,
            decision,
            alert_id=alert_id,
            now=now,
            compose=lambda: compose_email(
                store,
                config,
                decision,
                point=point,
                matches=matches,
                feed=feed,
                lines=lines,
                alert_id=alert_id,
            ),
            feed_id=feed.id if feed else None,
            items=list(zip(line_theatres or [None] * len(lines), lines, strict=True)),
        )
    if not decision.urgent:
        return alert_id
    theatre = config.rules.theatres.get(decision.theatre_id) if decision.theatre_id else None
    recipients = tuple(config.settings.smtp.recipients) + (theatre.recipients if theatre else ())
    message_id = message_id_for(decision.dedup_key, domain=_mail_domain(config))
    not_before = alerts.send_after(decision, now=now, settings=config.alerts)
    try:
        content = compose_email(
            store,
            config,
            decision,
            point=point,
            matches=matches,
            feed=feed,
            lines=lines,
            alert_id=alert_id,
        )
        message = render_email(
            content,
            sender=config.settings.smtp.sender,
            recipients=recipients,
            message_id=message_id,
            now=decision.created_at,
        )
        subject = str(message["Subject"])
        raw = message.as_bytes(policy=email.policy.SMTP)
        dead_reason = None
    except Exception as exc:  # a render failure must not lose the alert or stop scoring
        log.error("alert render failed alert=%s key=%s error=%s", alert_id, decision.dedup_key, exc)
        subject, raw, dead_reason = decision.reason, b"", f"render_error: {exc}"
    store.enqueue(
        alert_id,
        message_id=message_id,
        recipients=recipients,
        subject=subject,
        message=raw,
        now=now,
        not_before=not_before if not_before > now else None,
        dead_reason=dead_reason,
    )
    return alert_id


def compose_email(
    store: Store,
    config: Config,
    decision: AlertDecision,
    *,
    point: ScorePoint | None,
    matches: Sequence[ScoredMatch],
    feed: Feed | None,
    lines: Sequence[str] = (),
    alert_id: int | None = None,
) -> AlertEmail:
    """Gather what the email shows: the top stories, the trend, the command to see more,
    and (with `report_url` set) the link to the alert's page in the static report."""
    theatre = config.rules.theatres.get(decision.theatre_id) if decision.theatre_id else None
    stories: list[StoryLine] = []
    history: tuple[tuple[datetime, float], ...] = ()
    hint = "monitor alerts"
    if decision.theatre_id is not None:
        by_id = {m.match_id: m for m in matches}
        if decision.kind == "critical":
            chosen = [by_id[i] for i in decision.match_ids if i in by_id]
            stories = [StoryLine.from_scored(m) for m in chosen]
        elif point is not None:
            for contribution in point.contributions[: TOP_STORIES * 3]:  # grouped by story
                match = by_id.get(contribution.match_id)
                if match is not None:
                    stories.append(StoryLine.from_scored(match, contribution))
        series = store.score_series(
            decision.theatre_id,
            since=decision.created_at - timedelta(days=HISTORY_DAYS_IN_EMAIL),
            until=decision.created_at,
        )
        if point is not None and (not series or series[-1][0] != point.at):
            series.append((point.at, point.index))
        history = tuple(series)
        hint = f"monitor explain {decision.theatre_id} --at {to_iso(decision.created_at)}"
    notice = None
    if feed is not None:
        hint = "monitor feeds"
        state = store.feed_state(feed.id)
        error = store.feed_last_error(feed.id)
        notice = FeedNotice(
            name=feed.name,
            url=feed.url,
            error=error,
            failing_since=state.failing_since if state is not None else None,
        )
    return AlertEmail(
        decision=decision,
        theatre_name=theatre.name if theatre else None,
        stories=tuple(stories),
        history=history,
        command_hint=hint,
        feed=notice,
        lines=tuple(lines),
        indicator_ids=tuple(config.rules.indicators),
        report_link=_report_link(config, alert_id),
    )


def _report_link(config: Config, alert_id: int | None) -> str | None:
    base = config.settings.report_url
    if not base or alert_id is None:
        return None
    from monitor.report.paths import alert_page

    return base + alert_page(alert_id)


def _mail_domain(config: Config) -> str:
    sender = config.settings.smtp.sender
    return sender.rpartition("@")[2] or "monitor.localhost"


# ---------------------------------------------------------------------------
# Digest


def run_digest(store: Store, config: Config, *, now: datetime) -> AlertDecision | None:
    """At the digest time, one email with what changed that was not urgent (if anything).

    A digest covers the non-urgent alerts recorded after the last alert the previous
    digest covered (an alert id high-water mark, read and moved in one transaction), so
    no item appears in two digests and none falls between them.
    """
    with store.transaction():
        slot = alerts.digest_due(_last_digest_slot(store), now, config.alerts)
        if slot is None:
            return None
        covered = int(store.get_meta(DIGEST_ALERT_META_KEY) or 0)
        held = store.held_alerts(after_id=covered)
        store.set_meta(DIGEST_META_KEY, to_iso(slot))
        store.set_meta(DIGEST_ALERT_META_KEY, str(max([covered, *(r["id"] for r in held)])))
        if not held:
            return None
        lines = [f"{row['created_at']}  {row['kind']}: {row['reason']}" for row in held]
        decision = AlertDecision(
            dedup_key=alerts.digest_key(slot),
            kind="digest",
            theatre_id=None,
            created_at=now,
            urgent=True,
            reason=f"{len(held)} change(s) since the last digest",
        )
        theatres = [row["theatre_id"] for row in held]
        if (
            record_alert(store, config, decision, now=now, lines=lines, line_theatres=theatres)
            is None
        ):
            return None
    return decision


def _last_digest_slot(store: Store) -> datetime | None:
    value = store.get_meta(DIGEST_META_KEY)
    return from_iso(value) if value else None


# ---------------------------------------------------------------------------
# Delivery


@dataclass
class DeliverySummary:
    sent: int = 0
    retried: int = 0
    dead: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "dead": self.dead}


def deliver_outbox(
    store: Store,
    config: Config,
    *,
    now: datetime,
    send: Sender | None = None,
    rng: random.Random | None = None,
    limit: int = 50,
    stop: DeliveryStop | None = None,
) -> DeliverySummary:
    """Send due outbox messages. Each is marked sent right after the server's 250, before the
    next message and before QUIT: a kill in the window can repeat only that one message.

    The round shares one SMTP session (`SmtpSession`; `send` replaces it, for tests).
    A retryable failure (connection, timeout, 4xx) is tried again later with backoff; a
    permanent one (5xx, refused recipients, render error) marks that message dead with
    one log line, and the others keep flowing. Once `stop` asks, no new message starts; a
    message it interrupts stays due, with no attempt counted, for the next start.
    """
    summary = DeliverySummary()
    smtp = config.settings.smtp
    with SmtpSession(smtp, stop=stop) as session:
        deliver = send or (lambda message, _smtp: session.send(message))
        for item in store.due_outbox(now=now, limit=limit):
            if stop is not None and stop.is_stopping():
                break
            message = email.message_from_bytes(item.message, policy=email.policy.default)
            try:
                if not item.recipients and smtp.recipients:
                    # Recorded while no recipient was configured: address it to today's list.
                    del message["To"]
                    message["To"] = ", ".join(smtp.recipients)
                if item.recipients or smtp.recipients:
                    deliver(message, smtp)
                elif config.settings.maildir is None:
                    raise DeliveryError(
                        "no recipients configured (set smtp.recipients or MONITOR_SMTP_RECIPIENTS)",
                        retryable=True,
                    )
                if config.settings.maildir is not None:
                    # The local copy (or, with no recipients, the delivery itself): written
                    # once, after the server accepted, so failed attempts leave no copies.
                    write_to_maildir(message, config.settings.maildir)
            except DeliveryInterrupted as exc:
                log.warning(
                    "delivery interrupted outbox=%d (still pending; sent at the next start): %s",
                    item.id,
                    exc,
                )
                break
            except DeliveryError as exc:
                if exc.retryable:
                    delay = retry_delay_seconds(item.attempts + 1, rng=rng)
                    store.mark_retry(
                        item.id, error=str(exc), next_attempt_at=now + timedelta(seconds=delay)
                    )
                    summary.retried += 1
                    log.warning(
                        "delivery deferred outbox=%d attempts=%d error=%s",
                        item.id,
                        item.attempts + 1,
                        exc,
                    )
                else:
                    store.mark_dead(item.id, error=str(exc))
                    summary.dead += 1
                    log.error(
                        "delivery failed permanently outbox=%d subject=%r error=%s (see `monitor alerts --status dead`)",
                        item.id,
                        item.subject[:80],
                        exc,
                    )
            else:
                store.mark_sent(item.id, now=now)
                summary.sent += 1
    return summary


# ---------------------------------------------------------------------------
# A whole cycle (run --once, the demo, tests)


@dataclass
class CycleSummary:
    poll: PollSummary
    score: ScoreSummary
    delivery: DeliverySummary
    channels: dict[str, RouteSummary] = field(default_factory=dict)


async def run_cycle(
    store: Store,
    config: Config,
    fetcher: Fetcher,
    parsers: ParserPool,
    *,
    now: datetime,
    rng: random.Random,
    send: Sender | None = None,
) -> CycleSummary:
    """Poll what is due, score every theatre, run the digest if due, send what is due."""
    poll = await poll_feeds(store, config, fetcher, parsers, now=now, rng=rng)
    score = score_theatres(store, config, now=now)
    run_digest(store, config, now=now)
    channels = deliver_channels(store, config, now=now, rng=rng)
    delivery = deliver_outbox(store, config, now=now, send=send, rng=rng)
    return CycleSummary(poll=poll, score=score, delivery=delivery, channels=channels)


# ---------------------------------------------------------------------------
# Channels (issue 13): one row per (alert, route), delivered route by route


def _record_channel_rows(
    store: Store,
    config: Config,
    decision: AlertDecision,
    *,
    alert_id: int,
    now: datetime,
    compose: Callable[[], AlertEmail],
    feed_id: str | None,
    items: Sequence[tuple[str | None, str]],
) -> None:
    """The alert's channel rows, in the caller's (the alert's) transaction."""
    planned = plan_rows(
        config.settings.routes,
        decision,
        now=now,
        levels=config.scoring.levels,
        compose=compose,
        earlier_firing=lambda route: db_channels.earlier_firing(
            store, route.name, decision, feed_id=feed_id
        ),
        send_after=lambda route: alerts.send_after(
            decision, now=now, settings=route_alert_settings(route, config.alerts)
        ),
        feed_id=feed_id,
        items=items,
    )
    for row in planned:
        db_channels.enqueue(
            store,
            alert_id,
            route=row.route.name,
            channel=row.route.channel,
            payload=row.payload,
            now=now,
            not_before=row.not_before,
            dead_reason=row.dead_reason,
        )


def deliver_route(store: Store, route: Route, **options: Any) -> RouteSummary:
    """Send one route's due rows through `store` (see `deliver.channels.dispatch`)."""
    return dispatch.deliver_route(db_channels.ChannelRows(store), route, **options)


@contextlib.contextmanager
def _channel_rows_of(db_path: str | Path) -> Iterator[db_channels.ChannelRows]:
    with Store.open(db_path, migrate=False) as store:
        yield db_channels.ChannelRows(store)


def drain_route(
    db_path: str | Path,
    route: Route,
    *,
    now: datetime,
    stop: DeliveryStop | None = None,
    rng: random.Random | None = None,
) -> RouteSummary:
    """`deliver_route` on a connection of its own (for a delivery thread)."""
    with _channel_rows_of(db_path) as rows:
        return dispatch.deliver_route(rows, route, now=now, stop=stop, rng=rng)


def deliver_channels(
    store: Store,
    config: Config,
    *,
    now: datetime,
    rng: random.Random | None = None,
    stop: DeliveryStop | None = None,
) -> dict[str, RouteSummary]:
    """Send every route's due rows, the routes side by side (one thread and connection each)."""
    if not config.settings.routes:
        return {}
    path = store.path
    return dispatch.deliver_routes(
        lambda: _channel_rows_of(path), config.settings.routes, now=now, stop=stop, rng=rng
    )


def send_test_email(config: Config, *, now: datetime) -> str:
    """`monitor test-email`: render and send one message now, bypassing the outbox."""
    smtp = config.settings.smtp
    if not smtp.recipients:
        raise DeliveryError(
            "no recipients configured (set smtp.recipients or MONITOR_SMTP_RECIPIENTS)",
            retryable=False,
        )
    decision = AlertDecision(
        dedup_key=f"test@{to_iso(now)}",
        kind="test",
        theatre_id=None,
        created_at=now,
        urgent=True,
        reason="a test message from `monitor test-email`",
    )
    message = render_email(
        AlertEmail(decision=decision, command_hint="monitor status"),
        sender=smtp.sender,
        recipients=smtp.recipients,
        message_id=message_id_for(decision.dedup_key, domain=_mail_domain(config)),
        now=now,
    )
    send_email(message, smtp)
    return (
        f"sent to {', '.join(smtp.recipients)} via {smtp.host}:{smtp.port} ({smtp.security}); "
        f"Message-ID {message['Message-ID']}"
    )
