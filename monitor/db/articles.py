"""Articles and stories: storing new entries, and grouping them into stories through the
stored title index (within a language) and the event join (across languages).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

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
    article_names_text,
    choose_event_story,
    fingerprint_text,
    names_by_theatre,
    title_fingerprint,
)

if TYPE_CHECKING:
    from monitor.detect.rules import RuleSet

from monitor.db.base import StoreBase
from monitor.db.story_window import DROP, PASS, SKIP, Sign, compact_names, expand_names

STORY_WINDOW_DAYS = 3


# Stories of one sign in another language that a new event story is compared with, the
# nearest in time first: in a burst (hundreds of reports of one clash within a day and a
# half) the join looks at this many, so each new story costs a bounded time.
CROSS_LANGUAGE_CANDIDATES = 64


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


NAMES_CACHE_MAX = 100_000  # article texts (by digest) whose names the join remembers
EVENT_STORIES_MAX = 20_000  # stories the join remembers as read (each read again if dropped)
_NO_NAMES: Mapping[str, frozenset[str]] = {}


def _make_room(cache: MutableMapping[Any, Any], bound: int) -> None:
    """At `bound` entries, drop the oldest quarter of `cache` (in insertion order): the
    newest, which the join meets most (its candidates are within a day and a half), stay.
    Dropping everything at once made the writer find the names of every recent text again
    after each clear (twice in a 5,000-feed cold cycle)."""
    if len(cache) >= bound:
        for key in list(islice(cache, max(1, bound // 4))):
            del cache[key]


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
                self._event_stories.pop(story_id, None)  # its names may have changed
                fresh.append(_stored(article_id, story_id, feed.id, entry, from_iso(first_seen)))
                continue
            began = time.thread_time()
            story_id, started = self._story_for(feed, entry, now=now, fact=fact)
            self.grouping_seconds += time.thread_time() - began
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
            # Indexed here, not by a trigger: FTS5 writes its pending terms out at every
            # statement that fires a trigger into it (issue 17; migration 12).
            self.conn.execute(
                "INSERT INTO articles_fts (rowid, title, summary) VALUES (?, ?, ?)",
                (article_id, entry.title, entry.summary),
            )
            self._unmatched_articles.add(article_id)
            if not started:  # a story it starts already counts its one source
                self._refresh_story_sources(story_id)
            self._event_stories.pop(story_id, None)
            fresh.append(_stored(article_id, story_id, feed.id, entry, now))
        return fresh

    def _story_for(
        self, feed: Feed, entry: Entry, *, now: datetime, fact: GroupingFacts | None = None
    ) -> tuple[int, bool]:
        """The story `entry` joins, or a new one it starts: (story id, started)."""
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
                return int(row[0]), False
        if fact is not None:
            fingerprint = fact.fingerprint
        else:
            fingerprint = title_fingerprint(entry.title, entry.language)
        found = self._indexed_story(fingerprint, entry.language, entry.published_at)
        if found is not None:
            return found, False
        published = to_iso(entry.published_at)
        cursor = self.conn.execute(
            "INSERT INTO stories (first_seen_at, published_at, title, language, canonical_url, "
            "sources, source_weight) VALUES (?, ?, ?, ?, ?, 1, ?)",
            (
                to_iso(now),
                published,
                entry.title,
                entry.language,
                canonical,
                feed.source_weight,
            ),
        )
        story_id = int(cursor.lastrowid or 0)
        cursor = self.conn.execute(
            "INSERT INTO story_titles (story_id, language, published_at, fingerprint) "
            "VALUES (?, ?, ?, ?)",
            (story_id, entry.language, published, fingerprint_text(fingerprint)),
        )
        titles, _ = self._windows()
        titles.add(int(cursor.lastrowid or 0), story_id, entry.language, published, fingerprint)
        return story_id, True

    def _indexed_story(
        self, fingerprint: frozenset[str], language: str, published_at: datetime
    ) -> int | None:
        """The story a title joins (`stories.choose_story`), among the stored titles of its
        language in the window, through the window's stem index in memory
        (`story_window.TitleWindow`): a few look-ups, however many stories it holds."""
        titles, _ = self._windows()
        return titles.story_for(fingerprint, language, published_at, window_days=STORY_WINDOW_DAYS)

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
            # What the UPDATEs (and `story_signs`' triggers) did, in the windows too.
            titles, signs = self._windows()
            titles.move_story(story_id, target)
            published = self._story_published(target)
            if published is not None:
                for sign in new.events:
                    signs.add(sign, published, target)
            self._event_stories.pop(target, None)
            self._event_stories[story_id] = None  # merged: never a candidate again
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
        events = self._story_events(story_id)
        if not events:  # most stories: nothing to join on, and no texts to read
            return None
        story = self._event_story(story_id, from_iso(row[1]), rules, events=events)
        if len(story.languages) != 1:
            return None
        return story

    def _event_candidates(self, new: EventStory, rules: RuleSet) -> list[EventStory]:
        """Stories with an event match of one of `new`'s signs within
        CROSS_LANGUAGE_WINDOW_HOURS, in no language of `new`'s and not joined into
        another; at most CROSS_LANGUAGE_CANDIDATES of them, the nearest in time (then the
        smaller id), so a burst of one sign costs each new story a bounded look.

        Found through the sign window in memory (`story_window.SignWindow`, loaded from
        `story_signs`), walked outward from `new`'s time and stopped at the nearest that
        pass, each candidate read once per connection (`_cached_event_story`)."""
        _, signs = self._windows()
        [language] = new.languages  # a new event story is in one language
        found: dict[int, float] = {}
        for sign in sorted(new.events):

            def verdict(story_id: int, sign: Sign = sign) -> int:
                if story_id == new.story_id:
                    return SKIP
                story = self._cached_event_story(story_id, rules)
                if story is None or language in story.languages:
                    return DROP  # joined into another story, or has this language now
                return PASS if sign in story.events else SKIP

            for distance, story_id in signs.nearest(
                sign,
                new.published_at,
                CROSS_LANGUAGE_WINDOW_HOURS,
                language,
                verdict,
                limit=CROSS_LANGUAGE_CANDIDATES,
            ):
                found[story_id] = distance
        nearest = sorted(found.items(), key=lambda item: (item[1], item[0]))
        stories = (self._cached_event_story(story_id, rules) for story_id, _ in nearest)
        return [story for story in stories if story is not None][:CROSS_LANGUAGE_CANDIDATES]

    def _cached_event_story(self, story_id: int, rules: RuleSet) -> EventStory | None:
        """`_event_story` of a stored story, remembered until this connection changes it
        (None: joined into another story, or gone)."""
        if story_id in self._event_stories:
            return self._event_stories[story_id]
        row = self.conn.execute(
            "SELECT published_at, merged_into FROM stories WHERE id = ?", (story_id,)
        ).fetchone()
        story = None
        if row is not None and row[0] is not None and row[1] is None:
            story = self._event_story(story_id, from_iso(row[0]), rules)
        _make_room(self._event_stories, EVENT_STORIES_MAX)  # one dropped is read again
        self._event_stories[story_id] = story
        return story

    def _story_events(self, story_id: int) -> frozenset[Sign]:
        """The (theatre, indicator) signs of a story's event matches."""
        return frozenset(
            (str(theatre), str(indicator))
            for theatre, indicator in self.conn.execute(
                "SELECT DISTINCT theatre_id, indicator_id FROM matches "
                "WHERE story_id = ? AND confidence >= ?",
                (story_id, EVENT_CONFIDENCE),
            )
        )

    def _event_story(
        self,
        story_id: int,
        published_at: datetime,
        rules: RuleSet,
        *,
        events: frozenset[Sign] | None = None,
    ) -> EventStory:
        texts = self.conn.execute(
            "SELECT language, title, summary FROM articles WHERE story_id = ?", (story_id,)
        ).fetchall()
        if events is None:
            events = self._story_events(story_id)
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
            known = self._names_cache.get(key)
            if known is not None:
                return expand_names(known) if known else _NO_NAMES
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
        if self._names_rules is not rules:
            self._names_cache.clear()
            self._names_rules = rules
        _make_room(self._names_cache, NAMES_CACHE_MAX)
        self._names_cache[key or _text_key(text)] = compact_names(names) if names else ()

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
