"""The daemon: scheduler, signals, reload, health, and the systemd notify protocol.

Owns the lifetime of `monitor run`: one asyncio loop, one APScheduler 3.x
`AsyncIOScheduler` with a few jobs (poll, score, outbox, digest, maintenance, watchdog),
one instance per database. It holds no policy: each job calls `pipeline`.

Scheduler choices (reliability guide, decision 10): UTC, interval triggers,
`max_instances=1` (a long round never overlaps the next; the skip is counted),
`coalesce=True` (after a suspend or clock step, one catch-up run, not a burst) and
`misfire_grace_time=None` (a late run still runs: the 3.x default would drop it).

Why one module of this size: the scheduler, its jobs, signals, reload and the bounded stop
are one state machine sharing the daemon's state; the jobs' work itself lives in the
pipeline, the channel jobs in `channel_jobs`, metrics, backup and status apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import pipeline
from monitor.config import Config, settings_needing_restart
from monitor.db import Store
from monitor.db.retention import PRUNE_PAUSE_SECONDS, PruneResult, prune_steps, retention_plan
from monitor.deliver.smtp import DeliveryStop
from monitor.detect.build_info import matcher_build
from monitor.errors import ConfigError, MonitorError, StoppedBySignal
from monitor.fetch.fetcher import Fetcher
from monitor.fetch.parse_sandbox import ParserPool
from monitor.models import ScheduleSettings, to_iso
from monitor.service.channel_jobs import ChannelJobs
from monitor.service.deployment import mark_deployment
from monitor.service.instance_lock import acquire_instance_lock
from monitor.service.sdnotify import Notifier
from monitor.service.status import config_delivery_problem

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 8.0  # systemd's TimeoutStopSec is 15 s; leave room to close cleanly
# The email in flight at SIGTERM gets this long for the server's reply; then its blocked SMTP
# call is woken (a task's cancellation cannot reach it) and the message stays pending. Well
# inside the stop budget: the process still needs up to ~2 s to exit on a loaded machine.
SEND_GRACE_SECONDS = 5.0
JOB_STATS_META_KEY = "scheduler_stats"
HEARTBEAT_META_KEY = "daemon_heartbeat"
HEARTBEAT_SECONDS = 30.0
FAILURES_BEFORE_UNHEALTHY = 3  # consecutive failed runs of the poll or score job
MAINTENANCE_FIRST_DELAY_SECONDS = 600.0  # after a start: once the first rounds are done

_RESCHEDULED_JOBS = {
    "poll": "poll_tick_seconds",
    "score": "score_tick_seconds",
    "outbox": "outbox_tick_seconds",
    "maintenance": "maintenance_tick_seconds",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class JobStats:
    """Counts the scheduler's events per job: what ran, failed, was missed or skipped."""

    runs: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    consecutive_errors: dict[str, int] = field(default_factory=dict)
    last_ok: dict[str, float] = field(default_factory=dict)  # monotonic seconds
    last_error: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": dict(self.runs),
            "errors": dict(self.errors),
            "missed": dict(self.missed),
            "skipped": dict(self.skipped),
            "consecutive_errors": dict(self.consecutive_errors),
            "last_error": dict(self.last_error),
        }


class Daemon:
    """`monitor run`: builds the jobs, runs them until SIGTERM/SIGINT, reloads on SIGHUP."""

    def __init__(
        self,
        config: Config,
        *,
        reload_config: Callable[[], Config] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.reload_config = reload_config
        self.clock = clock
        self.rng = random.Random()
        self.stats = JobStats()
        self.notifier = Notifier.from_environment()
        self.stop_event: asyncio.Event | None = None
        self.store: Store | None = None
        self.fetcher: Fetcher | None = None
        self.parsers: ParserPool | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.last_summary = "starting"
        self._intervals: dict[str, float] = {}
        self._started_monotonic = time.monotonic()
        # The outbox is drained by its own job and right after new alerts: never twice at once,
        # or two drains would pick the same pending row and send it twice.
        self._outbox_lock = asyncio.Lock()
        self._report: Any = None  # monitor.report.rebuild.ReportRebuilder, when report_dir is set
        # Shared by every outbox drain: SIGTERM stops new sends, the stop deadline wakes the one
        # blocked in the network (see `_wait_for_running_jobs`).
        self._delivery_stop = DeliveryStop()
        self._fetching: asyncio.Future[pipeline.PollSummary] | None = None  # a poll's fetching
        self._metrics: MetricsEndpoint | None = None
        # One drain task per route, beside the email drain (issue 13).
        self._channels = ChannelJobs(self._delivery_stop, _in_daemon_thread)

    # -- lifetime ------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self.serve())

    async def serve(self) -> int:
        settings = self.config.settings
        with acquire_instance_lock(settings.db_path):
            self.store = Store.open(settings.db_path)
            try:
                with self.store.transaction():
                    mark_deployment(self.store, now=self.clock())  # demo/replay keep out
                self.store.sync_feeds(self.config.feeds, now=self.clock())
                async with Fetcher(settings.http) as fetcher:
                    self.fetcher = fetcher
                    self.parsers = ParserPool.for_settings(settings.http)
                    try:
                        await self._serve_until_stopped()
                    finally:
                        self.parsers.close()
            finally:
                self.store.close()
        log.info("stopped")
        return 0

    async def _serve_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        metrics = self._start_metrics()
        scheduler = self._build_scheduler()
        self.scheduler = scheduler
        scheduler.start()
        # Run a first poll at once rather than after a full interval.
        for job_id in ("poll", "outbox"):
            job = scheduler.get_job(job_id)
            if job is not None:
                job.modify(next_run_time=self.clock())
        # Retention soon after a start too, not a whole interval (a day) later: a daemon
        # restarted more often than that would never prune.
        maintenance = scheduler.get_job("maintenance")
        if maintenance is not None:
            delay = min(self._intervals["maintenance"], MAINTENANCE_FIRST_DELAY_SECONDS)
            maintenance.modify(next_run_time=self.clock() + timedelta(seconds=delay))
        self.notifier.ready()
        self.notifier.status("running; first poll under way")
        log.info(
            "started db=%s feeds=%d theatres=%d indicators=%d matcher=%s",
            self.config.settings.db_path,
            len(self.config.feeds),
            len(self.config.rules.theatres),
            len(self.config.rules.indicators),
            matcher_build(),
        )
        _warn_if_undeliverable(self.config)
        await self.stop_event.wait()
        self.notifier.stopping()
        log.info("stopping: waiting up to %.0f s for running jobs", STOP_TIMEOUT_SECONDS)
        scheduler.pause()
        self._delivery_stop.stop()  # no new message starts; the one in flight may finish
        await self._wait_for_running_jobs()
        scheduler.shutdown(wait=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        if metrics is not None:
            metrics.close()

    async def _wait_for_running_jobs(self) -> None:
        started = time.monotonic()
        # Fetching only waits on the network: each feed it finished is committed, and a feed
        # not yet stored is fetched again (conditionally) at the next start. So it stops at
        # once rather than holding the stop for a server that never answers; the rest of
        # the poll job (scoring, sending) is not started. A send under way keeps its grace.
        if self._fetching is not None:
            self._fetching.cancel()
        if await self._jobs_finished(by=started + SEND_GRACE_SECONDS):
            return
        # An SMTP call blocked in a thread would outlive its job's cancellation (and hold the
        # process until its own timeout): wake it; the message in flight stays pending.
        self._delivery_stop.interrupt()
        if await self._jobs_finished(by=started + STOP_TIMEOUT_SECONDS):
            return
        for task in asyncio.all_tasks():
            if task.get_name().startswith("job:"):
                task.cancel()  # transactions hold no awaits: a cancelled job leaves nothing half-written

    async def _jobs_finished(self, *, by: float) -> bool:
        current = asyncio.current_task()
        while True:
            pending = [
                t
                for t in asyncio.all_tasks()
                if t is not current and t.get_name().startswith("job:")
            ]
            if not pending:
                return True
            if time.monotonic() >= by:
                return False
            await asyncio.sleep(0.05)

    def _request_stop(self, signum: int) -> None:
        log.info("received %s", signal.Signals(signum).name)
        if self.stop_event is not None:
            self.stop_event.set()

    def _request_reload(self) -> None:
        if self.reload_config is None:
            log.warning("SIGHUP: no configuration source to reload")
            return
        self.notifier.reloading()
        try:
            new_config = self.reload_config()
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            self.notifier.status(f"reload refused: {exc}")
            self.notifier.ready()
            return
        running = self.config.settings
        pending = settings_needing_restart(running, new_config.settings)
        if pending:
            log.warning(
                "reload: %s changed; kept the running values until a restart",
                " and ".join(pending),
            )
            new_config = replace(
                new_config,
                settings=replace(new_config.settings, db_path=running.db_path, http=running.http),
            )
        new_config = self._apply_metrics_listen(new_config)
        self._apply_schedule(new_config.settings.schedule)
        self.config = new_config
        if self.store is not None:
            self.store.sync_feeds(new_config.feeds, now=self.clock())
        log.info(
            "reloaded feeds=%d theatres=%d indicators=%d restart_needed=%s",
            len(new_config.feeds),
            len(new_config.rules.theatres),
            len(new_config.rules.indicators),
            ",".join(pending) or "none",
        )
        self.notifier.ready()

    def _apply_metrics_listen(self, new_config: Config) -> Config:
        """Start, move or stop the endpoint; if the new address cannot be bound, keep
        serving where it was (and say so) and keep that address in the configuration."""
        listen = new_config.settings.metrics_listen
        if self._metrics is None or listen == self._metrics.listen:
            return new_config
        try:
            self._metrics.move_to(listen)
        except MonitorError as exc:
            log.error(
                "reload: metrics endpoint not moved, still on %s: %s", self._metrics.listen, exc
            )
            return replace(
                new_config,
                settings=replace(new_config.settings, metrics_listen=self._metrics.listen),
            )
        log.info("reload: metrics endpoint %s", f"on {listen}" if listen else "stopped")
        return new_config

    def _apply_schedule(self, schedule: ScheduleSettings) -> None:
        if self.scheduler is None:
            return
        for job_id, key in _RESCHEDULED_JOBS.items():
            seconds = getattr(schedule, key)
            if self._intervals.get(job_id) not in (None, seconds):
                self.scheduler.reschedule_job(job_id, trigger="interval", seconds=seconds)
                self._intervals[job_id] = seconds
                log.info("reload: job %s now every %s s", job_id, seconds)

    # -- scheduler -----------------------------------------------------------

    def _build_scheduler(self) -> AsyncIOScheduler:
        schedule = self.config.settings.schedule
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        jobs: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("poll", self.poll_job, schedule.poll_tick_seconds),
            ("score", self.score_job, schedule.score_tick_seconds),
            ("outbox", self.outbox_job, schedule.outbox_tick_seconds),
            ("digest", self.digest_job, 60),
            ("maintenance", self.maintenance_job, schedule.maintenance_tick_seconds),
            ("heartbeat", self.heartbeat_job, HEARTBEAT_SECONDS),
        ]
        watchdog = self.notifier.watchdog_interval_seconds()
        if watchdog:
            jobs.append(("watchdog", self.watchdog_job, max(watchdog / 2, 1.0)))
        for job_id, func, seconds in jobs:
            self._intervals[job_id] = seconds
            scheduler.add_job(
                self._named(job_id, func), "interval", seconds=seconds, id=job_id, name=job_id
            )
        # Job errors are logged once, by `_on_event` (a traceback only when unexpected);
        # APScheduler's executor would log each again with a traceback.
        logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
        scheduler.add_listener(
            self._on_event,
            EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED,
        )
        return scheduler

    def _named(
        self, job_id: str, func: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                task.set_name(f"job:{job_id}")
            try:
                await func()
            except asyncio.CancelledError:
                # Only the stop deadline cancels a job; its transactions are whole.
                log.warning("job cancelled at shutdown job=%s", job_id)

        return run

    def _on_event(self, event: JobEvent) -> None:
        job_id = event.job_id
        stats = self.stats
        if event.code == EVENT_JOB_EXECUTED:
            stats.runs[job_id] = stats.runs.get(job_id, 0) + 1
            stats.last_ok[job_id] = time.monotonic()
            stats.consecutive_errors[job_id] = 0
        elif event.code == EVENT_JOB_ERROR:
            stats.errors[job_id] = stats.errors.get(job_id, 0) + 1
            stats.consecutive_errors[job_id] = stats.consecutive_errors.get(job_id, 0) + 1
            exception = (
                getattr(event, "exception", None) if isinstance(event, JobExecutionEvent) else None
            )
            stats.last_error[job_id] = (
                f"{type(exception).__name__}: {exception}" if exception else "error"
            )
            if isinstance(exception, MonitorError):
                log.error("job failed job=%s error=%s", job_id, exception)
            else:
                log.error("job failed job=%s", job_id, exc_info=exception)
        elif event.code == EVENT_JOB_MISSED:
            stats.missed[job_id] = stats.missed.get(job_id, 0) + 1
            log.warning("job run missed job=%s", job_id)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            stats.skipped[job_id] = stats.skipped.get(job_id, 0) + 1
            log.warning("job run skipped (previous run still going) job=%s", job_id)

    # -- jobs ----------------------------------------------------------------

    async def poll_job(self) -> None:
        assert self.store is not None and self.fetcher is not None and self.parsers is not None
        started = self.clock()
        self._fetching = asyncio.ensure_future(
            pipeline.poll_feeds(
                self.store, self.config, self.fetcher, self.parsers, now=started, rng=self.rng
            )
        )
        try:
            summary = await self._fetching
        finally:
            self._fetching = None
        score = None
        if summary.theatres_touched:
            score = pipeline.score_theatres(self.store, self.config, now=self.clock())
        finished = self.clock()
        details = summary.as_dict()
        if score is not None:
            details.update(score.as_dict())
        self.store.record_run(
            "poll", started_at=started, finished_at=finished, ok=True, summary=details
        )
        if summary.feeds:
            self.last_summary = (
                f"polled {summary.feeds} feeds: {summary.ok} new content, {summary.not_modified} "
                f"unchanged, {summary.errors} failed; {summary.new_articles} new articles, "
                f"{summary.events} signs"
            )
            log.info(
                "poll cycle feeds=%d ok=%d not_modified=%d errors=%d new_articles=%d matches=%d "
                "events=%d notices=%d seconds=%.1f",
                summary.feeds,
                summary.ok,
                summary.not_modified,
                summary.errors,
                summary.new_articles,
                summary.matches,
                summary.events,
                summary.notices,
                (finished - started).total_seconds(),
            )
            self.notifier.status(self.last_summary)
        if score is not None:
            self._rebuild_report(finished)
        if score is not None and score.alerts:
            await self.outbox_job()

    async def score_job(self) -> None:
        assert self.store is not None
        started = self.clock()
        summary = pipeline.score_theatres(self.store, self.config, now=started)
        self.store.record_run(
            "score",
            started_at=started,
            finished_at=self.clock(),
            ok=True,
            summary=summary.as_dict(),
        )
        log.info(
            "score cycle %s alerts=%d",
            " ".join(f"{p.theatre_id}={p.index:.0f}/{p.level}" for p in summary.points),
            len(summary.alerts),
        )
        self._rebuild_report(started)
        if summary.alerts:
            await self.outbox_job()

    def _rebuild_report(self, now: datetime) -> None:
        """Rebuild the static report in a worker thread (never overlapping, never awaited)."""
        report_dir = self.config.settings.report_dir
        if report_dir is None:
            return
        if self._report is None or self._report.out_dir != report_dir:
            from monitor.report.rebuild import ReportRebuilder

            self._report = ReportRebuilder(self.config, report_dir)
        self._report.config = self.config  # after a reload, the new names and levels
        self._report.request(now)

    async def outbox_job(self) -> None:
        self._channels.kick(self.config, self.clock())  # never waits for a channel
        async with self._outbox_lock:
            await self._drain_outbox()

    async def _drain_outbox(self) -> None:
        started = self.clock()
        config = self.config
        # smtplib blocks: deliver in a worker thread with its own connection (WAL allows it).
        stop = self._delivery_stop
        summary = await _in_daemon_thread(lambda: _drain_outbox(config, started, stop))
        if summary.sent or summary.retried or summary.dead:
            assert self.store is not None
            self.store.record_run(
                "outbox",
                started_at=started,
                finished_at=self.clock(),
                ok=True,
                summary=summary.as_dict(),
            )
            log.info(
                "outbox sent=%d retried=%d dead=%d", summary.sent, summary.retried, summary.dead
            )

    async def digest_job(self) -> None:
        assert self.store is not None
        if pipeline.run_digest(self.store, self.config, now=self.clock()) is not None:
            await self.outbox_job()

    async def maintenance_job(self) -> None:
        """Retention (db/retention.py) in short transactions, the loop free between
        them (polls and scoring run in the pauses); then a passive checkpoint."""
        assert self.store is not None
        started = self.clock()
        config = self.config
        plan = retention_plan(
            config.settings.retention, now=started, baseline_days=config.scoring.baseline_days
        )
        result = PruneResult()
        for step in prune_steps(self.store, plan):
            result.rows[step.rule] += step.rows
            result.batches += 1
            if self.stop_event is not None and self.stop_event.is_set():
                result.stopped = True
                break
            await asyncio.sleep(PRUNE_PAUSE_SECONDS)
        self.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.store.conn.execute("PRAGMA optimize")
        self.store.record_run(
            "maintenance",
            started_at=started,
            finished_at=self.clock(),
            ok=True,
            summary={**result.rows, "batches": result.batches, "stopped": result.stopped},
        )
        log.info(
            "maintenance %s batches=%d stopped=%s",
            " ".join(f"{rule}={rows}" for rule, rows in result.rows.items()),
            result.batches,
            result.stopped,
        )

    async def heartbeat_job(self) -> None:
        """Leave a trace for `monitor status`: the time, the health and the job counters."""
        assert self.store is not None
        healthy, reason = self.health()
        record = {
            "at": to_iso(self.clock()),
            "pid": os.getpid(),
            "healthy": healthy,
            "reason": reason,
        }
        with self.store.transaction():
            self.store.set_meta(HEARTBEAT_META_KEY, json.dumps(record))
            self.store.set_meta(JOB_STATS_META_KEY, json.dumps(self.stats.as_dict()))

    async def watchdog_job(self) -> None:
        healthy, reason = self.health()
        if healthy:
            self.notifier.watchdog()
        else:
            log.error("unhealthy, withholding the watchdog ping: %s", reason)
            self.notifier.status(f"unhealthy: {reason}")

    # -- health --------------------------------------------------------------

    def health(self, *, check_database: bool = True) -> tuple[bool, str]:
        """Healthy while the poll and score jobs ran recently and the database answers.

        `check_database=False` is for other threads (the metrics server), which check the
        database on their own connection.
        """
        if check_database and (self.store is None or not self.store.ping()):
            return False, "database does not answer"
        now = time.monotonic()
        for job_id in ("poll", "score"):
            failures = self.stats.consecutive_errors.get(job_id, 0)
            if failures >= FAILURES_BEFORE_UNHEALTHY:
                return (
                    False,
                    f"job {job_id} failed {failures} times in a row: {self.stats.last_error.get(job_id, '')}",
                )
            interval = self._intervals.get(job_id)
            last = self.stats.last_ok.get(job_id)
            if interval is None:
                continue
            if last is None:
                last = self._started_monotonic
            if now - last > 3 * interval + 60:
                errors = self.stats.errors.get(job_id, 0)
                return (
                    False,
                    f"job {job_id} has not completed for {now - last:.0f} s ({errors} errors)",
                )
        return True, "ok"

    def _start_metrics(self) -> MetricsEndpoint:
        self._metrics = MetricsEndpoint(self)
        self._metrics.move_to(self.config.settings.metrics_listen)
        return self._metrics


class MetricsEndpoint:
    """The optional /healthz and /metrics endpoint of a daemon: none, or one server on
    `listen`, which a reload can start, move or stop."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.listen: str | None = None
        self._server: Any = None

    def move_to(self, listen: str | None) -> None:
        """Serve on `listen` (None: stop). The new server is started before the old one is
        closed: if it cannot be (MonitorError), the old one keeps serving."""
        if listen == self.listen:
            return
        from monitor.service.metrics import start_daemon_metrics

        db_path = self._daemon.config.settings.db_path
        started = start_daemon_metrics(self._daemon, listen, db_path) if listen else None
        old, self._server, self.listen = self._server, started, listen
        if old is not None:
            old.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def _warn_if_undeliverable(config: Config) -> None:
    """Loudly, at start: a deployment that stores alerts but sends them nowhere."""
    problem = config_delivery_problem(config)
    if problem:
        log.warning("NO ALERT WILL BE SENT: %s", problem)


def _drain_outbox(config: Config, now: datetime, stop: DeliveryStop) -> pipeline.DeliverySummary:
    with Store.open(config.settings.db_path, migrate=False) as store:
        return pipeline.deliver_outbox(store, config, now=now, stop=stop)


_T = TypeVar("_T")


async def _in_daemon_thread(func: Callable[[], _T]) -> _T:
    """`asyncio.to_thread`, but in a daemon thread of its own. The default executor's threads
    are joined when the process exits, so one stuck in a call nothing can wake (a DNS lookup)
    would hold the process past the stop promise; a daemon thread is left behind instead."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():  # the job was cancelled at the stop deadline
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = func()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="outbox-delivery", daemon=True).start()
    return await future


async def run_once(config: Config, *, now: datetime | None = None) -> pipeline.CycleSummary:
    """`monitor run --once`: one full cycle (poll what is due, score, digest, send) and exit."""
    _warn_if_undeliverable(config)
    # SIGTERM (systemd stopping monitor-once.service, a shell's `kill`) cancels the cycle
    # as the daemon's stop does: each feed is recorded whole or not at all, the parser
    # workers and the writer end, and the exit says so (`StoppedBySignal`).
    loop = asyncio.get_running_loop()
    cycle = asyncio.current_task()
    stopped: list[int] = []

    def stop(signum: int) -> None:
        if cycle is not None and not stopped:
            stopped.append(signum)
            cycle.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, stop, signal.SIGTERM)
    try:
        return await _run_once(config, now=now)
    except asyncio.CancelledError:
        if not stopped:
            raise
        raise StoppedBySignal(
            "stopped by SIGTERM during the cycle: what was recorded is kept; "
            "the feeds not yet recorded are polled again next time"
        ) from None
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _run_once(config: Config, *, now: datetime | None) -> pipeline.CycleSummary:
    settings = config.settings
    with acquire_instance_lock(settings.db_path), Store.open(settings.db_path) as store:
        moment = now or utcnow()
        with store.transaction():
            mark_deployment(store, now=moment)  # demo/replay keep out
        store.sync_feeds(config.feeds, now=moment)
        async with Fetcher(settings.http) as fetcher:
            parsers = ParserPool.for_settings(settings.http)
            try:
                summary = await pipeline.run_cycle(
                    store, config, fetcher, parsers, now=moment, rng=random.Random()
                )
            finally:
                parsers.close()
        store.record_run(
            "once",
            started_at=moment,
            finished_at=utcnow(),
            ok=True,
            summary={
                **summary.poll.as_dict(),
                **summary.score.as_dict(),
                **summary.delivery.as_dict(),
            },
        )
        return summary
