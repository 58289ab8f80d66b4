"""Articles and stories: storing new entries, and grouping them into stories through the
stored title index (within a language) and the event join (across languages).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitor.models import (
    EVENT_CONFIDENCE,
    Entry,
    Feed,
    from_iso,
    to_iso,
)
from monitor.score.stories import (
    CROSS_LANGUAGE_WINDOW_HOURS,
    EventStory,
    GroupingFacts,
    StoryTitle,
    article_names_text,
    choose_event_story,
    choose_story,
    is_same_fingerprint,
    names_by_theatre,
    parse_fingerprint,
    probe_stems,
    title_fingerprint,
)

if TYPE_CHECKING:
    from monitor.detect.rules import RuleSet

from monitor.db.base import StoreBase
from monitor.db.schema import _index_story_title

STORY_WINDOW_DAYS = 3


# Stories of one sign in another language that a new event story is compared with, the
# nearest in time first: in a burst (hundreds of reports of one clash within a day and a
# half) the join looks at this many, so each new story costs a bounded time.
CROSS_LANGUAGE_CANDIDATES = 64


# One side of the walk of `story_signs` from a new event story's time (`_event_candidates`):
# each row checked against the story and its matches as they are now (a row's
# published_at is its story's, which never changes once the story is stored).
_SIGN_SIDE_SQL = """
    SELECT DISTINCT g.story_id, g.published_at,
           abs(julianday(g.published_at) - julianday(:at)) AS distance
    FROM story_signs g JOIN stories s ON s.id = g.story_id
    WHERE g.theatre_id = :theatre AND g.indicator_id = :indicator AND {side}
      AND g.language != :language
      AND g.story_id != :new AND s.merged_into IS NULL
      AND EXISTS (SELECT 1 FROM matches m INDEXED BY idx_matches_story_id_confidence
                  WHERE m.story_id = g.story_id
                  AND m.confidence >= :events AND m.theatre_id = :theatre
                  AND m.indicator_id = :indicator AND m.occurred_at BETWEEN :low AND :high)
      AND NOT EXISTS (SELECT 1 FROM articles a
                      WHERE a.story_id = g.story_id AND a.language = :language)
    {order}
"""
_LATER = {
    "side": "g.published_at BETWEEN :at AND :until",
    "order": "ORDER BY g.published_at, g.story_id LIMIT :limit",
}
_EARLIER = {
    "side": "g.published_at >= :since AND g.published_at < :at",
    "order": "ORDER BY g.published_at DESC, g.story_id DESC LIMIT :limit",
}
_TIED = {"side": "g.published_at = :boundary AND g.published_at < :at", "order": ""}


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


NAMES_CACHE_MAX = 100_000  # article texts (by digest) whose names the join remembers
_NO_NAMES: Mapping[str, frozenset[str]] = {}


STEM_COUNT_CACHE = 200_000  # (language, stem) counts a connection remembers (~20 MB at most)


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article that is new, or whose text changed, and so needs matching."""

    article_id: int
    story_id: int
    feed_id: str
    title: str
    summary: str
    language: str
    published_at: datetime
    first_seen_at: datetime


def _stored(
    article_id: int, story_id: int, feed_id: str, entry: Entry, first_seen: datetime
) -> StoredArticle:
    return StoredArticle(
        article_id=article_id,
        story_id=story_id,
        feed_id=feed_id,
        title=entry.title,
        summary=entry.summary,
        language=entry.language,
        published_at=entry.published_at,
        first_seen_at=first_seen,
    )


class ArticleStore(StoreBase):
    """Articles and stories: storing new entries, and grouping them into stories through the"""

    def store_entries(
        self,
        feed: Feed,
        entries: Sequence[Entry],
        *,
        now: datetime,
        facts: Sequence[GroupingFacts] | None = None,
        rules: RuleSet | None = None,
    ) -> list[StoredArticle]:
        """Insert unseen entries (and update changed ones); return those that need matching.

        An entry is known by (feed, entry_id). A new one joins an existing story when it
        has the same canonical URL, or a near-identical title in the same language within
        a few days; otherwise it starts a story. Call inside a transaction.

        `facts`, when given, are each entry's `grouping_facts` (made by a parser worker
        with `rules`), used instead of computing them here.
        """
        if facts is not None and len(facts) != len(entries):
            facts = None  # never trust facts that do not line up
        fresh: list[StoredArticle] = []
        for index, entry in enumerate(entries):
            fact = facts[index] if facts is not None else None
            if fact is not None and rules is not None:
                self._remember_names(
                    article_names_text(entry.title, entry.summary), fact.names, rules
                )
            row = self.conn.execute(
                "SELECT id, story_id, content_hash, first_seen_at FROM articles "
                "WHERE feed_id = ? AND entry_id = ?",
                (feed.id, entry.entry_id),
            ).fetchone()
            if row is not None:
                article_id, story_id, content_hash, first_seen = row
                if content_hash == entry.content_hash:
                    continue
                self.conn.execute(
                    "UPDATE articles SET title = ?, summary = ?, url = ?, language = ?, "
                    "updated_at = ?, content_hash = ? WHERE id = ?",
                    (
                        entry.title,
                        entry.summary,
                        entry.url,
                        entry.language,
                        to_iso(now),
                        entry.content_hash,
                        article_id,
                    ),
                )
                fresh.append(_stored(article_id, story_id, feed.id, entry, from_iso(first_seen)))
                continue
            if fact is None:
                story_id = self._story_for(feed, entry, now=now)
            else:
                story_id = self._story_for(feed, entry, now=now, fact=fact)
            cursor = self.conn.execute(
                "INSERT INTO articles (feed_id, entry_id, story_id, outlet, url, title, summary, "
                "language, published_at, first_seen_at, updated_at, content_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    feed.id,
                    entry.entry_id,
                    story_id,
                    feed.name,
                    entry.url,
                    entry.title,
                    entry.summary,
                    entry.language,
                    to_iso(entry.published_at),
                    to_iso(now),
                    to_iso(now),
                    entry.content_hash,
                ),
            )
            article_id = int(cursor.lastrowid or 0)
            self._refresh_story_sources(story_id)
            fresh.append(_stored(article_id, story_id, feed.id, entry, now))
        return fresh

    def _story_for(
        self, feed: Feed, entry: Entry, *, now: datetime, fact: GroupingFacts | None = None
    ) -> int:
        if fact is not None:
            canonical = fact.canonical_url
        else:
            from monitor.urls import canonical_url

            canonical = canonical_url(entry.url) if entry.url else None
        if canonical:
            row = self.conn.execute(
                "SELECT coalesce(merged_into, id) FROM stories WHERE canonical_url = ? "
                "ORDER BY id LIMIT 1",
                (canonical,),
            ).fetchone()
            if row is not None:
                return int(row[0])
        if fact is not None:
            fingerprint = fact.fingerprint
        else:
            fingerprint = title_fingerprint(entry.title, entry.language)
        found = self._indexed_story(fingerprint, entry.language, entry.published_at)
        if found is not None:
            return found
        cursor = self.conn.execute(
            "INSERT INTO stories (first_seen_at, published_at, title, language, canonical_url, "
            "sources, source_weight) VALUES (?, ?, ?, ?, ?, 1, ?)",
            (
                to_iso(now),
                to_iso(entry.published_at),
                entry.title,
                entry.language,
                canonical,
                feed.source_weight,
            ),
        )
        story_id = int(cursor.lastrowid or 0)
        _index_story_title(
            self.conn, story_id, fingerprint, entry.language, to_iso(entry.published_at)
        )
        for stem in fingerprint:
            key = (entry.language, stem)
            if key in self._stem_counts:
                self._stem_counts[key] += 1
        return story_id

    def _stem_frequency(self, language: str, stems: frozenset[str]) -> dict[str, int]:
        """How many story titles hold each stem, remembered by this connection (only to
        pick the rarest stems: a count that is off costs speed, never a decision)."""
        missing = sorted(stem for stem in stems if (language, stem) not in self._stem_counts)
        if missing:
            if len(self._stem_counts) > STEM_COUNT_CACHE:
                self._stem_counts.clear()
            marks = ", ".join("?" * len(missing))
            found = dict(
                self.conn.execute(
                    "SELECT stem, titles FROM story_stem_counts "
                    f"WHERE language = ? AND stem IN ({marks})",
                    (language, *missing),
                ).fetchall()
            )
            for stem in missing:
                self._stem_counts[(language, stem)] = int(found.get(stem, 0))
        return {stem: self._stem_counts.get((language, stem), 0) for stem in stems}

    def _indexed_story(
        self, fingerprint: frozenset[str], language: str, published_at: datetime
    ) -> int | None:
        """The story a title joins (`stories.choose_story`), among the stored titles of its
        language in the window that hold enough of its `probe_stems`: a few index look-ups,
        however many stories the window holds."""
        if not fingerprint:
            return None
        frequency = self._stem_frequency(language, fingerprint)
        probe = probe_stems(fingerprint, frequency)
        marks = ", ".join("?" * len(probe.stems))
        low = to_iso(published_at - timedelta(days=STORY_WINDOW_DAYS))
        high = to_iso(published_at + timedelta(days=STORY_WINDOW_DAYS))
        # The fingerprint test first (most candidates fail it), then `choose_story`.
        titles = [
            StoryTitle(int(story_id), from_iso(published), stored)
            for story_id, published, text in self.conn.execute(
                f"""
                SELECT t.story_id, t.published_at, t.fingerprint FROM story_titles t
                WHERE t.id IN (SELECT title_id FROM story_stems WHERE language = ?
                               AND stem IN ({marks}) AND published_at BETWEEN ? AND ?
                               GROUP BY title_id HAVING count(*) >= ?)
                """,
                (language, *probe.stems, low, high, probe.min_hits),
            )
            if is_same_fingerprint(fingerprint, stored := parse_fingerprint(text))
        ]
        return choose_story(fingerprint, published_at, titles, window_days=STORY_WINDOW_DAYS)

    def join_across_languages(
        self, articles: Sequence[StoredArticle], rules: RuleSet, *, now: datetime
    ) -> dict[int, int]:
        """After matching: each story these articles started in this poll (one language,
        first seen `now`) joins the story of the same event in another language, if
        there is one (`stories.choose_event_story`). Its articles and matches move to
        that story, whose sources then count the outlets of both; its own row stays,
        empty, with `merged_into` set. Call in the poll's transaction, before scoring.
        Returns {joined story: story joined}."""
        joined: dict[int, int] = {}
        for story_id in sorted({a.story_id for a in articles}):
            new = self._new_event_story(story_id, rules, now=now)
            if new is None:
                continue
            target = choose_event_story(new, self._event_candidates(new, rules))
            if target is None:
                continue
            for table in ("articles", "matches", "story_titles"):
                self.conn.execute(
                    f"UPDATE {table} SET story_id = ? WHERE story_id = ?", (target, story_id)
                )
            self.conn.execute(
                "UPDATE stories SET merged_into = ?, sources = 0 WHERE id = ?", (target, story_id)
            )
            self._refresh_story_sources(target)
            joined[story_id] = target
        return joined

    def _new_event_story(
        self, story_id: int, rules: RuleSet, *, now: datetime
    ) -> EventStory | None:
        """A story started `now`, in one language, with event matches; else None."""
        row = self.conn.execute(
            "SELECT first_seen_at, published_at, merged_into FROM stories WHERE id = ?",
            (story_id,),
        ).fetchone()
        if row is None or row[0] != to_iso(now) or row[2] is not None or row[1] is None:
            return None
        story = self._event_story(story_id, from_iso(row[1]), rules)
        if len(story.languages) != 1 or not story.events:
            return None
        return story

    def _event_candidates(self, new: EventStory, rules: RuleSet) -> list[EventStory]:
        """Stories with an event match of one of `new`'s signs in the time window, in no
        language of `new`'s (what `shared_event_names` refuses anyway is ruled out in SQL,
        before any story's names are read); at most CROSS_LANGUAGE_CANDIDATES of them,
        the nearest in time, so a burst of one sign costs each new story a bounded look.

        Found through `story_signs`, walked outward from `new`'s time on each side and
        stopped at the nearest CROSS_LANGUAGE_CANDIDATES that pass: the same stories as
        sorting every story of the sign in the window by (distance, id), at a cost that
        does not grow with the window."""
        span = timedelta(hours=CROSS_LANGUAGE_WINDOW_HOURS)
        [language] = new.languages  # a new event story is in one language
        params: dict[str, object] = {
            "at": to_iso(new.published_at),
            "since": to_iso(new.published_at - span),
            "until": to_iso(new.published_at + span),
            # occurred_at is the earlier of publication and first sight: a day of slack
            "low": to_iso(new.published_at - span - timedelta(days=1)),
            "high": to_iso(new.published_at + span),
            "events": EVENT_CONFIDENCE,
            "new": new.story_id,
            "language": language,
            "limit": CROSS_LANGUAGE_CANDIDATES,
        }
        found: dict[int, tuple[float, str]] = {}
        for theatre_id, indicator_id in sorted(new.events):
            sign = {**params, "theatre": theatre_id, "indicator": indicator_id}
            later = self.conn.execute(_SIGN_SIDE_SQL.format(**_LATER), sign).fetchall()
            earlier = self.conn.execute(_SIGN_SIDE_SQL.format(**_EARLIER), sign).fetchall()
            if len(earlier) == CROSS_LANGUAGE_CANDIDATES:
                # Walked newest first, ties broken by the larger id: the stories tied
                # with the last one at its time may hold a smaller id that sorts first.
                tied = {**sign, "boundary": earlier[-1][1]}
                earlier += self.conn.execute(_SIGN_SIDE_SQL.format(**_TIED), tied).fetchall()
            for story_id, story_published, distance in (*later, *earlier):
                found[int(story_id)] = (float(distance), str(story_published))
        nearest = sorted(found.items(), key=lambda item: (item[1][0], item[0]))
        return [
            self._event_story(story_id, from_iso(story_published), rules)
            for story_id, (_, story_published) in nearest[:CROSS_LANGUAGE_CANDIDATES]
        ]

    def _event_story(self, story_id: int, published_at: datetime, rules: RuleSet) -> EventStory:
        texts = self.conn.execute(
            "SELECT language, title, summary FROM articles WHERE story_id = ?", (story_id,)
        ).fetchall()
        events = frozenset(
            (str(theatre), str(indicator))
            for theatre, indicator in self.conn.execute(
                "SELECT DISTINCT theatre_id, indicator_id FROM matches "
                "WHERE story_id = ? AND confidence >= ?",
                (story_id, EVENT_CONFIDENCE),
            )
        )
        found = [
            self._names_of(article_names_text(title, summary), rules) for _, title, summary in texts
        ]
        names = {
            theatre: frozenset().union(*(names.get(theatre, frozenset()) for names in found))
            for theatre in {theatre for theatre, _ in events}
        }
        return EventStory(
            story_id=story_id,
            languages=frozenset(str(language) for language, _, _ in texts),
            published_at=published_at,
            events=events,
            names=names,
        )

    def _names_of(self, text: str, rules: RuleSet) -> Mapping[str, frozenset[str]]:
        """`names_by_theatre(text)`, remembered by a digest of the text."""
        key = _text_key(text)
        if self._names_rules is rules:
            found = self._names_cache.get(key)
            if found is not None:
                return found
        found = names_by_theatre(text, rules)
        self._remember_names(text, found, rules, key=key)
        return found

    def _remember_names(
        self,
        text: str,
        names: Mapping[str, frozenset[str]],
        rules: RuleSet,
        *,
        key: bytes | None = None,
    ) -> None:
        if self._names_rules is not rules or len(self._names_cache) >= NAMES_CACHE_MAX:
            self._names_cache.clear()
            self._names_rules = rules
        self._names_cache[key or _text_key(text)] = names or _NO_NAMES

    def _refresh_story_sources(self, story_id: int) -> None:
        self.conn.execute(
            """
            UPDATE stories SET
              sources = (SELECT count(DISTINCT coalesce(a.outlet, a.feed_id)) FROM articles a
                         WHERE a.story_id = stories.id),
              source_weight = (SELECT max(f.source_weight) FROM articles a
                               JOIN feeds f ON f.id = a.feed_id WHERE a.story_id = stories.id)
            WHERE id = ?
            """,
            (story_id,),
        )
