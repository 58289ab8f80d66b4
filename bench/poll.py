"""Polling benchmark: fetch + parse of N feeds against a local server with latency.

Prints, for one cold cycle (every feed 200 with a body, parsed in the sandbox pool) and
one warm cycle (every feed 304): wall time, requests/s and peak RSS; and, in the same
run, two baselines:

- sequential `feedparser.parse(url)` per feed, what simple scripts do (a sample of
  feeds, extrapolated to N: it says so);
- the pure CPU time of `feedparser.parse` on the same bytes, the floor of any design
  that parses every feed with feedparser.

Targets (ratios, not absolute speed): cold <= 1.5 x floor + 1 s; warm <= 2 s for 1,000
feeds; peak RSS <= 200 MB (the daemon process; parser workers are listed apart).

    .venv/bin/python bench/poll.py            # 1,000 feeds x 50 items, 100 ms latency
    .venv/bin/python bench/poll.py --feeds 100

The feed server runs in a child process (`--serve`), so its CPU and memory are not
counted as ours. Feeds are on distinct host names (feed-0001.bench.test…) resolved to
127.0.0.1 by an injected resolver, as 1,000 real feeds are spread over many hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import feedparser

from monitor.fetcher import Fetcher
from monitor.models import FeedState, FetchResult, HttpSettings
from monitor.parse_sandbox import ParserPool

NOW = datetime(2024, 9, 14, 8, 0, tzinfo=UTC)
WORDS_EN = [
    "border",
    "clash",
    "troops",
    "talks",
    "ceasefire",
    "ministry",
    "defence",
    "frontier",
    "village",
    "shelling",
    "negotiations",
    "delegation",
    "president",
    "statement",
    "government",
    "region",
    "water",
    "enclave",
    "road",
    "checkpoint",
    "police",
    "military",
    "exercise",
    "agreement",
    "security",
    "council",
    "tension",
    "incident",
]
WORDS_RU = [
    "граница",
    "столкновение",
    "войска",
    "переговоры",
    "перемирие",
    "министерство",
    "оборона",
    "село",
    "обстрел",
    "делегация",
    "президент",
    "заявление",
    "правительство",
    "регион",
    "вода",
    "анклав",
    "дорога",
    "блокпост",
    "милиция",
    "учения",
    "соглашение",
    "безопасность",
    "совет",
    "напряженность",
    "инцидент",
]


# ---------------------------------------------------------------------------
# Feeds (deterministic, so the server and the floor measure the same bytes)


def make_feed(index: int, items: int) -> bytes:
    """An RSS 2.0 feed of realistic size: ~1.2 KB per item (title, link, guid, date,
    two categories, an HTML description of 3 paragraphs)."""
    rng = random.Random(index)
    words = WORDS_RU if index % 3 == 0 else WORDS_EN
    host = f"outlet{index}.example.org"
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Outlet {index}</title><link>https://{host}/</link>"
        f"<description>News from outlet {index}</description><language>"
        f"{'ru' if words is WORDS_RU else 'en'}</language><ttl>30</ttl>"
    ]
    for n in range(items):
        title = " ".join(rng.choice(words) for _ in range(rng.randint(8, 14))).capitalize()
        paragraphs = "".join(
            "&lt;p&gt;"
            + " ".join(rng.choice(words) for _ in range(rng.randint(25, 40)))
            + ".&lt;/p&gt;"
            for _ in range(3)
        )
        published = NOW - timedelta(minutes=37 * n + index % 60)
        parts.append(
            f"<item><title>{title}</title><link>https://{host}/news/{index}/{n}</link>"
            f'<guid isPermaLink="false">{host}-{n}</guid>'
            f"<pubDate>{format_datetime(published, usegmt=True)}</pubDate>"
            f"<category>{rng.choice(words)}</category><category>{rng.choice(words)}</category>"
            f"<dc:creator>Reporter {rng.randint(1, 40)}</dc:creator>"
            f"<description>{paragraphs}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


# ---------------------------------------------------------------------------
# The server (child process)


def serve(feeds: int, items: int, latency: float) -> None:
    """A small asyncio HTTP/1.1 server (keep-alive, ETag/304): cheap per request, so the
    benchmark measures the client, not Python's thread-per-connection http.server."""
    bodies = [make_feed(index, items) for index in range(feeds)]  # built before timing
    etags = [etag_of(body).encode() for body in bodies]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
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


# ---------------------------------------------------------------------------
# The client side


@dataclass
class Cycle:
    name: str
    wall_seconds: float
    requests: int
    outcomes: dict[str, int]
    entries: int
    errors: list[str]
    main_cpu_seconds: float  # the daemon process: fetching, pool bookkeeping
    worker_cpu_seconds: float  # the parser processes
    load: tuple[float, float]  # 1-minute load average before and after


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def state_for(index: int, port: int) -> FeedState:
    return FeedState(
        feed_id=f"feed-{index:04d}", url=f"http://feed-{index:04d}.bench.test:{port}/feed/{index}"
    )


async def loopback_resolver(host: str, port: int) -> Sequence[str]:
    return ["127.0.0.1"]


async def cycle(
    name: str,
    states: list[FeedState],
    http: HttpSettings,
    pool: ParserPool,
) -> tuple[Cycle, list[FetchResult]]:
    """One poll cycle as the daemon runs it: fetch, then parse each body in the pool as
    soon as it arrives; at most `global_concurrency` bodies are held at once."""
    outcomes: dict[str, int] = {}
    errors: list[str] = []
    entries = 0
    results: list[FetchResult] = []
    inflight = asyncio.Semaphore(http.global_concurrency)

    async def one(state: FeedState) -> None:
        nonlocal entries
        async with inflight:
            result = await fetcher.fetch(state, now=NOW)
            if result.outcome == "ok" and result.body is not None:
                parsed = await pool.parse(
                    result.body,
                    feed_id=state.feed_id,
                    fetched_at=result.fetched_at,
                    headers=result.headers,
                )
                entries += len(parsed.entries)
                if parsed.status == "error":
                    errors.append(f"{state.feed_id}: parse {parsed.error_kind}")
            elif result.outcome == "error":
                errors.append(f"{state.feed_id}: {result.error_kind} {result.error_message}")
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        results.append(replace(result, body=None))

    load_before = os.getloadavg()[0]
    workers_before = {pid: process_cpu_seconds(pid) for pid in pool.worker_pids()}
    cpu_before = time.process_time()
    started = time.perf_counter()
    async with Fetcher(http, resolver=loopback_resolver) as fetcher:
        await asyncio.gather(*(one(state) for state in states))
    wall = time.perf_counter() - started
    main_cpu = time.process_time() - cpu_before
    worker_cpu = sum(
        process_cpu_seconds(pid) - workers_before.get(pid, 0.0) for pid in pool.worker_pids()
    )
    load = (load_before, os.getloadavg()[0])
    summary = Cycle(name, wall, len(states), outcomes, entries, errors, main_cpu, worker_cpu, load)
    return summary, results


def peak_rss_mib(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def sequential_baseline(port: int, sample: int) -> float:
    """Seconds for `feedparser.parse(url)` on `sample` feeds, one after another."""
    os.environ["no_proxy"] = "*"
    started = time.perf_counter()
    for index in range(sample):
        parsed = feedparser.parse(f"http://127.0.0.1:{port}/feed/{index}")
        assert len(parsed.entries) > 0, parsed.get("bozo_exception")
    return time.perf_counter() - started


def floor_cpu_seconds(feeds: int, items: int, sample: int) -> tuple[float, int]:
    """CPU seconds of `feedparser.parse(BytesIO(body))` on the first `sample` feeds."""
    total = 0.0
    for index in range(sample):
        body = make_feed(index, items)
        started = time.process_time()
        feedparser.parse(io.BytesIO(body), response_headers={"content-type": "application/rss+xml"})
        total += time.process_time() - started
    return total, sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per response")
    parser.add_argument("--concurrency", type=int, default=100, help="global_concurrency")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parser processes")
    parser.add_argument("--sequential-sample", type=int, default=50)
    parser.add_argument("--floor-sample", type=int, default=0, help="0: every feed")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.feeds, args.items, args.latency)
        return 0

    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--feeds",
            str(args.feeds),
            "--items",
            str(args.items),
            "--latency",
            str(args.latency),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        return run(args, port)
    finally:
        child.terminate()
        child.wait(timeout=10)


def run(args: argparse.Namespace, port: int) -> int:
    n = args.feeds
    http = HttpSettings(
        global_concurrency=args.concurrency,
        per_host_concurrency=2,
        per_host_min_interval_seconds=1.0,
        allow_private_networks=("127.0.0.0/8",),
    )
    states = [state_for(index, port) for index in range(n)]
    pool = ParserPool(workers=args.workers)
    print(
        f"poll bench: {n} feeds x {args.items} items, {args.latency * 1000:.0f} ms latency, "
        f"global_concurrency={args.concurrency}, parser workers={args.workers}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, feedparser {feedparser.__version__}"
    )
    sizes = [len(make_feed(i, args.items)) for i in range(min(n, 20))]
    print(f"feed size: ~{sum(sizes) / len(sizes) / 1024:.0f} KiB ({args.items} items)")
    try:
        cold, cold_results = asyncio.run(cycle("cold", states, http, pool))
        validators = {r.feed_id: r.etag for r in cold_results}
        warm_states = [replace(s, etag=validators.get(s.feed_id)) for s in states]
        warm, _ = asyncio.run(cycle("warm", warm_states, http, pool))
        worker_peaks = [peak_rss_mib(pid) for pid in pool.worker_pids()]
    finally:
        pool.close()
    main_peak = peak_rss_mib()

    sample = min(n, args.sequential_sample)
    sequential = sequential_baseline(port, sample) * n / sample
    floor_sample = n if args.floor_sample <= 0 else min(n, args.floor_sample)
    floor_cpu, measured = floor_cpu_seconds(n, args.items, floor_sample)
    floor = floor_cpu * n / measured

    print()
    for c in (cold, warm):
        print(
            f"{c.name:>5} cycle: {c.wall_seconds:7.2f} s wall, {c.requests / c.wall_seconds:7.1f} "
            f"requests/s, outcomes {c.outcomes}, {c.entries} entries, {len(c.errors)} errors"
        )
        print(
            f"             CPU: daemon {c.main_cpu_seconds:.2f} s, parser workers "
            f"{c.worker_cpu_seconds:.2f} s; load average {c.load[0]:.1f} -> {c.load[1]:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        for line in c.errors[:5]:
            print("       ", line)
    extrapolated = f" (extrapolated from {sample} feeds)" if sample < n else ""
    print(f"baseline sequential feedparser.parse(url): {sequential:7.2f} s{extrapolated}")
    floor_note = f" (extrapolated from {measured} feeds)" if measured < n else ""
    print(f"floor: feedparser.parse CPU time on the same bytes: {floor:7.2f} s{floor_note}")
    print(
        f"peak RSS: daemon process {main_peak:.0f} MiB; parser workers "
        + ", ".join(f"{p:.0f}" for p in worker_peaks)
        + " MiB each"
    )
    print()
    cold_target = 1.5 * floor + 1.0
    warm_target = 2.0 * max(1.0, n / 1000)  # the target is set for 1,000 feeds
    checks = [
        ("cold <= 1.5 x floor + 1 s", cold.wall_seconds, cold_target),
        (f"warm <= {warm_target:.2f} s", warm.wall_seconds, warm_target),
        ("peak RSS <= 200 MiB", main_peak, 200.0),
    ]
    for label, value, target in checks:
        verdict = "ok" if value <= target else "MISSED"
        print(f"{label:<28} {value:8.2f} vs {target:8.2f}  {verdict}")
    cold_cpu = cold.main_cpu_seconds + cold.worker_cpu_seconds
    print(
        f"cold CPU (daemon + workers) / floor: {cold_cpu / floor:.2f} "
        "(CPU time: less sensitive than wall time to other load on the machine)"
    )
    print(
        f"ratios: cold/floor {cold.wall_seconds / floor:.2f}, "
        f"sequential/cold {sequential / cold.wall_seconds:.1f}x, "
        f"cold/warm {cold.wall_seconds / warm.wall_seconds:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
