"""Search words become FTS5 queries over every indexed form with the matcher's stem."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from monitor.detect.stem_search import fts_terms, scan_prefixes, search_key, stemmed_fts_query

VOCABULARY = sorted(
    [
        "batken",
        "border",
        "borders",
        "bordered",
        "clash",
        "clashes",
        "clashed",
        "class",
        "classes",
        "country",
        "countries",
        "countryside",
        "rate",
        "rated",
        "rates",
        "rather",
        "capability",
        "capable",
        "lying",
        "lie",
        "граница",
        "границе",
        "границы",
        "гранит",
        "перестрелка",
        "перестрелки",
        "near",
        "and",
        "or",
    ]
)


def index_terms(prefix: str) -> Iterable[str]:
    """The sorted vocabulary's words that begin with `prefix`, as the fts5vocab scan gives."""
    return [term for term in VOCABULARY if term.startswith(prefix)]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("clash", ["clash", "clashed", "clashes"]),
        ("Clashes", ["clash", "clashed", "clashes"]),
        ("country", ["countries", "country"]),
        ("rated", ["rate", "rated", "rates"]),
        ("capabilities", ["capability", "capable"]),
        ("lies", ["lie", "lying"]),
        ("граница", ["граница", "границе", "границы"]),
        ("перестрелкой", ["перестрелка", "перестрелки"]),
        ("Vorukh", []),
    ],
    ids=["en-verb", "en-case", "en-y-ies", "en-e-dropped", "en-ble-bility", "en-lying", "ru-noun",
         "ru-instrumental", "absent"],
)  # fmt: skip
def test_every_form_with_the_same_stem(word: str, expected: list[str]) -> None:
    assert fts_terms(word, index_terms) == expected
    assert all(search_key(term) == search_key(word) for term in expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Batken clash", '("batken") AND ("clash" OR "clashed" OR "clashes")'),
        ("  border  ", '("border" OR "bordered" OR "borders")'),
        ('say "AND" OR', None),  # "say" is nowhere: nothing can match
        ("and or", '("and") AND ("or")'),  # FTS operators are words to find, quoted
        ("NEAR(a b)", '"NEAR a" AND ("b")'),  # split by the index: a phrase
        ("границ*", '"границ"*'),  # a prefix stays a prefix, as typed
        ("Kyrgyz-Tajik", '"Kyrgyz Tajik"'),  # split by the index: a phrase
        ("*", ""),
        ('"', ""),
        ("", ""),
    ],
    ids=["two-words", "spaces", "absent-word", "operators-quoted", "near-quoted", "prefix",
         "hyphenated-phrase", "star-only", "quote-only", "empty"],
)  # fmt: skip
def test_query_text(text: str, expected: str | None) -> None:
    assert stemmed_fts_query(text, index_terms) == expected


def test_short_words_are_not_scanned() -> None:
    """A stem under three letters is looked up as written: a scan of every word that
    begins with "b" would cost more than the search."""
    scanned: list[str] = []

    def recording(prefix: str) -> Iterable[str]:
        scanned.append(prefix)
        return index_terms(prefix)

    assert stemmed_fts_query("B us", recording) == '("b") AND ("us")'
    assert scanned == []
    assert scan_prefixes("b") == ()
