"""Polling benchmark: the real poll cycle (fetch, parse, group, match, store) at scale.

For each size (default 100, 1,000 and 5,000 feeds of 50 items) it runs, against a local
server in a child process (100 ms per answer, ETag/304, every feed on its own host name
resolved to 127.0.0.1), in the same run:

- **monitor**: `pipeline.poll_feeds` with the deployment's own parts: `Fetcher`,
  `ParserPool` (parse and match in the workers), the writer thread and a SQLite file.
  A cold cycle (empty database: every feed 200, every item new) and a warm cycle (every
  feed 304). A lag probe on the event loop (a 10 ms timer) and a sampler of the resident
  memory of the daemon plus its parser workers run throughout;
- **the minimal peer**: `httpx.AsyncClient`, 64 requests at once, `feedparser.parse` in a
  process pool of as many processes, no storage; cold, then warm with the ETags it got;
- **the parse floor**: the CPU time of `feedparser.parse` on the same bytes, one core.

Items are recent (the last two days, as the run starts), from the labelled corpus
(tests/fixtures/corpus) and the demo's texts (monitor/lab/demo_data), English and Russian.
Each story (two corpus texts joined, with a place) is carried by about three feeds, each
in slightly different words (a prefix, a dropped or swapped word, fewer sentences), with
its own link, so grouping has to work from the titles as it does for real outlets.

Targets (issue 17), each a ratio within this run; the exit status is 1 if one is missed:
cold at 1,000 feeds <= 1.5 x the peer's cold and <= 1.5 x the floor + 1 s; per-feed cost
at 5,000 within 1.3 x that at 1,000; warm <= 1.2 x the peer's warm; daemon plus workers
<= 300 MB at 5,000 feeds; loop lag p99 <= 100 ms.

    .venv/bin/python bench/poll.py                    # 100, 1,000 and 5,000 feeds
    .venv/bin/python bench/poll.py --feeds 100        # quick
    .venv/bin/python bench/poll.py --feeds 100,1000 --cycle-timeout 300
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
# The installed monitor when there is one (a compiled wheel is measured as users get it);
# else this checkout's.
if importlib.util.find_spec("monitor") is None:
    sys.path.insert(0, str(REPO))

ITEMS_PER_FEED = 50
FEEDS_PER_STORY = 3  # on average: the same story in about three feeds
PEER_CONCURRENCY = 64
LAG_INTERVAL = 0.010
CORPUS_FILES = [
    *sorted((REPO / "tests" / "fixtures" / "corpus").glob("*.jsonl")),
    REPO / "monitor" / "lab" / "demo_data" / "items.jsonl",
]
PLACES = {
    "en": ["Batken", "Isfara", "Vorukh", "Kok-Tash", "Osh", "Khujand", "Leilek", "Ovchi-Kalacha"],
    "ru": ["Баткен", "Исфара", "Ворух", "Кок-Таш", "Ош", "Худжанд", "Лейлек", "Овчи-Калача"],
}
PREFIXES = {
    "en": ["UPDATE:", "Breaking:", "Report:"],
    "ru": ["Срочно:", "Обновлено:", "Сообщение:"],
}


# ---------------------------------------------------------------------------
# The feeds (deterministic: the server, the peer and the floor see the same bytes)


@dataclass(frozen=True)
class Text:
    title: str
    sentences: tuple[str, ...]
    language: str


def load_texts() -> dict[str, list[Text]]:
    by_language: dict[str, list[Text]] = {"en": [], "ru": []}
    for path in CORPUS_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            language = record.get("lang")
            if language not in by_language:
                continue
            body = record["text"].split("\n\n", 1)[-1]  # the text repeats its title first
            sentences = tuple(
                s.strip() + "." for s in body.replace("\n", " ").split(". ") if len(s.strip()) > 20
            )
            if sentences:
                by_language[language].append(Text(record["title"], sentences, language))
    return by_language


@dataclass(frozen=True)
class Story:
    title: str
    sentences: tuple[str, ...]
    language: str
    published: datetime


def story(number: int, texts: dict[str, list[Text]], start: datetime) -> Story:
    """Story `number`: the first half of one title and the second half of another of the
    same language, a place, sentences from both texts; published in the last two days."""
    rng = random.Random(number)
    language = "ru" if rng.random() < 0.43 else "en"
    pool = texts[language]
    first, second = rng.choice(pool), rng.choice(pool)
    a, b = first.title.split(), second.title.split()
    title = " ".join(a[: max(2, len(a) // 2)] + b[len(b) // 2 :])
    title = f"{title} ({rng.choice(PLACES[language])})"
    sentences = first.sentences[:3] + second.sentences[:2]
    published = start - timedelta(minutes=rng.randrange(48 * 60))
    return Story(title, sentences, language, published)


def variant(base: Story, feed: int) -> tuple[str, str, datetime]:
    """The story as feed `feed` words it: title, description, date (within 3 hours)."""
    rng = random.Random(feed * 7919 + hash_int(base.title))
    words = base.title.split()
    kind = rng.randrange(4)
    if kind == 1:
        words = [rng.choice(PREFIXES[base.language]), *words]
    elif kind == 2 and len(words) > 4:
        del words[rng.randrange(1, len(words) - 1)]
    elif kind == 3 and len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    keep = rng.randint(min(2, len(base.sentences)), len(base.sentences))
    text = " ".join(base.sentences[:keep])[:1200]
    published = base.published + timedelta(minutes=rng.randrange(180))
    return " ".join(words), text, published


def hash_int(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def make_feed(index: int, feeds: int, texts: dict[str, list[Text]], start: datetime) -> bytes:
    stories = max(1, feeds * ITEMS_PER_FEED // FEEDS_PER_STORY)
    rng = random.Random(index)
    host = f"outlet{index}.example.org"
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Outlet {index}</title><link>https://{host}/</link>"
        f"<description>News from outlet {index}</description><ttl>30</ttl>"
    ]
    for n in range(ITEMS_PER_FEED):
        number = rng.randrange(stories)
        title, text, published = variant(story(number, texts, start), index)
        published = min(published, start)
        parts.append(
            f"<item><title>{escape(title)}</title><link>https://{host}/news/{number}</link>"
            f'<guid isPermaLink="false">{host}-{number}-{n}</guid>'
            f"<pubDate>{format_datetime(published, usegmt=True)}</pubDate>"
            f"<description>{escape(escape(text))}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def etag_of(body: bytes) -> bytes:
    return b'"' + hashlib.sha1(body).hexdigest()[:16].encode() + b'"'


# ---------------------------------------------------------------------------
# The server (a child process: its CPU and memory are not counted as ours)


def serve(feeds: int, latency: float, start: datetime) -> None:
    texts = load_texts()
    bodies = [make_feed(i, feeds, texts, start) for i in range(feeds)]
    etags = [etag_of(body) for body in bodies]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(10_000):  # bounded: a connection serves at most this many
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, header_block = head.partition(b"\r\n")
                path = request_line.split(b" ")[1]
                condition = b""
                for line in header_block.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"if-none-match":
                        condition = value.strip()
                try:
                    index = int(path.rsplit(b"/", 1)[1])
                    body, etag = bodies[index], etags[index]
                except (ValueError, IndexError):
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                await asyncio.sleep(latency)
                if condition == etag:
                    writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n")
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8"
                        b"\r\nETag: "
                        + etag
                        + b"\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def exit_with_parent() -> None:
        sys.stdin.buffer.read()  # EOF: the benchmark process is gone
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


class Server:
    def __init__(self, feeds: int, latency: float, start: datetime) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(feeds), str(latency), start.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# ---------------------------------------------------------------------------
# Measuring


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler:
    """Every 50 ms: RSS of this process plus the given workers (the peak of the sum), and
    the CPU time of the writer thread (the last value seen before it ended)."""

    def __init__(self, worker_pids: Any) -> None:
        self.worker_pids = worker_pids
        self.peak_mib = 0.0
        self.peak_daemon_mib = 0.0
        self.writer_cpu = 0.0
        self._writer_start: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        me = os.getpid()
        last: dict[int, float] = {}
        while not self._stop.wait(0.05):
            daemon = rss_mib(me)
            total = daemon + sum(rss_mib(pid) for pid in self.worker_pids())
            self.peak_mib = max(self.peak_mib, total)
            self.peak_daemon_mib = max(self.peak_daemon_mib, daemon)
            for thread in threading.enumerate():
                if thread.name == "store-writer" and thread.native_id:
                    last[thread.native_id] = cpu_seconds(me, thread.native_id)
            self.writer_cpu = sum(last.values())


class LagProbe:
    """A 10 ms timer on the event loop; lag is how late it fires."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.lags.append(max(0.0, loop.time() - expected))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def percentile(self, q: float) -> float:
        if not self.lags:
            return float("nan")
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def idle_lag(seconds: float = 3.0) -> float:
    """p99 lag of the same probe on an event loop with nothing else to do: what the
    machine's load alone costs a timer (the floor under the target)."""
    probe = LagProbe()
    probe.start()
    await asyncio.sleep(seconds)
    probe.stop()
    return probe.percentile(0.99)


@dataclass
class Cycle:
    wall: float = float("nan")
    finished: bool = False
    main_cpu: float = 0.0
    writer_cpu: float = 0.0
    worker_cpu: float = 0.0
    lag_p50: float = float("nan")
    lag_p99: float = float("nan")
    lag_max: float = float("nan")
    peak_mib: float = 0.0
    peak_daemon_mib: float = 0.0
    gc_max: float = 0.0
    gc_total: float = 0.0
    first_scoring: float = float("nan")  # scoring and alert decisions after the cold poll
    summary: dict[str, Any] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    # CPU seconds per step, as the product measures them: the writer thread's
    # (`PollSummary.cpu`) and the parser workers' (`ParserPool.stage_seconds`, replaced
    # workers included)
    writer_steps: dict[str, float] = field(default_factory=dict)
    worker_stages: dict[str, float] = field(default_factory=dict)


@dataclass
class Size:
    feeds: int
    cold: Cycle
    warm: Cycle
    peer_cold: float
    peer_warm: float
    peer_entries: int
    floor: float
    floor_sampled: int
    peak_mib: float
    peak_daemon_mib: float
    load: tuple[float, float]
    idle_lag_p99: float


# ---------------------------------------------------------------------------
# monitor


def write_deployment(folder: Path, feeds: int, port: int) -> Any:
    import yaml

    from monitor.config import load_config

    db = folder / "monitor.db"
    settings = folder / "monitor.toml"
    settings.write_text(
        f'database_path = "{db}"\n\n[http]\nallow_private_networks = ["127.0.0.0/8"]\n'
        "per_host_min_interval_seconds = 0.0\n",
        encoding="utf-8",
    )
    document = yaml.safe_load((REPO / "indicators.yaml").read_text(encoding="utf-8"))
    document["feeds"] = [
        {
            "id": f"feed-{i:04d}",
            "name": f"Outlet {i}",
            "url": f"http://feed-{i:04d}.bench.test:{port}/feed/{i}",
        }
        for i in range(feeds)
    ]
    indicators = folder / "indicators.yaml"
    indicators.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return load_config(indicators_path=indicators, settings_path=settings, env={})


async def loopback_resolver(host: str, port: int) -> Sequence[str]:
    return ["127.0.0.1"]


class GcPauses:
    """The garbage collector's pauses, by `clock` (`gc.callbacks.append(x.on_gc)`)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.pauses: list[float] = []
        self._began: float | None = None

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = self.clock()
        elif self._began is not None:
            self.pauses.append(self.clock() - self._began)


async def monitor_cycle(
    store: Any, config: Any, parsers: Any, now: datetime, timeout: float
) -> Cycle:
    from monitor import pipeline
    from monitor.fetch.fetcher import Fetcher

    cycle = Cycle()
    probe = LagProbe()
    collections = GcPauses(time.perf_counter)
    gc.callbacks.append(collections.on_gc)
    workers_before = {pid: cpu_seconds(pid) for pid in parsers.worker_pids()}
    stages_before = dict(parsers.stage_seconds)
    cpu_before = time.process_time()
    started = time.perf_counter()
    with Sampler(parsers.worker_pids) as sampler:
        try:
            async with Fetcher(config.settings.http, resolver=loopback_resolver) as fetcher:
                probe.start()  # the daemon opens its fetcher once, at start: not measured
                summary = await asyncio.wait_for(
                    pipeline.poll_feeds(
                        store, config, fetcher, parsers, now=now, rng=random.Random(1)
                    ),
                    timeout,
                )
            cycle.finished = True
            cycle.summary = summary.as_dict()
            cycle.writer_steps = dict(summary.cpu)
        except TimeoutError:
            cycle.finished = False
        finally:
            probe.stop()
    gc.callbacks.remove(collections.on_gc)
    cycle.gc_max = max(collections.pauses, default=0.0)
    cycle.gc_total = sum(collections.pauses)
    cycle.wall = time.perf_counter() - started
    cycle.main_cpu = time.process_time() - cpu_before
    cycle.writer_cpu = sampler.writer_cpu
    cycle.worker_stages = {
        stage: seconds - stages_before.get(stage, 0.0)
        for stage, seconds in parsers.stage_seconds.items()
    }
    # The live workers' CPU (a worker replaced during the cycle took its own with it), and
    # never less than the stages the workers reported
    cycle.worker_cpu = max(
        sum(cpu_seconds(pid) - workers_before.get(pid, 0.0) for pid in parsers.worker_pids()),
        sum(cycle.worker_stages.values()),
    )
    cycle.lag_p50, cycle.lag_p99 = probe.percentile(0.5), probe.percentile(0.99)
    cycle.lag_max = max(probe.lags, default=float("nan"))
    cycle.stored = {
        table: int(store.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])
        for table in ("articles", "stories", "matches")
    }
    cycle.peak_mib = sampler.peak_mib
    cycle.peak_daemon_mib = sampler.peak_daemon_mib
    return cycle


def run_monitor(feeds: int, port: int, start: datetime, timeout: float) -> tuple[Cycle, Cycle]:
    from monitor.db import Store
    from monitor.fetch.parse_sandbox import ParserPool

    with tempfile.TemporaryDirectory(prefix="bench-poll-") as folder:
        config = write_deployment(Path(folder), feeds, port)
        with Store.open(config.settings.db_path) as store:
            store.sync_feeds(config.feeds, now=start)
            parsers = ParserPool.for_settings(config.settings.http)
            try:
                cold = asyncio.run(monitor_cycle(store, config, parsers, start, timeout))
                # The rest of a first start's cycle on what the cold poll stored: every
                # theatre scored over all of it, the alert decisions and the digest.
                from monitor import pipeline

                began = time.perf_counter()
                pipeline.score_theatres(store, config, now=start)
                pipeline.run_digest(store, config, now=start)
                cold.first_scoring = time.perf_counter() - began
                # A day later every feed is due again; each answers 304 to its ETag.
                later = start + timedelta(days=1)
                warm = asyncio.run(monitor_cycle(store, config, parsers, later, timeout))
            finally:
                parsers.close()
    return cold, warm


# ---------------------------------------------------------------------------
# The minimal peer and the floor


def peer_parse(body: bytes) -> list[tuple[str, str, str, str]]:
    import feedparser

    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-type": "text/xml"})
    return [
        (e.get("title", ""), e.get("link", ""), e.get("summary", ""), e.get("published", ""))
        for e in parsed.entries
    ]


def run_peer(feeds: int, port: int, workers: int) -> tuple[float, float, int]:
    import httpx

    async def cycle(pool: ProcessPoolExecutor, etags: dict[int, str]) -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(PEER_CONCURRENCY)
        entries = 0
        limits = httpx.Limits(max_connections=PEER_CONCURRENCY)

        async def one(client: httpx.AsyncClient, index: int) -> None:
            nonlocal entries
            headers = {"If-None-Match": etags[index]} if index in etags else {}
            async with gate:
                response = await client.get(
                    f"http://127.0.0.1:{port}/feed/{index}", headers=headers
                )
            if response.status_code == 200:
                etags[index] = response.headers.get("etag", "")
                parsed = await loop.run_in_executor(pool, peer_parse, response.content)
                entries += len(parsed)  # read `entries` after the await, not before

        started = time.perf_counter()
        async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as client:
            await asyncio.gather(*(one(client, i) for i in range(feeds)))
        return time.perf_counter() - started, entries

    etags: dict[int, str] = {}
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(peer_parse, [b"<rss/>"] * workers))  # started before timing
        cold, entries = asyncio.run(cycle(pool, etags))
        warm, _ = asyncio.run(cycle(pool, etags))
    return cold, warm, entries


def parse_floor(feeds: int, start: datetime, sample: int) -> tuple[float, int]:
    """CPU seconds of feedparser on the first `sample` feeds' bytes, scaled to all feeds."""
    import feedparser

    texts = load_texts()
    measured = min(feeds, sample)
    total = 0.0
    for index in range(measured):
        body = make_feed(index, feeds, texts, start)
        began = time.process_time()
        feedparser.parse(io.BytesIO(body), response_headers={"content-type": "text/xml"})
        total += time.process_time() - began
    return total * feeds / measured, measured


# ---------------------------------------------------------------------------
# Report


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(sizes: list[Size]) -> int:
    print()
    print(
        "| feeds | monitor cold | per feed | peer cold | floor | monitor warm | peer warm "
        "| lag p50/p99/max (cold) | daemon+workers peak | articles / stories / matches |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in sizes:
        cold = f"{s.cold.wall:.1f} s" + ("" if s.cold.finished else " (did not finish)")
        print(
            f"| {s.feeds:,} | {cold} | {1000 * s.cold.wall / s.feeds:.1f} ms | {s.peer_cold:.1f} s "
            f"| {s.floor:.1f} s{'' if s.floor_sampled == s.feeds else f' (from {s.floor_sampled})'}"
            f" | {s.warm.wall:.2f} s | {s.peer_warm:.2f} s "
            f"| {1000 * s.cold.lag_p50:.0f}/{1000 * s.cold.lag_p99:.0f}/{1000 * s.cold.lag_max:.0f}"
            f" ms | {s.peak_mib:.0f} MiB "
            f"| {s.cold.stored.get('articles', 0):,} / {s.cold.stored.get('stories', 0):,} / "
            f"{s.cold.stored.get('matches', 0):,} |"
        )
    print()
    largest_share: dict[int, float] = {}
    for s in sizes:
        c = s.cold
        total = c.main_cpu + c.worker_cpu
        loop_cpu = c.main_cpu - c.writer_cpu
        steps = {f"writer: {step}": cpu for step, cpu in c.writer_steps.items()}
        steps["writer: other (batching, hand-offs)"] = max(
            0.0, c.writer_cpu - sum(c.writer_steps.values())
        )
        stage_names = {"parse": "parsing", "match": "matching", "group": "grouping facts"}
        stages = {f"workers: {stage_names.get(k, k)}": v for k, v in c.worker_stages.items()}
        stages["workers: other (start-up, rule set, hand-offs)"] = max(
            0.0, c.worker_cpu - sum(c.worker_stages.values())
        )
        parts = {"event loop (fetching, hand-offs)": loop_cpu, **steps, **stages}
        shares = ", ".join(f"{name} {100 * cpu / total:.0f}%" for name, cpu in parts.items())
        largest = max(
            (item for item in parts.items() if item[0] != "workers: parsing"),
            key=lambda item: item[1],
        )
        print(
            f"{s.feeds:,} feeds, first start: the cold cycle then scoring and alert decisions "
            f"over what it stored, {s.cold.first_scoring:.1f} s"
        )
        print(
            f"{s.feeds:,} feeds, cold CPU {total:.1f} s (steps as the writer thread and the "
            f"parser workers measure them): {shares}"
        )
        largest_share[s.feeds] = 100 * largest[1] / total
        print(
            f"    largest step that is not parsing: {largest[0]}, "
            f"{100 * largest[1] / total:.0f}% of the cold cycle's CPU"
        )
        print(
            f"    daemon peak {s.peak_daemon_mib:.0f} MiB; load {s.load[0]:.1f} -> {s.load[1]:.1f}; "
            f"lag p99 of an idle loop {1000 * s.idle_lag_p99:.0f} ms; warm lag p99 "
            f"{1000 * s.warm.lag_p99:.0f} ms; garbage collection in the daemon: cold "
            f"{s.cold.gc_total:.1f} s (longest {1000 * s.cold.gc_max:.0f} ms), warm "
            f"{s.warm.gc_total:.1f} s (longest {1000 * s.warm.gc_max:.0f} ms)"
        )
    checks: list[tuple[str, float, float]] = []
    by_feeds = {s.feeds: s for s in sizes}
    for s in sizes:
        checks.append((f"loop lag p99, cold, {s.feeds:,} feeds (ms)", 1000 * s.cold.lag_p99, 100))
        checks.append(
            (f"largest step but parsing, {s.feeds:,} feeds (% CPU)", largest_share[s.feeds], 30)
        )
        if s.peer_warm == s.peer_warm:  # the peer ran at this size
            checks.append((f"warm / peer warm, {s.feeds:,} feeds", s.warm.wall / s.peer_warm, 1.2))
        if not s.cold.finished:
            checks.append((f"cold cycle finished, {s.feeds:,} feeds", 1.0, 0.0))
    if 1000 in by_feeds:
        s = by_feeds[1000]
        checks.append(("cold / peer cold, 1,000 feeds", s.cold.wall / s.peer_cold, 1.5))
        checks.append(
            ("cold / (1.5 x floor + 1 s), 1,000 feeds", s.cold.wall / (1.5 * s.floor + 1), 1.0)
        )
        checks.append(
            (
                "first start (cold + scoring) / cold, 1,000",
                (s.cold.wall + s.cold.first_scoring) / s.cold.wall,
                3.0,
            )
        )
    if 5000 in by_feeds:
        big = by_feeds[5000]
        checks.append(("daemon + workers peak, 5,000 feeds (MiB)", big.peak_mib, 300))
        if 1000 in by_feeds:
            ratio = (big.cold.wall / 5000) / (by_feeds[1000].cold.wall / 1000)
            checks.append(("per-feed cost 5,000 / 1,000", ratio, 1.3))
    print()
    missed = 0
    for label, value, target in checks:
        ok = value <= target
        missed += not ok
        print(f"{label:<44} {value:9.2f}  target <= {target:<6g} {verdict(ok)}")
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", default="100,1000,5000", help="comma-separated sizes")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per response")
    parser.add_argument("--cycle-timeout", type=float, default=900.0, help="seconds per cycle")
    parser.add_argument(
        "--peer-max-feeds", type=int, default=1000, help="run the peer only up to this size"
    )
    parser.add_argument("--floor-sample", type=int, default=1000, help="feeds parsed for the floor")
    args = parser.parse_args(argv)
    start = datetime.now(UTC).replace(microsecond=0)
    workers = min(os.cpu_count() or 1, 4)  # ParserPool's default, and the peer's pool
    import feedparser
    import httpx

    print(
        f"poll bench: {ITEMS_PER_FEED} items per feed, {args.latency * 1000:.0f} ms latency, "
        f"{os.cpu_count()} CPUs, {workers} parser processes, Python {sys.version.split()[0]}, "
        f"feedparser {feedparser.__version__}, httpx {httpx.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    import monitor
    from monitor.detect.build_info import matcher_build

    print(f"monitor from {Path(monitor.__file__).parent}; matcher: {matcher_build()}")
    sizes: list[Size] = []
    for feeds in (int(n) for n in args.feeds.split(",")):
        server = Server(feeds, args.latency, start)
        try:
            load_before = os.getloadavg()[0]
            idle = asyncio.run(idle_lag())
            cold, warm = run_monitor(feeds, server.port, start, args.cycle_timeout)
            if feeds <= args.peer_max_feeds:
                peer_cold, peer_warm, peer_entries = run_peer(feeds, server.port, workers)
            else:
                peer_cold = peer_warm = float("nan")
                peer_entries = 0
        finally:
            server.close()
        floor, sampled = parse_floor(feeds, start, args.floor_sample)
        size = Size(
            feeds,
            cold,
            warm,
            peer_cold,
            peer_warm,
            peer_entries,
            floor,
            sampled,
            max(cold.peak_mib, warm.peak_mib),
            max(cold.peak_daemon_mib, warm.peak_daemon_mib),
            (load_before, os.getloadavg()[0]),
            idle,
        )
        sizes.append(size)
        print(
            f"{feeds:,} feeds: monitor cold {cold.wall:.1f} s {cold.summary}, warm "
            f"{warm.wall:.2f} s; peer cold {peer_cold:.1f} s ({peer_entries:,} entries), "
            f"warm {peer_warm:.2f} s; floor {floor:.1f} s",
            flush=True,
        )
    return report(sizes)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]), datetime.fromisoformat(sys.argv[4]))
    else:
        raise SystemExit(main())
