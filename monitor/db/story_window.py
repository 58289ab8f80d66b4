"""The story window in memory: one connection's copy of the stored story titles and event
signs of the days its new articles fall in, so grouping a new article costs a few
dictionary look-ups, not SQL whose cost grows with the stories of the window (issue 17).

`TitleWindow` answers "which stored story does this title join?" (`stories.choose_story`
over the titles that can match, found through an inverted index of stems, rarest first,
counted in C, with more stems counted while many titles are left to check in Python);
`SignWindow` lists the stories with an event match of a warning sign, nearest in time
first, for the cross-language join. Both load lazily, a day at a time, from the tables
that stay the truth (`story_titles`, `story_signs`), and follow the same connection's own
writes (`add`, `move_story`). The owner (`ArticleStore`) drops both whenever they may be
stale: a rolled-back transaction, or another connection's commit (`PRAGMA data_version`).

Must not: write anything, be shared between connections, or outlive a rollback that did
not go through `StoreBase.transaction` (whoever rolls back by hand calls
`_drop_write_caches`, as `bench/grouping.py` does).
"""

from __future__ import annotations

import bisect
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain

from monitor.models import from_iso, to_iso
from monitor.score.stories import (
    MIN_TOKENS,
    SIMILARITY_THRESHOLD,
    StoryTitle,
    choose_story,
    parse_fingerprint,
    probe_stems,
)

DAY = 86_400.0
# Index entries a look-up may count beyond the few it must (`stories.probe_stems`): the
# counting runs in C here, and each further stem probed raises the hits a title needs, so
# fewer titles reach the Python check. 500 measured best of 96-10⁹ at 15,600 stories
# (`bench/poll.py`'s 1,000-feed window): 340-360 µs a look-up against 400-490 µs at 96.
PROBE_BUDGET = 500
# A title left to check in Python costs about as much as this many index entries counted
# in C: while more titles are left than the next stem's entries / this, that stem is
# probed too (measured on `bench/writer.py`'s 5,000-feed window: 480 titles a look-up
# otherwise).
RECOUNT_PER_CANDIDATE = 8


def _day(at: float) -> int:
    return int(at // DAY)


def _day_bounds(day: int) -> tuple[str, str]:
    return (
        to_iso(datetime.fromtimestamp(day * DAY, UTC)),
        to_iso(datetime.fromtimestamp((day + 1) * DAY, UTC)),
    )


@dataclass(slots=True)
class _Title:
    story_id: int
    at: float  # published, seconds since the epoch
    stems: tuple[str, ...]  # the fingerprint, interned (a tuple is a fifth of a frozenset)


class TitleWindow:
    """Stored story titles of one connection, by language and day, with their stems."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._days: set[tuple[str, int]] = set()
        self._titles: dict[int, _Title] = {}
        self._postings: dict[tuple[str, str], list[int]] = {}
        self._by_story: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._titles)

    def story_for(
        self,
        fingerprint: frozenset[str],
        language: str,
        published_at: datetime,
        *,
        window_days: float,
    ) -> int | None:
        """The story a title joins (`stories.choose_story`) among the stored titles of its
        language within `window_days`; None: it starts a story."""
        if not fingerprint:
            return None
        at = published_at.timestamp()
        span = window_days * DAY
        self.load_around(language, published_at, window_days=window_days)
        postings = self._postings
        frequency = {stem: len(postings.get((language, stem), ())) for stem in fingerprint}
        probe = probe_stems(fingerprint, frequency, budget=PROBE_BUDGET)
        # Counted in C (`Counter` over the chained posting lists): the lists of the
        # rarest stems are still the longest loop of a look-up.
        hits = Counter(
            chain.from_iterable(postings.get((language, stem), ()) for stem in probe.stems)
        )
        least = probe.min_hits
        candidates = [title_id for title_id, count in hits.items() if count >= least]
        # Many titles left (a window large or full of near-twins): probe the next rarest
        # stem too while counting its list in C costs less than checking them in Python;
        # each stem probed asks one more hit of a candidate (`stories.probe_stems`).
        rest = sorted(fingerprint.difference(probe.stems), key=lambda s: (frequency[s], s))
        for stem in rest:
            if len(candidates) * RECOUNT_PER_CANDIDATE <= frequency[stem]:
                break
            hits.update(postings.get((language, stem), ()))
            least += 1
            # a title that had fewer hits than asked cannot have gained two
            candidates = [title_id for title_id in candidates if hits[title_id] >= least]
        size = len(fingerprint)
        titles = []
        for title_id in candidates:
            title = self._titles[title_id]
            if abs(title.at - at) > span:
                continue
            # `is_same_fingerprint`, with one set operation instead of two
            other = title.stems
            shared = len(fingerprint.intersection(other))
            if min(size, len(other)) < MIN_TOKENS:
                same = shared == size == len(other)
            else:
                same = shared / (size + len(other) - shared) >= SIMILARITY_THRESHOLD
            if same:
                titles.append(
                    StoryTitle(
                        title.story_id, datetime.fromtimestamp(title.at, UTC), frozenset(other)
                    )
                )
        return choose_story(fingerprint, published_at, titles, window_days=window_days)

    def load_around(self, language: str, at: datetime, *, window_days: float) -> None:
        """Have the titles of `language` within `window_days` of `at` in memory."""
        when = at.timestamp()
        self._load(language, when - window_days * DAY, when + window_days * DAY)

    def add(
        self,
        title_id: int,
        story_id: int,
        language: str | None,
        published_at: str | None,
        fingerprint: frozenset[str],
    ) -> None:
        """A title this connection just stored (kept only if its day is loaded: otherwise
        loading that day reads it from the table)."""
        if not fingerprint or language is None or published_at is None:
            return
        at = from_iso(published_at).timestamp()
        if (language, _day(at)) in self._days:
            self._index(title_id, story_id, language, at, fingerprint)

    def move_story(self, old: int, new: int) -> None:
        """`old`'s titles now belong to `new` (a join moved them)."""
        moved = self._by_story.pop(old, [])
        for title_id in moved:
            self._titles[title_id].story_id = new
        if moved:
            self._by_story.setdefault(new, []).extend(moved)

    def _load(self, language: str, low: float, high: float) -> None:
        for day in range(_day(low), _day(high) + 1):
            if (language, day) in self._days:
                continue
            self._days.add((language, day))
            start, end = _day_bounds(day)
            for title_id, story_id, published_at, text in self._conn.execute(
                "SELECT id, story_id, published_at, fingerprint FROM story_titles "
                "WHERE language = ? AND published_at >= ? AND published_at < ?",
                (language, start, end),
            ):
                fingerprint = parse_fingerprint(text)
                if fingerprint:
                    at = from_iso(published_at).timestamp()
                    self._index(int(title_id), int(story_id), language, at, fingerprint)

    def _index(
        self, title_id: int, story_id: int, language: str, at: float, fingerprint: frozenset[str]
    ) -> None:
        if title_id in self._titles:
            return
        stems = tuple(sorted(sys.intern(stem) for stem in fingerprint))
        self._titles[title_id] = _Title(story_id, at, stems)
        self._by_story.setdefault(story_id, []).append(title_id)
        for stem in stems:
            self._postings.setdefault((language, stem), []).append(title_id)


Sign = tuple[str, str]  # (theatre, indicator)

# The names an article text holds per theatre (`stories.names_by_theatre`), as the join's
# cache keeps them: (theatre, sorted names) pairs of interned strings, in tuples (no dict or
# set per text, and nothing the garbage collector has to walk once they are old).
CompactNames = tuple[tuple[str, tuple[str, ...]], ...]


def compact_names(names: Mapping[str, frozenset[str]]) -> CompactNames:
    """`names` in the cache's compact form."""
    return tuple(
        (sys.intern(theatre), tuple(sys.intern(name) for name in sorted(found)))
        for theatre, found in sorted(names.items())
    )


def expand_names(names: CompactNames) -> dict[str, frozenset[str]]:
    """The compact form back as {theatre: names}."""
    return {theatre: frozenset(found) for theatre, found in names}


PASS, SKIP, DROP = 0, 1, 2  # a candidate's verdict in `SignWindow.nearest`


class SignWindow:
    """Per warning sign, the stories with an event match of it (`story_signs`), by time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._days: set[tuple[Sign, int]] = set()
        self._rows: dict[Sign, list[tuple[float, int]]] = {}
        self._seen: set[tuple[Sign, int]] = set()
        # Per sign and language, the stories not yet known to have an article in that
        # language (a copy of the sign's rows, pruned as the walks learn).
        self._without: dict[tuple[Sign, str], list[tuple[float, int]]] = {}

    def nearest(
        self,
        sign: Sign,
        at: datetime,
        hours: float,
        language: str,
        verdict: Callable[[int], int],
        *,
        limit: int,
    ) -> list[tuple[float, int]]:
        """(distance in seconds, story id) of the stories of `sign` published within
        `hours` of `at` that `verdict` passes, the `limit` nearest and every one tied
        with the last of them. `verdict(story)` is PASS, SKIP, or DROP: the story has an
        article in `language` or was joined into another, so it can never pass for
        `language` again and leaves that language's list."""
        when = at.timestamp()
        span = hours * 3600.0
        self._load(sign, when - span, when + span)
        rows = self._without.get((sign, language))
        if rows is None:
            rows = self._without[(sign, language)] = list(self._rows.get(sign, []))
        passed: list[tuple[float, int]] = []
        right = bisect.bisect_left(rows, (when, -1))
        left = right - 1
        while True:
            later = rows[right][0] - when if right < len(rows) else float("inf")
            earlier = when - rows[left][0] if left >= 0 else float("inf")
            distance = min(later, earlier)
            if distance > span or (len(passed) >= limit and distance > passed[-1][0]):
                return passed
            index = right if later <= earlier else left
            story_id = rows[index][1]
            found = verdict(story_id)
            if found == DROP:
                del rows[index]
                if index == left:
                    left -= 1
                    right -= 1
                continue
            if found == PASS:
                passed.append((distance, story_id))
            if index == right:
                right += 1
            else:
                left -= 1

    def add(self, sign: Sign, published_at: str, story_id: int) -> None:
        """A story this connection just gave an event match of `sign` (kept only if the
        day is loaded: otherwise loading that day reads it from `story_signs`)."""
        at = from_iso(published_at).timestamp()
        if (sign, _day(at)) in self._days:
            self._insert(sign, at, story_id)

    def _load(self, sign: Sign, low: float, high: float) -> None:
        for day in range(_day(low), _day(high) + 1):
            if (sign, day) in self._days:
                continue
            self._days.add((sign, day))
            start, end = _day_bounds(day)
            for published_at, story_id in self._conn.execute(
                "SELECT DISTINCT published_at, story_id FROM story_signs "
                "WHERE theatre_id = ? AND indicator_id = ? AND published_at >= ? "
                "AND published_at < ?",
                (*sign, start, end),
            ):
                self._insert(sign, from_iso(published_at).timestamp(), int(story_id))

    def _insert(self, sign: Sign, at: float, story_id: int) -> None:
        if (sign, story_id) in self._seen:
            return
        self._seen.add((sign, story_id))
        row = (at, story_id)
        bisect.insort(self._rows.setdefault(sign, []), row)
        for (other, _language), rows in self._without.items():
            if other == sign:
                bisect.insort(rows, row)
