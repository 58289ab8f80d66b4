"""Full-text search that stems as the matcher does: "clash" finds "clashes", "граница" finds
"границе".

Owns turning the words a person searches for into an FTS5 query over the words the
full-text index holds. The index (`articles_fts`, SQLite's unicode61 tokenizer) stores
words as written, lower-cased; a searched word is replaced by every indexed word with the
same Snowball stem (`monitor.detect.text.stem` of `normalize_word`, the matcher's key),
joined by OR. Stemming at query time needs no second index, no migration and no change
to how articles are written, and costs one short scan of the index's sorted vocabulary
per word (the words that begin with the stem, and for some English stems a variant of
it: see `scan_prefixes`).

Must not: touch the database itself (the caller passes `index_terms`, which lists the
indexed words that begin with a prefix), read files or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from monitor.detect.text import normalize_word, stem

__all__ = ["IndexTerms", "fts_terms", "scan_prefixes", "search_key", "stemmed_fts_query"]

IndexTerms = Callable[[str], Iterable[str]]
"""Every word of the full-text index that begins with the given prefix."""

# unicode61's word characters (letters and digits; `_` and punctuation separate words)
_FTS_TOKEN_RE = re.compile(r"[^\W_]+")


def search_key(word: str) -> str:
    """The key a word is compared by: the matcher's stem of its normalised form."""
    return stem(normalize_word(word))


def scan_prefixes(key: str) -> tuple[str, ...]:
    """Prefixes that every indexed word with this stem begins with, as narrow as they can
    be (each prefix is one range scan of the index's vocabulary).

    Russian Snowball only cuts endings, so a stem begins each of its words. English
    Porter2 also rewrites a stem's end: "country" → "countri", "rated" → "rate",
    "capability" → "capabl", "lying" → "lie"; those get a second prefix. A stem under
    three letters is looked up as a whole word only (a scan of every word beginning with
    "b" would cost more than the search). Known gaps: Porter2's "skies" → "sky"; "ё" in
    stored text (the matcher reads it as "е") is not found by a word typed with "е".
    """
    if len(key) < 3:
        return ()
    prefixes = [key]
    if key.endswith("i"):
        prefixes.append(key[:-1] + "y")
    elif key.endswith("e"):
        prefixes.append(key[:-1])
    elif key.endswith("bl"):
        prefixes.append(key[:-2] + "bil")
    if key.endswith("ie"):
        prefixes.append(key[:-2] + "y")
    return tuple(prefixes)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def fts_terms(word: str, index_terms: IndexTerms) -> list[str]:
    """The indexed words that stem like `word` (sorted), or [] when none does."""
    key = search_key(word)
    found: set[str] = set()
    prefixes = scan_prefixes(key)
    if not prefixes:  # a short word: as written (lower-cased, as the index holds it)
        return [word.casefold()]
    for prefix in prefixes:
        for term in index_terms(prefix):
            if term not in found and search_key(term) == key:
                found.add(term)
    return sorted(found)


def stemmed_fts_query(text: str, index_terms: IndexTerms) -> str | None:
    """An FTS5 query for `text`: every word must occur, in any of its inflected forms.

    A word ending in `*` stays a prefix search (`границ*`); a word the index splits in
    several (`Kyrgyz-Tajik`) stays an exact phrase. Returns "" for text without words,
    and None when a word has no form in the index at all (nothing can match).
    """
    parts: list[str] = []
    for word in text.split():
        is_prefix = word.endswith("*")
        bare = word.rstrip("*")
        tokens = _FTS_TOKEN_RE.findall(normalize_word(bare))
        if not tokens:
            continue
        if is_prefix or len(tokens) > 1:
            # as typed (the index keeps "ё"); unicode61 folds the case
            typed = _FTS_TOKEN_RE.findall(bare) or tokens
            parts.append(_quoted(" ".join(typed)) + ("*" if is_prefix else ""))
            continue
        terms = fts_terms(tokens[0], index_terms)
        if not terms:
            return None
        parts.append("(" + " OR ".join(_quoted(t) for t in terms) + ")")
    return " AND ".join(parts)
