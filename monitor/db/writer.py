"""The poll's single writer: a thread with its own connection, jobs run in batched transactions.

Owns one thread and one `Store` opened in that thread (sqlite3 connections belong to the
thread that made them), so the SQL of a poll cycle runs off the event loop and the loop
only waits for its result. Jobs are functions of the store; the writer runs the jobs that
are queued together in one `BEGIN IMMEDIATE` transaction (bounded in count and time, so
another connection waiting for the write lock waits briefly), and a job's result is handed
back only after its transaction committed. A job that raises rolls its batch back; the
batch's jobs are then run again one transaction each, so only the failing job fails.

Stopping: `close()` after the last job drains nothing (nothing is queued); leaving on an
error or a cancellation abandons the queued jobs (their futures are cancelled) and lets the
running batch finish. The thread is a daemon thread: if the process exits while a
transaction is open, SQLite rolls it back, so nothing is ever half-written.

Must not: hold a transaction across anything but the queued jobs, or be used from two
writers at once (one writer per database; the daemon's other writes wait for its lock).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from monitor.db import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BATCH_JOBS = 64
DEFAULT_BATCH_SECONDS = 0.1
JOIN_TIMEOUT_SECONDS = 5.0

_Job = tuple[Callable[[Store], Any], "Future[Any]"]


class StoreWriter:
    """`async with StoreWriter(path) as writer: result = await writer.submit(job)`."""

    def __init__(
        self,
        db_path: str,
        *,
        batch_jobs: int = DEFAULT_BATCH_JOBS,
        batch_seconds: float = DEFAULT_BATCH_SECONDS,
    ) -> None:
        self.db_path = db_path
        self.batch_jobs = max(1, batch_jobs)
        self.batch_seconds = batch_seconds
        self.transactions = 0  # committed batches (for benchmarks and tests)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._opened: Future[None] = Future()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    async def __aenter__(self) -> StoreWriter:
        self._thread.start()
        await asyncio.wrap_future(self._opened)  # an unopenable database fails here
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._abandon.set()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, JOIN_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.warning("store writer still busy after %.0f s; leaving it", JOIN_TIMEOUT_SECONDS)

    async def submit(self, job: Callable[[Store], T]) -> T:
        """Run `job(store)` in the writer's thread; its result once its transaction committed."""
        if not self._thread.is_alive():
            raise RuntimeError("the store writer is not running")
        future: Future[T] = Future()
        self._queue.put((job, future))
        return await asyncio.wrap_future(future)

    # -- the thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            store = Store.open(self.db_path, migrate=False)
        except BaseException as exc:
            self._opened.set_exception(exc)
            return
        self._opened.set_result(None)
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                if item is None:
                    break
                batch = [item]
                deadline = time.monotonic() + self.batch_seconds
                while len(batch) < self.batch_jobs and time.monotonic() < deadline:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    batch.append(more)
                self._write(store, batch)
        finally:
            self._cancel_queued()
            store.close()

    def _write(self, store: Store, batch: list[_Job]) -> None:
        jobs = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
        if self._abandon.is_set() or not jobs:
            for _job, future in jobs:
                future.set_exception(RuntimeError("abandoned: the poll stopped"))
            return
        results: list[Any] = []
        try:
            with store.transaction():
                for job, _future in jobs:
                    results.append(job(store))
        except BaseException as exc:
            if len(jobs) == 1:
                jobs[0][1].set_exception(exc)
            else:
                for one in jobs:  # the batch rolled back: each job again, alone
                    self._run_alone(store, one)
            return
        self.transactions += 1
        for (_job, future), result in zip(jobs, results, strict=True):
            future.set_result(result)

    def _run_alone(self, store: Store, item: _Job) -> None:
        job, future = item
        try:
            with store.transaction():
                result = job(store)
        except BaseException as exc:
            future.set_exception(exc)
            return
        self.transactions += 1
        future.set_result(result)

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item[1].cancel()
