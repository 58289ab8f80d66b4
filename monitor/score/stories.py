"""When two articles are the same story: the pure rules behind cross-feed de-duplication.

Owns `story_key` (an exact key: the canonical article URL, else a content hash) and the
near-duplicate test `is_same_story` (same language, published within a few days, titles
that are nearly the same once case, punctuation, stop words, outlet suffixes and word
endings are set aside). `db` uses these to cluster articles into stories and count the
distinct outlets behind each; this module stores nothing and reads no clock.

For an index, the same test is split in two: `probe_stems` names the few stems of a
title that any story it can join must hold (so `db` looks up only those, in an inverted
index of stored fingerprints), and `choose_story` decides among the stories found, with
the same rule and the same order as a scan of every story in the window would.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from monitor.models import Entry, utc

if TYPE_CHECKING:  # the rules (and their compiled patterns) load only where names are read
    import snowballstemmer

    from monitor.detect.rules import Node, RuleSet

SIMILARITY_THRESHOLD = 0.6  # Jaccard overlap of title fingerprints for "the same story"
MIN_TOKENS = 3  # titles with fewer significant words must match exactly
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = {
    "en": _words(
        """a an the and or but of in on at to for from by with as is are was were be been
        has have had it its this that these those over after before says said amid into
        about up out new update updated live breaking video photos watch"""
    ),
    "ru": _words(
        """и в во не на с со что как а но к ко у по из за от до о об для при это этот эта
        же ли бы то так его ее их был была были будет над под после перед между или уже
        заявил заявила сообщил сообщает видео фото"""
    ),
}
_STEMMERS = {"en": "english", "ru": "russian"}


@lru_cache(maxsize=4)
def _stemmer(language: str) -> snowballstemmer.stemmer | None:
    # Imported on first use: `db` imports this module, and the CLI's read-only commands
    # never stem (issue 17: commands that answer at once).
    import snowballstemmer

    name = _STEMMERS.get(language)
    return snowballstemmer.stemmer(name) if name else None


@lru_cache(maxsize=1 << 16)
def _stem(word: str, language: str) -> str:
    """A word's stem, remembered: headlines repeat their words, and the Snowball stemmers
    (pure Python) cost more than everything else the grouping does per title."""
    stemmer = _stemmer(language)
    return stemmer.stemWord(word) if stemmer is not None else word


def _strip_outlet_suffix(title: str) -> str:
    """ "Border clash kills 3 - Reuters" → "Border clash kills 3" (one short trailing part)."""
    for separator in (" - ", " – ", " — ", " | "):
        head, sep, tail = title.rpartition(separator)
        if sep and head and len(tail.split()) <= 3:
            return head
    return title


def title_fingerprint(title: str, language: str) -> frozenset[str]:
    """The significant word stems of a title, as a set (order and inflection ignored)."""
    text = unicodedata.normalize("NFKC", _strip_outlet_suffix(title)).casefold()
    text = text.replace("ё", "е")
    words = _WORD.findall(text)
    stop = _STOPWORDS.get(language, _STOPWORDS["en"] | _STOPWORDS["ru"])
    return frozenset(
        word if word.isdigit() else _stem(word, language) for word in words if word not in stop
    )


def story_key(entry: Entry) -> str:
    """An exact identity for the story an entry tells: `url:<canonical URL>`, or, for
    entries without a usable link, `text:<content hash>` (the same text in two feeds)."""
    from monitor.urls import canonical_url

    canonical = canonical_url(entry.url)
    if canonical:
        return f"url:{canonical}"
    return f"text:{entry.content_hash}"


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard overlap of two fingerprints (0 when either is empty)."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def is_same_story(
    a_title: str,
    a_lang: str,
    a_time: datetime,
    b_title: str,
    b_lang: str,
    b_time: datetime,
    *,
    window_days: float = 3,
) -> bool:
    """Are two articles the same story? Same language, published within `window_days` of
    each other, and titles with nearly the same significant words (Jaccard ≥ 0.6; titles
    of fewer than three such words must match exactly)."""
    if a_lang != b_lang:
        return False
    if abs((utc(a_time) - utc(b_time)).total_seconds()) > window_days * 86400:
        return False
    a = title_fingerprint(a_title, a_lang)
    b = title_fingerprint(b_title, b_lang)
    return is_same_fingerprint(a, b)


def is_same_fingerprint(a: frozenset[str], b: frozenset[str]) -> bool:
    """The title half of `is_same_story`: Jaccard ≥ 0.6, or equal when either title has
    fewer than three significant words; an empty fingerprint matches nothing."""
    if not a or not b:
        return False
    if min(len(a), len(b)) < MIN_TOKENS:
        return a == b
    return similarity(a, b) >= SIMILARITY_THRESHOLD


def fingerprint_text(fingerprint: frozenset[str]) -> str:
    """A fingerprint as stored: its stems sorted, space-separated (stems hold no spaces)."""
    return " ".join(sorted(fingerprint))


def parse_fingerprint(text: str | None) -> frozenset[str]:
    return frozenset(text.split()) if text else frozenset()


def min_shared_stems(size: int) -> int:
    """The fewest stems a fingerprint of `size` stems must share with any fingerprint it
    `is_same_fingerprint` as. Below three stems only an equal one matches, so all of
    them; otherwise the least c with c / size ≥ the threshold, computed with the same
    float division as `similarity` (c / |a ∪ b| ≥ t and |a ∪ b| ≥ size give c / size ≥ t)."""
    if size < MIN_TOKENS:
        return size
    return next(c for c in range(1, size + 1) if c / size >= SIMILARITY_THRESHOLD)


PROBE_BUDGET = 96  # index entries a look-up may read beyond the few it must


@dataclass(frozen=True, slots=True)
class Probe:
    """What to look up for a title: stories holding at least `min_hits` of `stems`."""

    stems: tuple[str, ...]
    min_hits: int


def probe_stems(
    fingerprint: frozenset[str], frequency: Mapping[str, int], *, budget: int = PROBE_BUDGET
) -> Probe:
    """The stems of a title to look up in the index, and how many of them a story it can
    join must hold: its `size - min_shared_stems + 1` rarest stems (by `frequency`, then
    the stem itself, so the choice is stable), then the next rarest while the titles
    they are held by add up to no more than `budget`.

    Complete whatever `frequency` says: a story sharing at least c stems with the title
    shares at most size - p of them outside p probed stems, so at least c - (size - p)
    of the probed ones, and with p ≥ size - c + 1 that is at least one. Rarest first
    keeps the posting lists short; each further stem probed raises `min_hits` by one,
    so the index itself (not Python) drops the many stories that share only a word or
    two with the title. The cost per title does not grow with the number of stories,
    except for titles made only of common words (a small share of headlines).
    """
    if not fingerprint:
        return Probe((), 1)
    size = len(fingerprint)
    shared = min_shared_stems(size)
    ordered = sorted(fingerprint, key=lambda stem: (frequency.get(stem, 0), stem))
    count = size - shared + 1
    spent = sum(frequency.get(stem, 0) for stem in ordered[:count])
    while count < size and spent + frequency.get(ordered[count], 0) <= budget:
        spent += frequency.get(ordered[count], 0)
        count += 1
    return Probe(tuple(ordered[:count]), shared - (size - count))


@dataclass(frozen=True, slots=True)
class StoryTitle:
    """A stored title of a story, as the index finds it."""

    story_id: int
    published_at: datetime
    fingerprint: frozenset[str]


def choose_story(
    fingerprint: frozenset[str],
    published_at: datetime,
    titles: Iterable[StoryTitle],
    *,
    window_days: float = 3,
) -> int | None:
    """The story a new title joins, among stored titles of its language: those published
    within `window_days` whose fingerprints `is_same_fingerprint`; of these, the latest
    published, and on a tie the newest story (the order in which a scan of the window by
    its `published_at` index met them). None: the title starts a story."""
    best: tuple[datetime, int] | None = None
    at = utc(published_at)
    for title in titles:
        when = utc(title.published_at)
        if abs((at - when).total_seconds()) > window_days * 86400:
            continue
        if not is_same_fingerprint(fingerprint, title.fingerprint):
            continue
        key = (when, title.story_id)
        if best is None or key > best:
            best = key
    return None if best is None else best[1]


# ---------------------------------------------------------------------------
# The same event in two languages (issue 17)
#
# Titles in English and Russian share no words, so `is_same_story` never joins them.
# An event is recognised instead by what the matcher found and whom it names: the same
# warning sign (theatre and indicator) in both, published within a day and a half, naming
# mostly the same actors and places of that theatre. Names are the theatre's own actor
# and place words from the configuration (`sides`, `disputed`, `actors`, `members`), as
# the rules' lexicon recognises them in the text (so "Баткенской" is "баткен*"), each
# reduced to a spelling key that is the same in both scripts ("batken" and "баткен*" →
# "btkn", "Yerevan" and "ереван*" → "_rvn"); an alliance's own names (CSTO, ОДКБ) are
# one name, the alliance itself.

CROSS_LANGUAGE_WINDOW_HOURS = 36  # the other language's report comes the same or next day
MIN_SHARED_NAMES = 2  # one shared name ("Kyrgyzstan") is too little
MIN_NAME_OVERLAP = 2 / 3  # of the names of the story that names fewer

_LATIN = "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch - y - e yu ya"
_CYRILLIC = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", _LATIN.split(" "), strict=True))
_SPELLING: tuple[tuple[str, str], ...] = (
    ("dzh", "j"),
    ("dj", "j"),
    ("zh", "j"),
    ("kh", "h"),
    ("gh", "g"),
    ("x", "h"),
    ("q", "k"),
    ("w", "v"),
    ("ph", "f"),
)
_NOT_LETTER = re.compile(r"[^a-z]")
_VOWELS = re.compile(r"[aeiouy]+")
_REPEATS = re.compile(r"(.)\1+")


def name_key(label: str) -> str:
    """A spelling key of a name, the same in Latin and Cyrillic script: transliterated,
    common spelling variants merged, vowels dropped (a leading one becomes "_"), doubled
    letters single. "Tajik*" and "таджик*" → "tjk"; "Yerevan" and "ереван*" → "_rvn"."""
    word = "".join(_CYRILLIC.get(ch, ch) for ch in label.casefold()).replace("-", "")
    word = _NOT_LETTER.sub("", word)
    for written, key in _SPELLING:
        word = word.replace(written, key)
    if not word:
        return ""
    head = "_" if word[0] in "aeiouy" else word[0]
    return _REPEATS.sub(r"\1", head + _VOWELS.sub("", word[1:]))


@dataclass(frozen=True, slots=True)
class TheatreNames:
    """A theatre's one-word name terms (lexicon ids) and the key each stands for."""

    keys: Mapping[int, str]


@lru_cache(maxsize=8)
def theatre_names(rules: RuleSet) -> Mapping[str, TheatreNames]:
    """Per theatre, its actor and place words (one-word terms; phrases are left out) and
    their name keys. An alliance's own actors all stand for the alliance."""
    result: dict[str, TheatreNames] = {}
    for compiled in rules.compiled_theatres:
        theatre = compiled.theatre
        keys: dict[int, str] = {}
        if theatre.kind == "alliance":
            for term in _one_word_terms(compiled.sides[0]):
                keys[term] = f"@{theatre.id}"
            nodes = [compiled.members]
        else:
            nodes = [*compiled.sides, compiled.disputed]
        for node in nodes:
            for term in _one_word_terms(node):
                key = name_key(rules.lexicon.label(term))
                if key:
                    keys.setdefault(term, key)
        result[theatre.id] = TheatreNames(keys)
    return result


def _one_word_terms(node: Node | None) -> frozenset[int]:
    from monitor.detect.rules import AltNode, TermNode

    if isinstance(node, AltNode):
        return node.terms
    if isinstance(node, TermNode):
        return frozenset({node.id})
    return frozenset()


def names_in(text: str, theatre_id: str, rules: RuleSet) -> frozenset[str]:
    """The name keys of the theatre's actors and places that `text` names."""
    names = theatre_names(rules).get(theatre_id)
    if names is None:
        return frozenset()
    found: set[str] = set()
    for chunk in text.split():
        reading = rules.lexicon.chunks.get(chunk) or rules.lexicon.read_chunk(chunk)
        for ids in reading[1]:
            for term in ids:
                key = names.keys.get(term)
                if key is not None:
                    found.add(key)
    return frozenset(found)


@lru_cache(maxsize=8)
def _name_terms(rules: RuleSet) -> Mapping[int, tuple[tuple[str, str], ...]]:
    """Per lexicon term, the (theatre, name key) pairs it stands for."""
    terms: dict[int, list[tuple[str, str]]] = {}
    for theatre_id, names in theatre_names(rules).items():
        for term, key in names.keys.items():
            terms.setdefault(term, []).append((theatre_id, key))
    return {term: tuple(pairs) for term, pairs in terms.items()}


def names_by_theatre(text: str, rules: RuleSet) -> dict[str, frozenset[str]]:
    """`names_in` for every theatre at once (one pass over the text): theatre → the name
    keys `text` names; theatres it names nothing of are left out."""
    terms = _name_terms(rules)
    found: dict[str, set[str]] = {}
    for chunk in text.split():
        reading = rules.lexicon.chunks.get(chunk) or rules.lexicon.read_chunk(chunk)
        for ids in reading[1]:
            for term in ids:
                for theatre_id, key in terms.get(term, ()):
                    found.setdefault(theatre_id, set()).add(key)
    return {theatre_id: frozenset(keys) for theatre_id, keys in found.items()}


def article_names_text(title: str, summary: str | None) -> str:
    """The text of an article whose names the cross-language join reads."""
    return f"{title}\n{summary or ''}"


@dataclass(frozen=True, slots=True)
class GroupingFacts:
    """What grouping needs of an entry, computed where it was parsed and matched (the
    parser workers), so the single writer does not: pure functions of the entry."""

    canonical_url: str | None
    fingerprint: frozenset[str]
    names: Mapping[str, frozenset[str]]  # `names_by_theatre` of its title and summary


def grouping_facts(entry: Entry, rules: RuleSet) -> GroupingFacts:
    from monitor.urls import canonical_url

    return GroupingFacts(
        canonical_url=canonical_url(entry.url) if entry.url else None,
        fingerprint=title_fingerprint(entry.title, entry.language),
        names=names_by_theatre(article_names_text(entry.title, entry.summary), rules),
    )


def names_agree(a: frozenset[str], b: frozenset[str]) -> bool:
    """Do two lists of names point at the same actors and places? At least two names in
    common, and at least two thirds of the names of the one that names fewer. Prefix keys
    match too: the configuration gives Russian names as prefixes ("азербайдж*")."""
    if not a or not b:
        return False
    shared = 0
    for x in a:  # the same name in both (the usual case) needs no prefix walk
        if x in b or any(x.startswith(y) or y.startswith(x) for y in b):
            shared += 1
    return shared >= MIN_SHARED_NAMES and shared >= MIN_NAME_OVERLAP * min(len(a), len(b))


@dataclass(frozen=True, slots=True)
class EventStory:
    """A story as the cross-language rule sees it."""

    story_id: int
    languages: frozenset[str]
    published_at: datetime
    events: frozenset[tuple[str, str]]  # (theatre, indicator) of its event matches
    names: Mapping[str, frozenset[str]]  # theatre → name keys in its articles


def shared_event_names(new: EventStory, other: EventStory) -> float | None:
    """How well `other` fits as the same event as `new` in another language: None when
    it does not (a language in common, more than 36 h apart, no warning sign in common,
    or names that disagree on every shared sign's theatre), else the best share of
    shared names over the shared signs' theatres (higher is closer)."""
    if not new.languages.isdisjoint(other.languages):
        return None
    if _hours_apart(new, other) > CROSS_LANGUAGE_WINDOW_HOURS:
        return None
    best: float | None = None
    for theatre in {theatre for theatre, _ in new.events & other.events}:
        a = new.names.get(theatre, frozenset())
        b = other.names.get(theatre, frozenset())
        if names_agree(a, b):
            share = len(a & b) / len(a | b)
            best = share if best is None else max(best, share)
    return best


def _hours_apart(new: EventStory, other: EventStory) -> float:
    try:  # both aware, as the store makes them: no conversion needed
        seconds = (new.published_at - other.published_at).total_seconds()
    except TypeError:  # one naive (taken as UTC)
        seconds = (utc(new.published_at) - utc(other.published_at)).total_seconds()
    return abs(seconds) / 3600


def choose_event_story(new: EventStory, candidates: Iterable[EventStory]) -> int | None:
    """The story in another language that `new` (a story just started, in one language)
    joins: of those that fit (`shared_event_names`), the one sharing most names, then
    the nearest in time, then the oldest. None: it stays a story of its own."""
    best: tuple[float, float, int] | None = None
    for other in candidates:
        if other.story_id == new.story_id:
            continue
        share = shared_event_names(new, other)
        if share is None:
            continue
        key = (share, -_hours_apart(new, other), -other.story_id)
        if best is None or key > best:
            best = key
    return None if best is None else -best[2]
