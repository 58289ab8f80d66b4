"""ParserPool: real worker processes, real limits (reliability.md tests 1-4, 10)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.detect.matcher import match_article
from monitor.fetch.parse_sandbox import ParsedFeed, ParserPool, article_text
from monitor.fetch.parser import MAX_ENTRIES, parse_feed
from monitor.models import ParseResult
from tests.support.daemon import CLASH_ITEMS
from tests.support.daemon import rss as daemon_rss
from tests.support.detection import shipped_rules
from tests.support.http import FeedServer, Reply
from tests.support.parsing import (
    billion_laughs,
    entity_cases,
    good_rss,
    quadratic_blowup,
    rss,
    xxe,
)

FETCHED_AT = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)
MIB = 1024 * 1024


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def parse_with(pool: ParserPool, body: bytes, **kwargs: Any) -> ParseResult:
    return await pool.parse(body, feed_id="feed", fetched_at=FETCHED_AT, **kwargs)


def test_a_slow_worker_start_is_not_counted_as_parse_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded host a new worker's interpreter start and imports can take longer than
    the parse timeout; the feed must not fail for it. Here every worker's start-up takes
    at least 1.5 s (a `sitecustomize` the child imports first), the parse timeout is 1 s,
    and two feeds still parse, before and after a worker is replaced."""
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(1.5)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))

    async def scenario() -> tuple[ParseResult, ParseResult, ParseResult, int]:
        pool = ParserPool(
            workers=1,
            timeout_seconds=1.0,
            memory_bytes=4096 * MIB,
            reject_entity_declarations=False,
        )
        try:
            first = await parse_with(pool, good_rss(2))
            blown = await parse_with(pool, quadratic_blowup())  # killed at 1 s: replaced
            after = await parse_with(pool, good_rss(3))
            return first, blown, after, pool.workers_replaced
        finally:
            pool.close()

    first, blown, after, replaced = run(scenario())
    assert first.status == "ok" and len(first.entries) == 2, first.message
    assert after.status == "ok" and len(after.entries) == 3, after.message
    assert (blown.error_kind, replaced) == ("parse_resource_limit", 1)


def test_a_pool_parse_equals_an_in_process_parse() -> None:
    body = good_rss(5)
    headers = {"content-type": "application/rss+xml", "content-location": "https://x.org/f"}

    async def scenario() -> ParseResult:
        async with ParserPool(workers=1) as pool:
            return await parse_with(pool, body, headers=headers, language_hint="en")

    expected = parse_feed(
        body, feed_id="feed", fetched_at=FETCHED_AT, headers=headers, language_hint="en"
    )
    assert run(scenario()) == expected


@pytest.mark.parametrize(
    ("memory_bytes", "timeout_seconds", "reason"),
    [
        pytest.param(256 * MIB, 20.0, "memory", id="rlimit-as"),
        pytest.param(4096 * MIB, 1.0, "longer than", id="timeout"),
    ],
)
def test_a_quadratic_blowup_without_the_precheck_is_stopped_and_the_pool_recovers(
    memory_bytes: int, timeout_seconds: float, reason: str
) -> None:
    """Test 3: with the entity pre-check off, feedparser's fallback parser expands the
    entity (500 MB title); the sandbox stops it, the pool replaces the worker, the next
    feed parses normally."""

    async def scenario() -> tuple[ParseResult, ParseResult, int]:
        pool = ParserPool(
            workers=1,
            memory_bytes=memory_bytes,
            timeout_seconds=timeout_seconds,
            reject_entity_declarations=False,
        )
        try:
            blown = await parse_with(pool, quadratic_blowup())
            after = await parse_with(pool, good_rss(2))
            return blown, after, pool.workers_replaced
        finally:
            pool.close()

    blown, after, replaced = run(scenario())
    assert (blown.status, blown.error_kind) == ("error", "parse_resource_limit")
    assert reason in (blown.message or "")
    assert after.status == "ok" and len(after.entries) == 2
    assert replaced == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(quadratic_blowup(), id="quadratic-blowup"),
        pytest.param(billion_laughs().encode(), id="billion-laughs"),
    ],
)
def test_with_the_precheck_entity_attacks_never_reach_the_parser(body: bytes) -> None:
    async def scenario() -> tuple[ParseResult, int]:
        async with ParserPool(workers=1, memory_bytes=256 * MIB) as pool:
            return await parse_with(pool, body), pool.workers_replaced

    result, replaced = run(scenario())
    assert (result.status, result.error_kind) == ("error", "entity_declaration")
    assert replaced == 0


def test_xxe_in_a_worker_contacts_nothing() -> None:
    with FeedServer() as server:
        server.route("/*", Reply(200, b"SECRET"))

        async def scenario() -> list[ParseResult]:
            async with ParserPool(workers=1, reject_entity_declarations=False) as pool:
                return [
                    await parse_with(pool, xxe(server.url("/x"))),
                    await parse_with(pool, xxe(server.url("/p"), parameter=True)),
                ]

        results = run(scenario())
        assert server.requests == []
    for result in results:
        assert all("SECRET" not in e.title + e.summary for e in result.entries)


def test_every_entity_case_is_recorded_by_the_pool() -> None:
    cases = entity_cases("http://127.0.0.1:9/never")

    async def scenario() -> list[ParseResult]:
        async with ParserPool(workers=2, memory_bytes=256 * MIB) as pool:
            return list(
                await asyncio.gather(*(parse_with(pool, c.body, headers=c.headers) for c in cases))
            )

    results = run(scenario())
    for case, result in zip(cases, results, strict=True):
        assert result.status in ("ok", "warning", "error")
        if case.expect_kind:
            assert result.error_kind == case.expect_kind, case.name


def test_a_worker_killed_from_outside_is_recorded_and_replaced() -> None:
    slow = rss("<div>" * 60_000 + "<item><title>x</title></item>").encode()  # about a second

    async def scenario() -> tuple[ParseResult, ParseResult]:
        async with ParserPool(workers=1, timeout_seconds=30) as pool:
            await parse_with(pool, good_rss(1))  # the worker is up
            (pid,) = pool.worker_pids()
            task = asyncio.create_task(parse_with(pool, slow))
            await asyncio.sleep(0)  # let the job be sent
            os.kill(pid, signal.SIGKILL)
            killed = await task
            after = await parse_with(pool, good_rss(1))
            assert pid not in pool.worker_pids()
            return killed, after

    killed, after = run(scenario())
    assert (killed.status, killed.error_kind) == ("error", "parse_resource_limit")
    assert "died" in (killed.message or "")
    assert after.status == "ok"


def test_a_cancelled_parse_does_not_poison_the_pool() -> None:
    slow = rss("<div>" * 60_000 + "<item><title>x</title></item>").encode()

    async def scenario() -> tuple[ParseResult, int, list[int]]:
        async with ParserPool(workers=1, timeout_seconds=30) as pool:
            task = asyncio.create_task(parse_with(pool, slow))
            deadline = time.monotonic() + 10
            while not pool.worker_pids() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # poll for the worker to exist
            (busy,) = pool.worker_pids()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = await parse_with(pool, good_rss(1))
            return after, busy, pool.worker_pids()

    after, busy, live = run(scenario())
    assert after.status == "ok"
    assert busy not in live  # the worker whose job was abandoned was replaced


def test_workers_run_in_parallel_and_results_keep_their_order() -> None:
    bodies = [good_rss(n) for n in range(1, 9)]

    async def scenario() -> tuple[list[ParseResult], set[int]]:
        async with ParserPool(workers=2) as pool:
            results = await asyncio.gather(*(parse_with(pool, b) for b in bodies))
            return list(results), set(pool.worker_pids())

    results, pids = run(scenario())
    assert [len(r.entries) for r in results] == list(range(1, 9))
    assert len(pids) == 2
    assert os.getpid() not in pids


def test_a_feed_with_100k_items_is_bounded() -> None:
    """Test 10: whichever comes first, the sandbox's time limit or the entry cap."""
    items = "".join(f"<item><title>t{n}</title><guid>g{n}</guid></item>" for n in range(100_000))
    body = rss(items).encode()

    async def scenario() -> ParseResult:
        async with ParserPool(workers=1, timeout_seconds=2.0, memory_bytes=512 * MIB) as pool:
            return await parse_with(pool, body)

    result = run(scenario())
    if result.status == "error":
        assert result.error_kind == "parse_resource_limit"
    else:
        assert len(result.entries) <= MAX_ENTRIES


def test_close_is_idempotent_and_a_closed_pool_refuses_work() -> None:
    pool = ParserPool(workers=1)
    started = time.monotonic()
    assert run(parse_with(pool, good_rss(1))).status == "ok"
    (pid,) = pool.worker_pids()
    pool.close()
    pool.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="closed"):
        run(parse_with(pool, good_rss(1)))
    assert time.monotonic() - started < 30


def test_a_pool_serves_successive_event_loops() -> None:
    pool = ParserPool(workers=2)
    try:
        bodies = [good_rss(n) for n in range(1, 5)]

        async def batch() -> list[int]:
            results = await asyncio.gather(*(parse_with(pool, b) for b in bodies))
            return [len(r.entries) for r in results]

        assert run(batch()) == [1, 2, 3, 4]
        first_pids = set(pool.worker_pids())
        assert run(batch()) == [1, 2, 3, 4]
        assert set(pool.worker_pids()) == first_pids  # the same workers, not new ones
    finally:
        pool.close()


def test_parse_and_match_matches_in_the_worker_as_in_process_and_sends_the_rules_once() -> None:
    """Issue 17: matching runs in the parser workers; the rule set reaches each worker once,
    not with every feed, and a new rule set (a reload) reaches each worker once again."""
    body = daemon_rss((*CLASH_ITEMS, ("Weather in Bishkek", "Sunny and warm all week.")))
    rules = shipped_rules()

    async def scenario() -> tuple[list[ParsedFeed], int, int]:
        async with ParserPool(workers=2) as pool:
            first = await asyncio.gather(
                *(
                    pool.parse_and_match(body, rules=rules, feed_id="f", fetched_at=FETCHED_AT)
                    for _ in range(8)
                )
            )
            sent_first = pool.rules_sent
            reloaded = dataclasses.replace(rules)  # a reload: a new rule set object
            again = [
                await pool.parse_and_match(body, rules=reloaded, feed_id="f", fetched_at=FETCHED_AT)
                for _ in range(4)
            ]
            return [*first, *again], sent_first, pool.rules_sent - sent_first

    parsed, sent_first, sent_after_reload = run(scenario())
    assert sent_first == 2
    assert 1 <= sent_after_reload <= 2
    expected = [
        tuple(match_article(article_text(entry), rules)) for entry in parsed[0].result.entries
    ]
    assert any(expected) and not all(expected)  # clashes match, the weather does not
    for one in parsed:
        assert one.matches == tuple(expected)


def test_plain_parse_sends_no_rules() -> None:
    async def scenario() -> int:
        async with ParserPool(workers=1) as pool:
            await parse_with(pool, good_rss(2))
            return pool.rules_sent

    assert run(scenario()) == 0


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_the_workers_report_their_cpu_per_stage() -> None:
    """What `bench/poll.py` splits the workers' time by: each worker measures its parsing,
    matching and grouping facts; a plain parse has only the first."""
    body = daemon_rss(CLASH_ITEMS * 20)
    rules = shipped_rules()

    async def scenario() -> tuple[dict[str, float], dict[str, float], float]:
        async with ParserPool(workers=1) as pool:
            await parse_with(pool, body)
            plain = dict(pool.stage_seconds)
            for _ in range(6):
                await pool.parse_and_match(body, rules=rules, feed_id="f", fetched_at=FETCHED_AT)
            [pid] = pool.worker_pids()
            return plain, dict(pool.stage_seconds), _process_cpu(pid)

    plain, stages, worker_cpu = run(scenario())
    assert plain["parse"] > 0 and plain["match"] == plain["group"] == 0
    assert stages["parse"] > plain["parse"] and stages["match"] > 0 and stages["group"] > 0
    # the stages are parts of the worker's own CPU time (/proc counts in clock ticks)
    assert sum(stages.values()) <= worker_cpu + 0.05
