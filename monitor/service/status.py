"""`monitor status`: is the service alive and well, as a report and an exit status.

Owns the health rules (what makes the service ok, degraded or down), finding out
whether a daemon holds the instance lock, and rendering the report. It reads the
database through `db` read functions and the lock file without locking it: it never
calls flock(2) on the lock file (a probe lock, even a shared one, could make a daemon
that starts at that instant refuse to run): it looks the lock up in /proc/locks, and
checks the pid recorded in the file. It never writes.

The rules (also in the command's help):

* down (exit 2): the database cannot be read; or no cycle (a `poll` or `score` round of
  the daemon, or a `run --once` round) ended within `max_cycle_age`; or the daemon is
  not running although the last cycle was the daemon's (a timer deployment has no
  daemon between rounds, which is normal).
* degraded (exit 1): nothing to deliver alerts to (no recipient and no maildir: see
  `delivery_problem`); every feed, or more than half of those polled, failing (each has
  failed every poll since its last success); no new article stored for longer than
  `quiet_period` while feeds answer; a configured feed has been failing for longer than
  `feed_failing_after`, or is gone (HTTP 410); a message died in the outbox within
  `dead_window`; a pending message is overdue by more than `pending_overdue_after`
  (a message held for quiet hours counts from its `not_before`); the latest run of a
  job recorded an error.
* ok (exit 0): none of these.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import db
from monitor.db import channels as channel_store
from monitor.models import Settings, from_iso, to_iso, utc
from monitor.service.instance_lock import lock_path_for

if TYPE_CHECKING:
    from monitor.config import Config

OK, DEGRADED, DOWN = "ok", "degraded", "down"
EXIT_STATUS = {OK: 0, DEGRADED: 1, DOWN: 2}
CYCLE_JOBS = frozenset(db.STATUS_CYCLE_JOBS)
DAEMON_JOBS = frozenset({"poll", "score"})
PROC_LOCKS = Path("/proc/locks")
SCHEDULER_STATS_META_KEY = "scheduler_stats"  # = service.JOB_STATS_META_KEY (not imported:
# that would load APScheduler for a status check)


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    """The thresholds of the rules above."""

    max_cycle_age: timedelta = timedelta(minutes=45)  # 3 × the default score tick
    feed_failing_after: timedelta = timedelta(hours=24)
    pending_overdue_after: timedelta = timedelta(hours=1)
    dead_window: timedelta = timedelta(days=7)
    # No new article for this long while feeds answer; None: no check (quiet_period_hours = 0)
    quiet_period: timedelta | None = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class DaemonState:
    """Whether a `monitor run` (or a `run --once` round) holds the instance lock.

    `running` is None when it cannot be told (the lock file's directory is unreadable).
    """

    running: bool | None
    pid: int | None
    detail: str


@dataclass(frozen=True)
class StatusReport:
    state: str
    reasons: tuple[str, ...]
    checked_at: str
    database: str
    daemon: DaemonState
    last_cycle: dict[str, Any] | None = None
    jobs: tuple[dict[str, Any], ...] = ()
    feeds: dict[str, Any] = field(default_factory=dict)
    outbox: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] | None = None
    articles: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, Any] = field(default_factory=dict)  # per route (issue 13)

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.state]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_status"] = self.exit_status
        return data


# ---------------------------------------------------------------------------
# The instance lock, looked at without touching it


def daemon_state(db_path: Path, *, proc_locks: Path = PROC_LOCKS) -> DaemonState:
    """Is the instance lock of `db_path` held? Never takes or tests the lock itself."""
    lock_path = lock_path_for(Path(db_path))
    try:
        info = os.stat(lock_path)
    except FileNotFoundError:
        return DaemonState(False, None, f"not running (no {lock_path.name}: never started here)")
    except OSError as exc:
        return DaemonState(None, None, f"unknown ({lock_path}: {exc.strerror})")
    pid = _recorded_pid(lock_path)
    holders = _flock_holders(proc_locks, info.st_dev, info.st_ino)
    if holders:
        pid = pid or holders[0]
        return DaemonState(True, pid, f"running (pid {pid} holds {lock_path.name})")
    # Not seen in /proc/locks (none on this system, or a file system whose locks are
    # listed under another device, such as overlayfs): trust the pid the holder wrote,
    # if that process lives. A clean stop erases it; after a kill -9 the process is gone.
    if pid is not None and _is_alive(pid):
        return DaemonState(True, pid, f"running (pid {pid}, recorded in {lock_path.name})")
    if holders is not None:
        return DaemonState(False, None, f"not running ({lock_path.name} is not locked)")
    if pid is None:
        return DaemonState(False, None, f"not running (no pid in {lock_path.name})")
    return DaemonState(False, None, f"not running (pid {pid} in {lock_path.name} is gone)")


def _flock_holders(proc_locks: Path, device: int, inode: int) -> list[int] | None:
    """Pids holding a flock(2) on the file (device, inode), or None without /proc/locks.

    Lines look like `3: FLOCK  ADVISORY  WRITE 1234 fd:01:5767168 0 EOF`; waiters have
    `->` after the number and are skipped.
    """
    try:
        text = proc_locks.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    wanted = (os.major(device), os.minor(device), inode)
    holders = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        try:
            major, minor, node = fields[5].split(":")
            key = (int(major, 16), int(minor, 16), int(node))
            holder = int(fields[4])
        except ValueError:
            continue
        if key == wanted:
            holders.append(holder)
    return holders


def _recorded_pid(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None  # 0640: readable by the service's group only
    return int(text) if text.isdigit() else None


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


# ---------------------------------------------------------------------------
# Where alerts go


def delivery_problem(
    settings: Settings, *, theatres_with_recipients: Sequence[str] = ()
) -> str | None:
    """Why alerts would be stored but not sent, or None when they have somewhere to go.

    A maildir counts as a destination: every message is written there and marked sent
    (a local mail client or a forwarder reads it; the demo works this way). Without one,
    `smtp.recipients` must name someone: recipients of single theatres alone (their ids in
    `theatres_with_recipients`) leave the digest, the feed notices and every other
    theatre's alerts undelivered.
    """
    if settings.smtp.recipients or settings.maildir is not None or settings.routes:
        return None
    fix = "set smtp.recipients (or MONITOR_SMTP_RECIPIENTS) or maildir"
    own = sorted(theatres_with_recipients)
    if own:
        return (
            f"smtp.recipients is empty: only the alerts of {', '.join(own)} have recipients; "
            f"digests, feed notices and other theatres' alerts are stored but never sent ({fix})"
        )
    return f"no recipient configured: alerts are stored but never sent ({fix})"


def config_delivery_problem(config: Config) -> str | None:
    """`delivery_problem` of a whole configuration (its theatres' own recipients named)."""
    return delivery_problem(
        config.settings,
        theatres_with_recipients=[t.id for t in config.rules.theatres.values() if t.recipients],
    )


# ---------------------------------------------------------------------------
# The rules


def assess(
    store: db.Store | None,
    *,
    database: str,
    daemon: DaemonState,
    now: datetime,
    policy: StatusPolicy,
    open_error: str | None = None,
    config_problems: Sequence[str] = (),
) -> StatusReport:
    """Apply the rules to what the database records. `store` None means it could not be
    opened (`open_error` says why): that is down. `config_problems` (e.g. from
    `delivery_problem`) make the state degraded at least."""
    now = utc(now)
    checked_at = to_iso(now)
    if store is None:
        reason = f"cannot read the database: {open_error or 'unknown error'}"
        return StatusReport(DOWN, (reason,), checked_at, database, daemon)

    down: list[str] = []
    degraded: list[str] = list(config_problems)

    jobs = tuple(_job_row(row, now) for row in db.last_run_rows(store))
    cycles = [job for job in jobs if job["job"] in CYCLE_JOBS]
    last_cycle = max(cycles, key=lambda job: job["finished_at"]) if cycles else None
    if last_cycle is None:
        down.append("no cycle recorded yet (the daemon has not completed a round)")
    elif last_cycle["age_seconds"] > policy.max_cycle_age.total_seconds():
        down.append(
            f"no cycle for {_duration(last_cycle['age_seconds'])} (last: {last_cycle['job']} "
            f"at {last_cycle['finished_at']}; limit {_duration(policy.max_cycle_age)})"
        )
    if daemon.running is False and last_cycle is not None and last_cycle["job"] in DAEMON_JOBS:
        down.append(f"the daemon is {daemon.detail}")
    for job in jobs:
        if not job["ok"] or job["error"]:
            degraded.append(f"the last {job['job']} run failed: {job['error'] or 'error'}")

    feeds = _feed_summary(db.feed_health_rows(store), now=now, policy=policy)
    degraded.extend(feeds.pop("problems"))
    articles = _article_summary(db.article_activity(store), now=now)
    quiet = _quiet_problem(articles, answering=feeds["ok"], policy=policy)
    if quiet:
        degraded.append(quiet)

    outbox = db.outbox_health(
        store,
        now=now,
        overdue_after=policy.pending_overdue_after,
        dead_window=policy.dead_window,
    )
    if outbox["recent_dead"]:
        degraded.append(
            f"{outbox['recent_dead']} message(s) died in the outbox in the last "
            f"{_duration(policy.dead_window)} (see `monitor alerts --status dead`)"
        )
    if outbox["overdue_pending"]:
        degraded.append(
            f"{outbox['overdue_pending']} pending message(s) overdue by more than "
            f"{_duration(policy.pending_overdue_after)} (oldest due {outbox['oldest_overdue_since']})"
        )

    channels = channel_store.route_health(
        store, now=now, overdue_after=policy.pending_overdue_after, dead_window=policy.dead_window
    )
    for route, health in channels.items():
        if health["recent_dead"]:
            degraded.append(
                f"route {route}: {health['recent_dead']} message(s) died in the last "
                f"{_duration(policy.dead_window)} ({health['last_error']})"
            )
        if health["overdue_pending"]:
            degraded.append(
                f"route {route}: {health['overdue_pending']} pending message(s) overdue by more "
                f"than {_duration(policy.pending_overdue_after)} ({health['last_error']})"
            )

    scheduler = _scheduler_stats(store.get_meta(SCHEDULER_STATS_META_KEY))
    state = DOWN if down else DEGRADED if degraded else OK
    return StatusReport(
        state=state,
        reasons=tuple(down + degraded),
        checked_at=checked_at,
        database=database,
        daemon=daemon,
        last_cycle=last_cycle,
        jobs=jobs,
        feeds=feeds,
        outbox=outbox,
        scheduler=scheduler,
        articles=articles,
        channels=channels,
    )


def _scheduler_stats(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable": text[:80]}
    return value if isinstance(value, dict) else {"value": value}


def _job_row(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    try:
        summary = json.loads(row["summary"]) if row["summary"] else {}
    except ValueError:
        summary = {"unreadable": str(row["summary"])[:80]}
    finished = from_iso(row["finished_at"])
    return {
        "job": row["job"],
        "finished_at": row["finished_at"],
        "age_seconds": round((now - finished).total_seconds()),
        "ok": bool(row["ok"]),
        "error": row["error"],
        "summary": summary,
    }


def _feed_summary(
    rows: Sequence[Mapping[str, Any]], *, now: datetime, policy: StatusPolicy
) -> dict[str, Any]:
    counts = {"ok": 0, "failing": 0, "gone": 0, "never_polled": 0}
    problems: list[str] = []
    failing: list[dict[str, Any]] = []
    for row in rows:
        health = str(row["health"]).replace(" ", "_")
        counts[health] = counts.get(health, 0) + 1
        if health not in ("failing", "gone"):
            continue
        # A 410 stops polling and clears the failure count: it is gone since that poll.
        since = row["failing_since"] if health == "failing" else row["last_error_at"]
        if health == "gone":
            problems.append(
                f"feed {row['id']} is gone (HTTP 410 since {since or 'an unknown time'}): "
                "remove it from indicators.yaml"
            )
        failing.append(
            {
                "id": row["id"],
                "health": health,
                "failing_since": since,
                "consecutive_failures": row["consecutive_failures"],
                "last_error": row["last_error"],
            }
        )
        if health == "failing" and since and now - from_iso(since) > policy.feed_failing_after:
            problems.append(
                f"feed {row['id']} has failed for {_duration(now - from_iso(since))} "
                f"({row['last_error'] or 'no error recorded'})"
            )
    polled = counts["ok"] + counts["failing"] + counts["gone"]
    broken = counts["failing"] + counts["gone"]
    if polled and broken == polled:
        problems.insert(
            0, f"every polled feed is failing or gone ({broken} of {polled}; see `monitor feeds`)"
        )
    elif 2 * broken > polled:
        problems.insert(
            0,
            f"{broken} of {polled} polled feeds are failing or gone, more than half "
            "(see `monitor feeds`)",
        )
    return {"total": len(rows), **counts, "failing_feeds": failing, "problems": problems}


def _article_summary(activity: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    last = activity["last_article_at"]
    reference = last or activity["first_cycle_at"]
    return {
        "last_stored_at": last,
        "watching_since": activity["first_cycle_at"],
        "quiet_seconds": None
        if reference is None
        else max(0, round((now - from_iso(reference)).total_seconds())),
    }


def _quiet_problem(
    articles: Mapping[str, Any], *, answering: int, policy: StatusPolicy
) -> str | None:
    """No new article for longer than the quiet period although feeds answer: something
    between fetching and storing is wrong (every feed 304s or parses to nothing)."""
    quiet, limit = articles["quiet_seconds"], policy.quiet_period
    if limit is None or quiet is None or not answering or quiet <= limit.total_seconds():
        return None
    last = articles["last_stored_at"]
    when = f"last stored {last}" if last else "none ever stored"
    return (
        f"no new article stored for {_duration(quiet)} although {answering} feed(s) answer "
        f"({when}; limit health.quiet_period_hours = {_duration(limit)})"
    )


def _duration(value: timedelta | float) -> str:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# ---------------------------------------------------------------------------
# Rendering


def render_status(report: StatusReport, *, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str)
    lines = [f"monitor status: {report.state.upper()} (exit {report.exit_status})"]
    lines += [f"  - {reason}" for reason in report.reasons]
    lines.append(f"daemon:      {report.daemon.detail}")
    cycle = report.last_cycle
    if cycle is not None:
        lines.append(
            f"last cycle:  {cycle['job']} ended {cycle['finished_at']} "
            f"({_duration(cycle['age_seconds'])} ago)"
        )
    elif report.outbox:
        lines.append("last cycle:  none recorded")
    for job in report.jobs:
        flag = "ok" if job["ok"] and not job["error"] else "FAILED"
        lines.append(
            f"  {job['job']:<12} {job['finished_at']}  {flag}  {_compact(job['summary'])}".rstrip()
        )
    feeds = report.feeds
    if feeds:
        lines.append(
            f"feeds:       {feeds['total']} configured: {feeds['ok']} ok, {feeds['failing']} "
            f"failing, {feeds['gone']} gone, {feeds['never_polled']} never polled"
        )
        for feed in feeds["failing_feeds"]:
            since = feed["failing_since"] or "an unknown time"
            count = (
                "HTTP 410, no longer polled"
                if feed["health"] == "gone"
                else f"{feed['consecutive_failures']} failures"
            )
            lines.append(
                f"  {feed['id']:<24} {feed['health']} since {since} ({count}): "
                f"{feed['last_error'] or ''}".rstrip()
            )
    articles = report.articles
    if articles:
        last = articles["last_stored_at"]
        quiet = articles["quiet_seconds"]
        lines.append(
            f"articles:    last stored {last} ({_duration(quiet)} ago)"
            if last and quiet is not None
            else "articles:    none stored yet"
        )
    outbox = report.outbox
    if outbox:
        lines.append(
            f"outbox:      {outbox['pending']} pending ({outbox['overdue_pending']} overdue), "
            f"{outbox['sent']} sent, {outbox['dead']} dead ({outbox['recent_dead']} recently)"
        )
    for route, health in report.channels.items():
        error = f"; last error: {health['last_error']}" if health["last_error"] else ""
        lines.append(
            f"route {route + ':':<7} {health['pending']} pending ({health['overdue_pending']} "
            f"overdue), {health['sent']} sent, {health['dead']} dead{error}"
        )
    if report.scheduler:
        counters = {
            name: value
            for name, value in report.scheduler.items()
            if isinstance(value, dict) and value and name != "last_error"
        }
        for name, value in counters.items():
            lines.append(f"scheduler:   {name}: {_compact(value)}")
    lines.append(f"database:    {report.database}")
    lines.append(f"checked at:  {report.checked_at}")
    return "\n".join(lines)


def _compact(summary: Mapping[str, Any], *, width: int = 90) -> str:
    """`feeds=12 ok=10 errors=2 …` from a run's JSON summary (numbers and short texts)."""
    parts = []
    for key, value in summary.items():
        if isinstance(value, bool | int | float | str) and len(str(value)) <= 24:
            parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"
