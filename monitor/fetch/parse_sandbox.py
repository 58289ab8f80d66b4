"""Run `parser.parse_feed` in worker processes bounded in time and memory.

Owns a small pool of persistent worker processes: fresh interpreters running
`python -m monitor.fetch.parse_sandbox`, so the daemon is never forked nor re-imported. Each
worker sets RLIMIT_AS at start; a parse that runs past the timeout gets its worker
killed; a worker that hits the memory limit or dies returns or becomes a `ParseResult`
with error_kind "parse_resource_limit", and a fresh worker takes its place. The caller
keeps running whatever a feed does.

`parse_and_match` also runs the matcher on every entry in the worker, so matching costs
the daemon's event loop nothing. The rule set reaches each worker once (pickled once per
rule set, sent to a worker with its first job under that rule set), not with every feed.

Must not: fetch, store, or parse in the calling process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import multiprocessing.connection
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from monitor.models import ArticleText, Entry, HttpSettings, Match, ParseResult

if TYPE_CHECKING:
    from monitor.detect.rules import RuleSet
    from monitor.score.stories import GroupingFacts

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 20.0
DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024
RESOURCE_LIMIT = "parse_resource_limit"
# A new worker's interpreter start and imports (about 0.2 s quiet, over a second on a
# loaded host) are not part of any feed's parse time: the worker says "ready" first, and
# the parse clock starts after that. A worker that cannot even start within this long is
# killed and the feed gets a clear error.
STARTUP_TIMEOUT_SECONDS = 60.0
READY = "ready"

EntryMatches = tuple[tuple[Match, ...], ...]
"""The matches of each entry of a `ParseResult`, in the order of its entries."""

EntryFacts = tuple["GroupingFacts", ...]
"""The grouping facts (`stories.grouping_facts`) of each entry, in the order of its entries."""

STAGES = ("parse", "match", "group")
StageSeconds = tuple[float, float, float]
"""CPU seconds a worker spent on one job, per stage of `STAGES`: parsing the feed,
matching its entries, their grouping facts."""

# (result, replace the worker, matches, facts, CPU per stage)
_Reply = tuple[ParseResult, bool, EntryMatches | None, EntryFacts | None, StageSeconds | None]
_RulesSpec = tuple[int, bytes | None]  # (rule-set generation, its pickle if the worker lacks it)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parse and, when it could be done, the matches of every entry."""

    result: ParseResult
    matches: EntryMatches | None = None  # None: not matched (the caller matches itself)
    facts: EntryFacts | None = None  # None: not computed (the writer computes them)


def article_text(entry: Entry) -> ArticleText:
    """What the matcher reads of an entry: the same fields a stored article is matched on."""
    return ArticleText(
        title=entry.title,
        text=entry.summary,
        language=entry.language,
        published_at=entry.published_at,
    )


def _mappingproxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


def _rebuild_record(cls: type[Any], names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    return cls(**dict(zip(names, values, strict=True)))


class _RulesPickler(pickle.Pickler):
    """The rule set's two kinds of object that pickle cannot take its default way:

    - read-only mappings (`MappingProxyType`) travel as dicts;
    - frozen dataclass records travel as their fields and are built again through their
      `__init__`. The default way sets each field on a bare instance, which a frozen
      record of the mypyc-compiled matcher refuses (`FrozenInstanceError`): the workers
      would get no rules and every entry would be matched in the main process instead.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is MappingProxyType:
            return _mappingproxy, (dict(obj),)
        params = getattr(type(obj), "__dataclass_params__", None)
        if params is None or not params.frozen:
            return NotImplemented
        fields = dataclasses.fields(obj)
        if not all(f.init for f in fields):
            return NotImplemented
        names = tuple(f.name for f in fields)
        return _rebuild_record, (type(obj), names, tuple(getattr(obj, name) for name in names))


def pickle_rules(rules: RuleSet) -> bytes:
    """The rule set as bytes for the workers (`_RulesPickler`)."""
    buffer = io.BytesIO()
    pickler = _RulesPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dump(rules)
    return buffer.getvalue()


def _match_entries(result: ParseResult, rules: RuleSet) -> EntryMatches:
    from monitor.detect.matcher import match_article

    return tuple(tuple(match_article(article_text(entry), rules)) for entry in result.entries)


def _try_entry_facts(result: ParseResult, rules: RuleSet) -> EntryFacts | None:
    try:
        from monitor.score.stories import grouping_facts

        return tuple(grouping_facts(entry, rules) for entry in result.entries)
    except MemoryError:
        raise
    except Exception:  # the writer computes them itself
        return None


def _load_rules(spec: _RulesSpec) -> tuple[int | None, RuleSet | None]:
    try:
        assert spec[1] is not None
        return spec[0], pickle.loads(spec[1])
    except MemoryError:
        raise
    except Exception:  # the caller matches itself when a worker has no rules
        return None, None


def _try_match_entries(result: ParseResult, rules: RuleSet) -> EntryMatches | None:
    try:
        return _match_entries(result, rules)
    except MemoryError:
        raise
    except Exception:  # the caller matches itself, and sees the error there
        return None


def _limit_result(message: str) -> ParseResult:
    return ParseResult(entries=(), status="error", error_kind=RESOURCE_LIMIT, message=message)


def _failed(message: str) -> _Reply:
    """The reply for a job a worker could not finish: a resource limit, the worker replaced."""
    return _limit_result(message), True, None, None, None


def _worker_main(
    conn: multiprocessing.connection.Connection, memory_bytes: int, reject_entities: bool
) -> None:
    """A worker's life: limit itself, then parse jobs until told to stop (None) or EOF."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    from monitor.detect.matcher import match_article  # noqa: F401 - imported before "ready"
    from monitor.fetch.parser import parse_feed

    try:
        conn.send(READY)
    except (OSError, EOFError):
        return
    rules: RuleSet | None = None
    generation: int | None = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError, MemoryError):
            return
        if job is None:
            return
        body, kwargs, rules_spec = job
        replace_me = False
        matches: EntryMatches | None = None
        facts: EntryFacts | None = None
        # the CPU clock at the start of each stage and at the end of the last one done
        clock: list[float] = []
        try:
            if rules_spec is not None and rules_spec[1] is not None:
                generation, rules = _load_rules(rules_spec)  # no stage's time
            clock.append(time.process_time())
            result = parse_feed(body, reject_entity_declarations=reject_entities, **kwargs)
            clock.append(time.process_time())
            if rules_spec is not None and rules is not None and rules_spec[0] == generation:
                matches = _try_match_entries(result, rules)
                clock.append(time.process_time())
                facts = _try_entry_facts(result, rules)
                clock.append(time.process_time())
        except MemoryError:
            result = _limit_result(f"the parser exceeded the {memory_bytes}-byte memory limit")
        except BaseException as exc:  # parse_feed should not raise; never let a job kill us
            result = ParseResult(
                entries=(),
                status="error",
                error_kind="parse_exception",
                message=f"{type(exc).__name__}: {exc}"[:500],
            )
        del body, job
        if result.error_kind == RESOURCE_LIMIT:
            replace_me = True  # after a MemoryError the heap is not worth trusting
            matches = facts = None
        if len(clock) == 1:  # the parse itself failed: its time was parsing
            clock.append(time.process_time())
        spent = [end - start for start, end in pairwise(clock)] + [0.0, 0.0, 0.0]
        stages = (spent[0], spent[1], spent[2])
        try:
            conn.send((result, replace_me, matches, facts, stages))
        except MemoryError:
            conn.send(_failed("the parse result exceeded the memory limit"))
            return
        except (OSError, EOFError):
            return
        if replace_me:
            return


class _Worker:
    """One parser process, started with `python -m monitor.fetch.parse_sandbox` (a fresh
    interpreter: nothing of the daemon is forked or re-imported), talking over a socketpair."""

    def __init__(self, memory_bytes: int, reject_entities: bool) -> None:
        parent_sock, child_sock = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        command = [
            sys.executable,
            "-m",
            "monitor.fetch.parse_sandbox",
            str(child_sock.fileno()),
            str(memory_bytes),
            "reject" if reject_entities else "allow",
        ]
        try:
            self.process = subprocess.Popen(
                command,
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            child_sock.close()
        self.conn = multiprocessing.connection.Connection(parent_sock.detach())
        self.parses = 0
        self.rules_generation: int | None = None  # the rule set this worker holds
        self.ready = False  # has the worker said READY (its start-up is not parse time)?

    def job_for(self, body: bytes, kwargs: dict[str, Any], rules: _RulesSpec | None) -> Any:
        """The message for one job; the rule set's bytes go only to a worker that lacks them."""
        if rules is not None and rules[0] == self.rules_generation:
            rules = (rules[0], None)
        return (body, kwargs, rules)

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def roundtrip(
        self, body: bytes, kwargs: dict[str, Any], rules: _RulesSpec | None, timeout: float
    ) -> _Reply:
        """Send one job and wait for its reply (blocking; runs in a thread)."""
        self.parses += 1
        try:
            if not self.ready:
                if not self.conn.poll(STARTUP_TIMEOUT_SECONDS) or self.conn.recv() != READY:
                    self.kill()
                    message = (
                        f"the parser process did not start within {STARTUP_TIMEOUT_SECONDS:g} s"
                    )
                    return _failed(message)
                self.ready = True
            self.conn.send(self.job_for(body, kwargs, rules))
            if rules is not None:
                self.rules_generation = rules[0]
            if not self.conn.poll(timeout):
                self.kill()
                return _failed(f"parsing took longer than {timeout:g} s")
            reply: _Reply = self.conn.recv()
            if rules is not None and reply[2] is None:
                self.rules_generation = None  # not matched: send the rules again next time
            return reply
        except (EOFError, OSError) as exc:
            code = self.kill()
            message = f"the parser process died (exit code {code}): {exc}"
            return _failed(message)

    def kill(self) -> int | None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()
        return self.process.returncode

    def stop(self) -> None:
        """Ask the worker to finish, and kill it if it does not."""
        with contextlib.suppress(Exception):
            self.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1)
        if self.is_alive():
            self.kill()
        with contextlib.suppress(Exception):
            self.conn.close()


class ParserPool:
    """Persistent parser workers. `await pool.parse(body, …)` never raises for bad input.

    Workers start on the first parse. `close()` stops them (also safe if never started).
    `reject_entity_declarations=False` turns the `<!ENTITY` pre-check off; only tests that
    prove the sandbox catches what the pre-check normally stops should use it.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        reject_entity_declarations: bool = True,
        max_parses_per_worker: int = 2000,
    ) -> None:
        self.size = max(1, workers if workers is not None else min(os.cpu_count() or 1, 4))
        self.timeout_seconds = timeout_seconds
        self.memory_bytes = memory_bytes
        self.reject_entity_declarations = reject_entity_declarations
        self.max_parses_per_worker = max_parses_per_worker
        self.workers_replaced = 0  # killed, died or recycled after a resource limit
        self.rules_sent = 0  # times a rule set went to a worker (once per worker and rule set)
        # CPU seconds the workers reported per stage (`STAGES`), retired workers included:
        # where a poll's parsing work goes (`bench/poll.py`).
        self.stage_seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._threads = ThreadPoolExecutor(max_workers=self.size * 2, thread_name_prefix="parser")
        self._slots: asyncio.Queue[_Worker | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._all: set[_Worker] = set()
        self._closed = False
        self._rules: RuleSet | None = None
        self._rules_spec: _RulesSpec | None = None  # (generation, pickled rules)
        self._pickling: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def for_settings(cls, http: HttpSettings) -> ParserPool:
        """The pool with the deployment's parse time and memory bounds."""
        return cls(timeout_seconds=http.parse_timeout_seconds, memory_bytes=http.parse_memory_bytes)

    async def parse(
        self,
        body: bytes,
        *,
        feed_id: str,
        fetched_at: datetime,
        headers: dict[str, str] | None = None,
        language_hint: str | None = None,
    ) -> ParseResult:
        """Parse in a worker within the time and memory bounds (see `parser.parse_feed`)."""
        parsed = await self._run(
            body,
            feed_id=feed_id,
            fetched_at=fetched_at,
            headers=headers,
            language_hint=language_hint,
            rules=None,
        )
        return parsed.result

    async def parse_and_match(
        self,
        body: bytes,
        *,
        rules: RuleSet,
        feed_id: str,
        fetched_at: datetime,
        headers: dict[str, str] | None = None,
        language_hint: str | None = None,
    ) -> ParsedFeed:
        """Parse, then match every entry against `rules`, in a worker, within the same
        bounds. `matches` is None when the worker could not match (the caller then
        matches itself): the matches are an optimisation, never the only way to get them."""
        if rules is not self._rules:
            # Pickled once per rule set (a reload brings a new one), in a helper thread so
            # the event loop keeps running; sent once per worker.
            async with self._rules_lock():
                if rules is not self._rules:
                    loop = asyncio.get_running_loop()
                    blob = await loop.run_in_executor(self._threads, pickle_rules, rules)
                    generation = self._rules_spec[0] + 1 if self._rules_spec is not None else 1
                    self._rules, self._rules_spec = rules, (generation, blob)
        return await self._run(
            body,
            feed_id=feed_id,
            fetched_at=fetched_at,
            headers=headers,
            language_hint=language_hint,
            rules=self._rules_spec,
        )

    def _rules_lock(self) -> asyncio.Lock:
        """One rule-set pickling at a time (a lock belongs to one event loop)."""
        loop = asyncio.get_running_loop()
        if self._pickling is None or self._pickling[0] is not loop:
            self._pickling = (loop, asyncio.Lock())
        return self._pickling[1]

    async def _run(
        self,
        body: bytes,
        *,
        feed_id: str,
        fetched_at: datetime,
        headers: dict[str, str] | None,
        language_hint: str | None,
        rules: _RulesSpec | None,
    ) -> ParsedFeed:
        if self._closed:
            raise RuntimeError("ParserPool is closed")
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            # A queue belongs to one event loop; a new loop (asyncio.run again) gets a new
            # queue holding the workers that are still alive.
            self._loop = loop
            self._slots = asyncio.Queue()
            live = [worker for worker in self._all if worker.is_alive()]
            for index in range(self.size):
                self._slots.put_nowait(live[index] if index < len(live) else None)
        kwargs = {
            "feed_id": feed_id,
            "fetched_at": fetched_at,
            "headers": dict(headers) if headers else None,
            "language_hint": language_hint,
        }
        body = bytes(body)
        slot = await self._slots.get()
        worker: _Worker | None = slot
        finished = False
        try:
            if worker is None or not worker.is_alive():
                if worker is not None:
                    self._retire(worker, replaced=True)
                worker = await loop.run_in_executor(self._threads, self._start_worker)
            if rules is not None and worker.rules_generation != rules[0]:
                self.rules_sent += 1  # this job carries the rule set's bytes
            result, replace_me, matches, facts, stages = await loop.run_in_executor(
                self._threads, worker.roundtrip, body, kwargs, rules, self.timeout_seconds
            )
            finished = True
            if stages is not None:
                for name, seconds in zip(STAGES, stages, strict=True):
                    self.stage_seconds[name] += seconds
            if replace_me:
                logger.warning(
                    "parser worker replaced feed=%s kind=%s reason=%s",
                    feed_id,
                    result.error_kind,
                    result.message,
                )
                self._retire(worker, replaced=True)
                worker = None
            elif worker.parses >= self.max_parses_per_worker:
                self._retire(worker, replaced=False)
                worker = None
            if matches is not None and len(matches) != len(result.entries):
                matches = None  # never trust a reply that does not line up
            if facts is not None and len(facts) != len(result.entries):
                facts = None
            return ParsedFeed(result, matches, facts)
        finally:
            if not finished and worker is not None:
                worker.kill()  # cancelled mid-parse: the worker's state is unknown
                self._retire(worker, replaced=True)
                worker = None
            self._slots.put_nowait(worker)

    def _start_worker(self) -> _Worker:
        worker = _Worker(self.memory_bytes, self.reject_entity_declarations)
        self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker, *, replaced: bool) -> None:
        if worker in self._all:
            self._all.discard(worker)
            if replaced:
                self.workers_replaced += 1
            if self._closed:
                worker.stop()
            else:
                self._threads.submit(worker.stop)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        return [w.process.pid for w in self._all if w.is_alive()]

    def close(self) -> None:
        """Stop every worker and the helper threads. The pool cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        for worker in list(self._all):
            worker.stop()
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> ParserPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _main(argv: list[str]) -> None:
    """Worker entry point: `python -m monitor.fetch.parse_sandbox FD MEMORY_BYTES reject|allow`."""
    fd, memory_bytes, mode = int(argv[0]), int(argv[1]), argv[2]
    _worker_main(multiprocessing.connection.Connection(fd), memory_bytes, mode == "reject")


if __name__ == "__main__":
    _main(sys.argv[1:])
