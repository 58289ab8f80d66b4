"""`monitor demo`: the whole real pipeline, offline, on a simulated clock.

Owns the demo's stage: a local HTTP server on 127.0.0.1 that serves the bundled sample
feeds (`demo_data/items.jsonl`, written for the demo from real reported events) as they
stood at the simulated time, a local SMTP server (aiosmtpd) that saves what it receives
as a Maildir and .eml files, and a clock that walks through the story. Everything in
between is the production code: fetcher, parser, db, matcher, scoring, alerts, notify.

Running it again on the same output folder resumes after the last simulated time, so it
polls the same feeds once more, finds nothing new, and sends nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from monitor import db, pipeline
from monitor.config import Config, load_config
from monitor.deliver.content import sparkline
from monitor.fetch.fetcher import Fetcher
from monitor.fetch.parse_sandbox import ParserPool
from monitor.lab.corpus import CorpusItem, load_corpus, source_feed_id
from monitor.lab.mailsink import MailSink
from monitor.models import Feed, Settings, from_iso, to_iso
from monitor.service.deployment import scratch_database

CLOCK_META_KEY = "demo_clock"
PUBLISH_HOUR = 9  # demo items are published at 09:00 UTC on their day
POLL_DELAY = timedelta(hours=3)  # and polled three hours later
DECAY_STEPS = (
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=28),
)
FEED_WINDOW = 30  # items a feed shows, newest first, like a real feed
RECIPIENT = "analyst@example.org"


@dataclass(frozen=True)
class DemoItem:
    feed_slug: str
    item: CorpusItem
    published_at: datetime


def load_demo_items() -> list[DemoItem]:
    path = resources.files("monitor.lab").joinpath("demo_data/items.jsonl")
    with resources.as_file(path) as file_path:
        items = load_corpus(file_path)
    result = []
    for item in items:
        if item.published_at is None:
            continue
        published = item.published_at.replace(hour=PUBLISH_HOUR, minute=0, second=0)
        result.append(
            DemoItem(feed_slug=source_feed_id(item.source), item=item, published_at=published)
        )
    return sorted(result, key=lambda d: (d.published_at, d.item.id))


# ---------------------------------------------------------------------------
# The local feed server


class DemoFeedServer:
    """Serves /<slug>.xml: the items published by the simulated time, with an ETag."""

    def __init__(self, items: Sequence[DemoItem]) -> None:
        self.items = list(items)
        self.clock: datetime = datetime.min
        self.lock = threading.Lock()
        self.titles = {d.feed_slug: d.item.source for d in items}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                slug = self.path.strip("/").removesuffix(".xml")
                if slug not in server.titles:
                    self.send_error(404)
                    return
                body = server.render(slug)
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> DemoFeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def set_clock(self, now: datetime) -> None:
        with self.lock:
            self.clock = now

    def url(self, slug: str) -> str:
        return f"http://127.0.0.1:{self.port}/{slug}.xml"

    def render(self, slug: str) -> bytes:
        with self.lock:
            now = self.clock
        visible = [d for d in self.items if d.feed_slug == slug and d.published_at <= now]
        visible = sorted(visible, key=lambda d: d.published_at, reverse=True)[:FEED_WINDOW]
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<rss version="2.0"><channel>',
            f"<title>{escape(self.titles[slug])}</title>",
            "<link>https://demo.monitor.invalid/</link>",
            "<description>Sample feed for `monitor demo` (synthetic, written for the demo)</description>",
        ]
        for d in visible:
            body = d.item.text.split("\n\n", 1)[1] if "\n\n" in d.item.text else d.item.text
            parts.append(
                "<item>"
                f"<title>{escape(d.item.title)}</title>"
                f"<link>{escape(d.item.url)}</link>"
                f'<guid isPermaLink="true">{escape(d.item.url)}</guid>'
                f"<pubDate>{format_datetime(d.published_at)}</pubDate>"
                f"<description>{escape(body)}</description>"
                "</item>"
            )
        parts.append("</channel></rss>")
        return "\n".join(parts).encode("utf-8")


# ---------------------------------------------------------------------------
# The simulated clock


def clock_steps(items: Sequence[DemoItem]) -> list[datetime]:
    """Poll a little after each publication, then a few times as the story fades."""
    moments = sorted({d.published_at + POLL_DELAY for d in items})
    steps: set[datetime] = set(moments)
    for index, moment in enumerate(moments):
        following = moments[index + 1] if index + 1 < len(moments) else None
        for delay in DECAY_STEPS:
            later = moment + delay
            if following is None or later < following:
                steps.add(later)
    return sorted(steps)


def demo_config(out_dir: Path, *, db_path: Path, feeds: Sequence[Feed], smtp_port: int) -> Config:
    base = load_config(indicators_path=None, settings_path=None, env={})
    settings: Settings = base.settings
    settings = replace(
        settings,
        db_path=db_path,
        maildir=None,
        smtp=replace(
            settings.smtp,
            host="127.0.0.1",
            port=smtp_port,
            security="none",
            sender="monitor@demo.localhost",
            recipients=(RECIPIENT,),
            timeout_seconds=10.0,
        ),
        http=replace(
            settings.http,
            allow_private_networks=("127.0.0.0/8",),
            per_host_min_interval_seconds=0.0,
        ),
    )
    return replace(
        base,
        settings=settings,
        feeds=tuple(feeds),
        indicators_path=base.indicators_path + " (demo feeds)",
    )


def run_demo(
    out_dir: Path,
    *,
    db_path: Path | None = None,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Run the story; return what happened (the CLI prints as it goes)."""
    return asyncio.run(_run_demo(out_dir, db_path=db_path, echo=echo))


@dataclass(frozen=True)
class DemoResult:
    db_path: Path
    mail_dir: Path
    steps: int
    new_articles: int
    emails_sent: int
    resumed: bool


async def _run_demo(
    out_dir: Path, *, db_path: Path | None, echo: Callable[[str], None]
) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    database = db_path or out_dir / "monitor.db"
    mail_dir = out_dir / "mail"
    items = load_demo_items()
    steps = clock_steps(items)
    rng = random.Random(20220916)  # deterministic jitter: the same story every time
    new_articles = sent = 0
    database.parent.mkdir(parents=True, exist_ok=True)
    # Never into a deployment's database, nor one a daemon holds (service/deployment.py).
    guard = scratch_database(
        database,
        tool="the demo",
        own_feed_ids={d.feed_slug for d in items},
        hint="leave out --db (the demo then uses OUT/monitor.db) or name a new file",
    )
    with guard, DemoFeedServer(items) as server, MailSink(mail_dir) as sink:
        feeds = [
            Feed(id=slug, url=server.url(slug), name=name, language=None)
            for slug, name in sorted(server.titles.items())
        ]
        config = demo_config(out_dir, db_path=database, feeds=feeds, smtp_port=sink.port)
        with db.Store.open(database) as store:
            last = store.get_meta(CLOCK_META_KEY)
            resumed = last is not None
            if last is not None:
                last_clock = from_iso(last)
                steps = [s for s in steps if s > last_clock] or [last_clock + timedelta(hours=1)]
            # The feed addresses change with the server's port; articles are keyed by feed id.
            store.sync_feeds(feeds, now=steps[0])
            echo(
                f"monitor demo: {len(items)} sample items in {len(feeds)} feeds, "
                f"{len(steps)} steps of simulated time from {steps[0]:%Y-%m-%d} to {steps[-1]:%Y-%m-%d}"
                + (" (resuming)" if resumed else "")
            )
            parsers = ParserPool.for_settings(config.settings.http)
            try:
                async with Fetcher(config.settings.http) as fetcher:
                    for now in steps:
                        server.set_clock(now)
                        for feed in feeds:  # every step polls every feed, like a due tick
                            store.make_due(feed.id, now=now)
                        cycle = await pipeline.run_cycle(
                            store, config, fetcher, parsers, now=now, rng=rng
                        )
                        new_articles += cycle.poll.new_articles
                        sent += cycle.delivery.sent
                        for decision in cycle.score.alerts:
                            if decision.urgent:
                                echo(
                                    f"  {now:%Y-%m-%d}  {decision.theatre_id or '-':<6} {decision.kind:<9} {decision.reason}"
                                )
                        with store.transaction():
                            store.set_meta(CLOCK_META_KEY, to_iso(now))
                    # Anything still pending (a retry) gets one more chance at the end.
                    final = pipeline.deliver_outbox(
                        store, config, now=steps[-1] + timedelta(hours=1), rng=rng
                    )
                    sent += final.sent
            finally:
                parsers.close()
            echo("")
            echo(render_story(store, config))
            counts = store.outbox_counts()
        total_received = len(sink.received())
    echo("")
    echo(
        f"{new_articles} new articles stored; {sent} alert emails sent this run "
        f"({counts.get('sent', 0)} in total, {counts.get('pending', 0)} pending, {counts.get('dead', 0)} dead)."
    )
    if resumed and sent == 0:
        echo(
            "Nothing new: this database had already seen the whole story, so nothing was sent twice."
        )
    echo(f"Database:  {database}")
    report = _write_report(out_dir, database, config, now=steps[-1])
    if report is not None:
        echo(f"Report:    {report}")
    echo(
        f"Emails:    {sink.eml_dir} (.eml files, {total_received} received this run) and {sink.maildir_path} (a Maildir)"
    )
    prog = _program_name()
    echo(f"Try:       {prog} --db {database} history -t kg-tj --since 2021-01-01 --every 1w")
    echo(f"           {prog} --db {database} explain -t kg-tj --at 2022-09-17")
    echo(f'           {prog} --db {database} articles --search "Batken clash"')
    echo(f"           {prog} --db {database} alerts")
    return DemoResult(
        db_path=database,
        mail_dir=mail_dir,
        steps=len(steps),
        new_articles=new_articles,
        emails_sent=sent,
        resumed=resumed,
    )


def _write_report(out_dir: Path, database: Path, config: Config, *, now: datetime) -> Path | None:
    """The static report of the demo's database (as of its last simulated moment) in
    `out_dir/report`; returns the path of its index.html."""
    from monitor.report.build import build_report

    with db.Store.open(database, readonly=True) as store:
        result = build_report(store, config, out_dir / "report", now=now)
    return result.index.resolve()


def _program_name() -> str:
    """How the user ran us, so the suggested commands can be pasted as they are."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if invoked is not None and invoked.name == "monitor":
        return str(invoked) if shutil.which("monitor") != str(invoked.resolve()) else "monitor"
    return "python -m monitor"


def render_story(store: db.Store, config: Config) -> str:
    """The score history as a month-by-theatre table of peaks, with a sparkline each."""
    theatres = list(config.rules.theatres)
    rows = db.history_rows(
        store,
        theatre_id=None,
        since=datetime(2000, 1, 1).astimezone(),
        until=datetime(2100, 1, 1).astimezone(),
        every="1d",
    )
    by_month: dict[str, dict[str, float]] = {}
    series: dict[str, list[float]] = {t: [] for t in theatres}
    for row in rows:
        month = str(row["at"])[:7]
        peaks = by_month.setdefault(month, {})
        peaks[row["theatre_id"]] = max(peaks.get(row["theatre_id"], 0.0), float(row["score"]))
        series.setdefault(row["theatre_id"], []).append(float(row["score"]))
    lines = [
        "Score history (monthly peak, 0-100):",
        "month    " + "".join(f"{t:>8}" for t in theatres),
    ]
    for month in sorted(by_month):
        peaks = by_month[month]
        if max(peaks.values(), default=0.0) < 1.0:
            continue
        lines.append(f"{month}  " + "".join(f"{peaks.get(t, 0.0):8.0f}" for t in theatres))
    lines.append("")
    for theatre in theatres:
        values = series.get(theatre, [])
        if values:
            lines.append(f"{theatre:<7} {sparkline(values, width=60)}  peak {max(values):.0f}")
    return "\n".join(lines)
