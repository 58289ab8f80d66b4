"""Text handling for matching: normalisation, words with offsets, sentences, stems.

Owns how English and Russian news text is cut into sentences and words and how a word
becomes a comparable key: its normalised form (case folded, `ё`→`е`, stress marks and
soft hyphens removed, typographic apostrophes unified, `'s` dropped) and its Snowball
stem (English for Latin-script words, Russian for Cyrillic ones, whatever the
language of the article, since Russian news names "Bayraktar TB2" in Latin letters).

Hyphenated words are split ("Kyrgyz-Tajik" is two words); apostrophes stay inside a
word ("didn't"). Offsets always index the original, unnormalised text, so evidence can
be cut out of what the outlet wrote.

Must not: read files, know about indicators or theatres, or read the clock.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import snowballstemmer

__all__ = [
    "PUNCT_BREAKS",
    "TOKEN_RE",
    "Sentence",
    "Token",
    "is_cyrillic",
    "normalize",
    "normalize_word",
    "sentence_spans",
    "split_sentences",
    "stem",
    "tokenize",
]

# A word: letters/digits, with stress marks or soft hyphens inside, apostrophe parts
# ("didn't", "Kyrgyzstan's"). Or one clause-breaking punctuation mark, which the
# matcher uses to keep negation from reaching across a comma.
_WORD = r"[^\W_](?:[^\W_]|[\u00ad\u0300-\u036f])*(?:['’ʼ`][^\W_]+)*"
TOKEN_RE = re.compile(rf"{_WORD}|[,;:()\[\]–—]|(?<=\s)-(?=\s)")
WORD_RE = re.compile(_WORD)
PUNCT_BREAKS = frozenset(",;:()[]–—-")

_CYRILLIC_RE = re.compile("[\u0400-\u04ff]")

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_TEXT_TRANSLATION = str.maketrans(
    {
        **{dash: "-" for dash in _DASHES},
        "\u00ab": '"',
        "\u00bb": '"',
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u02bc": "'",
        "`": "'",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
        "\u00ad": None,
        "ё": "е",
        "Ё": "е",
    }
)


def normalize(text: str) -> str:
    """Fold case and unify variants so that equal words compare equal.

    Lower-cases, maps `ё` to `е`, every dash to `-`, typographic quotes to `"`/`'`,
    odd spaces to a space, and drops stress marks and soft hyphens. The result may be
    shorter than the input: never use its offsets against the original.
    """
    folded = text.translate(_TEXT_TRANSLATION).casefold()
    if any("\u0300" <= char <= "\u036f" for char in folded):
        decomposed = unicodedata.normalize("NFD", folded)
        # Keep й (и + breve) intact: recompose after dropping acute/grave stress marks.
        kept = "".join(c for c in decomposed if c not in "\u0300\u0301")
        folded = unicodedata.normalize("NFC", kept)
    return folded.replace("ё", "е")


def normalize_word(word: str) -> str:
    """Normalise one word; also drops an English possessive `'s` ("CSTO's" → "csto")."""
    norm = normalize(word)
    if norm.endswith("'s") and not is_cyrillic(norm):
        norm = norm[:-2]
    return norm


def is_cyrillic(word: str) -> bool:
    """True when the word has a Cyrillic letter (and so takes the Russian stemmer)."""
    return _CYRILLIC_RE.search(word) is not None


_STEMMERS = {
    "en": snowballstemmer.stemmer("english"),
    "ru": snowballstemmer.stemmer("russian"),
}
_STEM_CACHE: dict[str, str] = {}
_STEM_CACHE_LIMIT = 200_000


def stem(word: str) -> str:
    """Snowball stem of a normalised word, Russian for Cyrillic words, else English.

    Stems are cached: a news vocabulary is small, and each word is stemmed once per
    process. The cache is cleared when it grows past a bound, so memory stays flat.
    """
    cached = _STEM_CACHE.get(word)
    if cached is not None:
        return cached
    if any(char.isdigit() for char in word) and not any(char.isalpha() for char in word):
        result = word
    else:
        stemmer = _STEMMERS["ru"] if is_cyrillic(word) else _STEMMERS["en"]
        result = stemmer.stemWord(word)
    if len(_STEM_CACHE) >= _STEM_CACHE_LIMIT:
        _STEM_CACHE.clear()
    _STEM_CACHE[word] = result
    return result


# ---------------------------------------------------------------------------
# Sentences

# Words after which a full stop does not end a sentence (lower-case, without the dot).
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "gen", "lt", "col", "maj", "capt", "cpt", "sgt", "adm", "cmdr", "gov", "sen", "rep", "rev", "st", "mt", "ft", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "no", "nos", "vol", "fig", "approx", "est", "dept", "univ", "inc", "ltd", "co", "corp", "jr", "sr", "vs", "etc", "al", "ie", "eg", "cf", "u", "s", "k", "n", "г", "гг", "т", "тт", "д", "др", "им", "ул", "св", "тыс", "млн", "млрд", "руб", "долл", "ген", "см", "стр", "рис", "пос", "обл", "р-н", "кв", "гл", "зам", "пред", "нач", "чел", "мин", "сек", "корр", "ред", "англ", "рус", "кыргыз", "тадж"]
)
# A sentence boundary candidate: end punctuation, closing quotes/brackets, then space.
_BOUNDARY_RE = re.compile(r"[.!?…]+[\"'»”’)\]]*(?=\s)|\n")
_WORD_BEFORE_RE = re.compile(r"([^\W\d_][\w-]*)\.*$")


class Sentence(NamedTuple):
    start: int
    end: int
    text: str


def _is_abbreviation(text: str, dot_at: int) -> bool:
    """Whether the full stop at `dot_at` closes an abbreviation or an initial."""
    found = _WORD_BEFORE_RE.search(text, max(0, dot_at - 12), dot_at + 1)
    if found is None:
        return False
    word = found.group(1)
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "В. Путин", "J. Smith"; also "U.S."
    return normalize(word) in _ABBREVIATIONS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of `text`, stripped of blanks.

    A sentence ends at a line break, or at `.`, `!`, `?` or `…` followed by a space and
    an upper-case letter, digit, quote or dash; a full stop after an abbreviation
    ("Gen.", "Sept.", "г.", "т.д.") or an initial ("В. Путин") does not end one.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    length = len(text)
    for boundary in _BOUNDARY_RE.finditer(text):
        end = boundary.end()
        mark = boundary.group()
        if mark != "\n":
            following = end
            while following < length and text[following] in " \t\u00a0":
                following += 1
            if following < length:
                nxt = text[following]
                if not (nxt.isupper() or nxt.isdigit() or nxt in "\"'«“„—–-([\n"):
                    continue
            if mark[0] == "." and _is_abbreviation(text, boundary.start()):
                continue
        _append_span(text, start, end, spans)
        start = end
    _append_span(text, start, length, spans)
    return spans


def _append_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of `text`, each with its offsets into `text`."""
    return [Sentence(start, end, text[start:end]) for start, end in sentence_spans(text)]


# ---------------------------------------------------------------------------
# Words


class Token(NamedTuple):
    """One word of a text: surface form, normalised form, stem, offsets, sentence number."""

    text: str
    norm: str
    stem: str
    start: int
    end: int
    sentence: int


def tokenize(text: str) -> list[Token]:
    """The words of `text` with their offsets and the number of their sentence."""
    tokens: list[Token] = []
    for index, (start, end) in enumerate(sentence_spans(text)):
        for found in WORD_RE.finditer(text, start, end):
            norm = normalize_word(found.group())
            if not norm:
                continue
            tokens.append(
                Token(found.group(), norm, stem(norm), found.start(), found.end(), index)
            )
    return tokens
