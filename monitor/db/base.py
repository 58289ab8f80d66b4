"""`StoreBase`: the connection, transactions (`BEGIN IMMEDIATE`), migrations and `meta`.

Every part of the store (feeds, articles, matches, scores, alerts, runs) is a mixin on this
base; `monitor.db.Store` puts them together. The transaction rules for all of them: a
read-modify-write takes the write lock up front (`transaction()`), readers open the file
read-only, and no `await` ever runs inside a transaction (the store is synchronous).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from monitor.errors import DatabaseError
from monitor.models import (
    from_iso,
    to_iso,
)

if TYPE_CHECKING:
    import sqlite_utils

    from monitor.db.story_window import CompactNames, SignWindow, TitleWindow
    from monitor.score.stories import EventStory

    StoryWindows = tuple[TitleWindow, SignWindow, int]


from monitor.db.connection import connect
from monitor.db.schema import MIGRATIONS, SCHEMA_VERSION


def _opt_iso(value: datetime | None) -> str | None:
    return None if value is None else to_iso(value)


def _opt_dt(value: str | None) -> datetime | None:
    return None if not value else from_iso(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class StoreBase:
    """`StoreBase`: the connection, transactions (`BEGIN IMMEDIATE`), migrations and `meta`."""

    def __init__(self, conn: sqlite3.Connection, *, path: str | Path = "", readonly: bool = False):
        self.conn = conn
        self.path = str(path)
        self.readonly = readonly
        # The story window in memory (`story_window`) and the event stories the
        # cross-language join has read, for this connection's writes: dropped whenever
        # they may be stale (`_drop_write_caches`).
        self._story_windows: StoryWindows | None = None
        self._event_stories: dict[int, EventStory | None] = {}
        # The names each article text holds for a theatre (`stories.names_in`), for the
        # cross-language join: every candidate story's texts are read again for each new
        # event story, and finding names is the costly part. Keyed by the rule set's
        # identity (a reload starts afresh); bounded. Held compact (`CompactNames`): at
        # 5,000 feeds it is the window's largest part.
        self._names_cache: dict[bytes, CompactNames] = {}
        self._names_rules: object = None
        # Articles this transaction inserted whose matches are not stored yet: they have
        # none to update or withdraw (`store_matches`). Emptied when a transaction ends.
        self._unmatched_articles: set[int] = set()
        # The windows were checked against `PRAGMA data_version` in this write transaction
        # (no other connection can commit while it holds the write lock).
        self._windows_checked = False
        self._writing = False  # inside `transaction`: holds the write lock
        # CPU seconds (of the calling thread) spent choosing the stories of new articles:
        # the grouping step of a poll's profile (`pipeline.PollSummary.cpu`).
        self.grouping_seconds = 0.0

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, migrate: bool = True) -> Self:
        store = cls(connect(path, readonly=readonly), path=path, readonly=readonly)
        if not readonly and migrate:
            store.migrate()
        elif readonly:
            store.check_schema()
        return store

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils on the same connection, for migrations. Imported on first use:
        it loads numpy where numpy is installed (about 0.1-0.3 s), and the read paths
        (every CLI query) use plain sqlite3."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def check_schema(self) -> None:
        version = self.schema_version()
        if version == 0:
            raise DatabaseError(f"{self.path}: not a monitor database (no schema)")
        if version > SCHEMA_VERSION:
            raise DatabaseError(
                f"{self.path}: schema version {version} is newer than this monitor "
                f"understands ({SCHEMA_VERSION}); upgrade monitor"
            )

    def migrate(self) -> int:
        """Apply the migrations this file lacks, each in its own transaction."""
        try:
            with self.transaction():
                if not self.db.table("schema_migrations").exists():
                    self.db.table("schema_migrations").create(
                        {"version": int, "applied_at": str}, pk="version"
                    )
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                self.check_schema()
            for version in range(current + 1, SCHEMA_VERSION + 1):
                with self.transaction():
                    MIGRATIONS[version - 1](self.db)
                    self.db.table("schema_migrations").insert(
                        {"version": version, "applied_at": to_iso(datetime.now().astimezone())}
                    )
            return SCHEMA_VERSION
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.path}: cannot migrate the database: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE`: take the write lock up front, so no later upgrade can fail."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._writing = True
        try:
            yield
        except BaseException:
            self._drop_write_caches()  # they may hold what the rollback undoes
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self._writing = False
            self._unmatched_articles.clear()
            self._windows_checked = False
        self.conn.execute("COMMIT")

    def _drop_write_caches(self) -> None:
        """Forget what this connection keeps in memory of stories (read again on use)."""
        self._story_windows = None
        self._event_stories.clear()
        self._unmatched_articles.clear()
        self._windows_checked = False

    def _story_published(self, story_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT published_at FROM stories WHERE id = ?", (story_id,)
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def _windows(self) -> tuple[TitleWindow, SignWindow]:
        """The story windows, new if another connection committed since they were made
        (`PRAGMA data_version` changes only for other connections' commits; checked once
        per write transaction, which no other connection can commit during)."""
        from monitor.db.story_window import SignWindow, TitleWindow

        if self._windows_checked and self._story_windows is not None:
            return self._story_windows[0], self._story_windows[1]
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if self._story_windows is None or self._story_windows[2] != version:
            self._event_stories.clear()
            self._story_windows = (TitleWindow(self.conn), SignWindow(self.conn), version)
        self._windows_checked = self._writing
        return self._story_windows[0], self._story_windows[1]

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def ping(self) -> bool:
        try:
            self.conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query (used by the query layer; SQL still lives in this module)."""
        return self._rows(sql, params)
