"""StoreWriter: one thread, its own connection, batched transactions (issue 17)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from monitor.db import Store
from monitor.db.writer import StoreWriter
from monitor.errors import DatabaseError

TIMEOUT = 30.0


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    path = tmp_path / "monitor.db"
    Store.open(path).close()
    return str(path)


def meta(db_path: str) -> dict[str, str]:
    with Store.open(db_path, readonly=True) as store:
        return {row["key"]: row["value"] for row in store.query("SELECT key, value FROM meta")}


def set_meta(key: str) -> Any:
    def job(store: Store) -> int:
        store.set_meta(key, "x")
        return threading.get_ident()

    return job


def test_jobs_run_on_one_other_thread_and_queued_jobs_share_a_transaction(db_path: str) -> None:
    async def scenario() -> tuple[list[int], int, int]:
        async with StoreWriter(db_path) as writer:
            threads = await asyncio.gather(*(writer.submit(set_meta(f"k{n}")) for n in range(40)))
            return list(threads), threading.get_ident(), writer.transactions

    threads, loop_thread, transactions = run(scenario())
    assert len(set(threads)) == 1 and loop_thread not in threads
    assert 1 <= transactions < 40  # submitted together, written together
    assert set(meta(db_path)) >= {f"k{n}" for n in range(40)}


def test_a_failing_job_rolls_back_only_itself(db_path: str) -> None:
    def half_then_fail(store: Store) -> None:
        store.set_meta("half", "written")
        raise ValueError("bad feed")

    async def scenario() -> list[Any]:
        async with StoreWriter(db_path) as writer:
            return await asyncio.gather(
                writer.submit(set_meta("before")),
                writer.submit(half_then_fail),
                writer.submit(set_meta("after")),
                return_exceptions=True,
            )

    before, failed, after = run(scenario())
    assert isinstance(failed, ValueError) and str(failed) == "bad feed"
    assert isinstance(before, int) and isinstance(after, int)
    stored = meta(db_path)
    assert "half" not in stored
    assert {"before", "after"} <= set(stored)


def test_a_cancelled_poll_abandons_queued_jobs_and_finishes_the_running_one(
    db_path: str,
) -> None:
    """SIGTERM cancels the poll: the batch in hand commits whole, queued jobs never run,
    and the thread ends, so nothing is half-written and the stop is bounded."""
    entered, release = threading.Event(), threading.Event()

    def slow(store: Store) -> None:
        store.set_meta("slow", "started")
        entered.set()
        release.wait(TIMEOUT)
        store.set_meta("slow-end", "done")

    async def scenario() -> StoreWriter:
        writer = StoreWriter(db_path, batch_jobs=1)

        async def poll() -> None:
            async with writer:
                await asyncio.gather(
                    writer.submit(slow), *(writer.submit(set_meta(f"q{n}")) for n in range(5))
                )

        task = asyncio.create_task(poll())
        for _ in range(int(TIMEOUT / 0.01)):
            if entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert entered.is_set()
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return writer

    writer = run(scenario())
    assert not writer._thread.is_alive()
    stored = meta(db_path)
    assert stored.get("slow") == "started" and stored.get("slow-end") == "done"
    assert not any(key.startswith("q") for key in stored)


def test_an_unopenable_database_fails_at_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with StoreWriter(str(tmp_path)):  # a directory, not a database file
            pass

    with pytest.raises(DatabaseError, match="cannot open the database"):
        run(scenario())
