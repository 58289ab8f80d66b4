"""When two articles are the same story: the pure rules behind cross-feed de-duplication.

Owns `story_key` (an exact key: the canonical article URL, else a content hash) and the
near-duplicate test `is_same_story` (same language, published within a few days, titles
that are nearly the same once case, punctuation, stop words, outlet suffixes and word
endings are set aside). `db` uses these to cluster articles into stories and count the
distinct outlets behind each; this module stores nothing and reads no clock.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache

import snowballstemmer

from monitor.models import Entry, utc
from monitor.parser import canonical_url

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
    name = _STEMMERS.get(language)
    return snowballstemmer.stemmer(name) if name else None


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
    stemmer = _stemmer(language)
    stems = []
    for word in words:
        if word in stop:
            continue
        if stemmer is not None and not word.isdigit():
            word = stemmer.stemWord(word)
        stems.append(word)
    return frozenset(stems)


def story_key(entry: Entry) -> str:
    """An exact identity for the story an entry tells: `url:<canonical URL>`, or, for
    entries without a usable link, `text:<content hash>` (the same text in two feeds)."""
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
    if not a or not b:
        return False
    if min(len(a), len(b)) < MIN_TOKENS:
        return a == b
    return similarity(a, b) >= SIMILARITY_THRESHOLD
