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
from collections.abc import Iterator
from typing import NamedTuple

import snowballstemmer

__all__ = [
    "ABBREVIATIONS",
    "FINAL_ABBREVIATIONS",
    "MARK_RE",
    "PUNCT_BREAKS",
    "SENTENCE_MARKS",
    "TOKEN_RE",
    "Sentence",
    "Token",
    "clear_stem_cache",
    "is_abbreviation",
    "is_cyrillic",
    "iter_mark_ends",
    "mark_decisions",
    "month_number",
    "normalize",
    "normalize_word",
    "sentence_spans",
    "split_sentences",
    "stem",
    "strip_invisible",
    "tokenize",
]

# A word: letters/digits, with stress marks or soft hyphens inside, apostrophe parts
# ("didn't", "Kyrgyzstan's"). Or one clause-breaking punctuation mark, which the
# matcher uses to keep negation from reaching across a comma.
_WORD = r"[^\W_](?:[^\W_]|[\u00ad\u0300-\u036f])*(?:['’ʼ`][^\W_]+)*"
WORD_RE = re.compile(_WORD)
# The matcher's fast tokenizer: run on `strip_invisible(text)`, where the stress marks
# and soft hyphens that `_WORD` tolerates inside words are already gone.
TOKEN_RE = re.compile(
    r"\w+(?:['’ʼ`]\w+)*|[,;:()\[\]–—]|(?<=\s)-(?=\s)|[.!?…]+(?=[\"'»”’)\]]*\s)|\n"
)
PUNCT_BREAKS = frozenset(",;:()[]–—-")
SENTENCE_MARKS = frozenset(".!?…\n")  # first characters of the sentence-end tokens
_INVISIBLE_RE = re.compile("[\u00ad\u0300-\u036f]")


def strip_invisible(text: str) -> str:
    """Drop soft hyphens and combining marks (Russian stress marks) from running text."""
    if text.isascii():
        return text
    if "\u00ad" in text or _INVISIBLE_RE.search(text):
        return _INVISIBLE_RE.sub("", text)
    return text


_CYRILLIC_RE = re.compile("[\u0400-\u04ff]")
_COMBINING_RE = re.compile("[\u0300-\u036f]")

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
    if _COMBINING_RE.search(folded):
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


def clear_stem_cache() -> None:
    """Forget every cached stem (for benchmarks that measure a cold start)."""
    _STEM_CACHE.clear()


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
# Month names

_MONTH_NAMES = (
    ("january jan", "январ"),
    ("february feb", "феврал"),
    ("march", "март"),
    ("april apr", "апрел"),
    ("may", ""),
    ("june jun", "июн"),
    ("july jul", "июл"),
    ("august aug", "август"),
    ("september sep sept", "сентябр"),
    ("october oct", "октябр"),
    ("november nov", "ноябр"),
    ("december dec", "декабр"),
)
_MONTHS: dict[str, int] = {"май": 5, "мая": 5, "мае": 5, "маем": 5}
for _number, (_english, _russian) in enumerate(_MONTH_NAMES, start=1):
    _MONTHS.update(dict.fromkeys(_english.split(), _number))
    if _russian:
        _MONTHS.update({_russian + ending: _number for ending in ("ь", "я", "е", "ем", "а", "")})


# Russian adjectives of the months: "сентябрьские бои", "апрельской войны" date an event
# as the month's name does.
_MONTH_ADJECTIVES = (
    "январск", "февральск", "мартовск", "апрельск", "майск", "июньск", "июльск",
    "августовск", "сентябрьск", "октябрьск", "ноябрьск", "декабрьск",
)  # fmt: skip
_ADJECTIVE_ENDINGS = ("ий", "ого", "ому", "им", "ом", "ая", "ой", "ую", "ое", "ие", "их", "ими")
for _number, _stem in enumerate(_MONTH_ADJECTIVES, start=1):
    _MONTHS.update({_stem + ending: _number for ending in _ADJECTIVE_ENDINGS})


def month_number(word: str) -> int:
    """The month (1-12) a word names, or 0: "October", "Sept", "апреля", "мае",
    "сентябрьских".

    An English name counts only capitalised ("may", "march" are other words); the
    caller decides about a capitalised "May" or "March" opening a sentence.
    """
    first = word[:1]
    if first.isascii() and not first.isupper():
        return 0
    return _MONTHS.get(word.lower().replace("ё", "е"), 0)


# ---------------------------------------------------------------------------
# Sentences

# Words after which a full stop does not end a sentence (lower-case, without the dot).
ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "gen",
        "lt",
        "col",
        "maj",
        "capt",
        "cpt",
        "sgt",
        "adm",
        "cmdr",
        "gov",
        "sen",
        "rep",
        "rev",
        "st",
        "mt",
        "ft",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "no",
        "nos",
        "vol",
        "fig",
        "approx",
        "est",
        "dept",
        "univ",
        "inc",
        "ltd",
        "co",
        "corp",
        "jr",
        "sr",
        "vs",
        "al",
        "ie",
        "eg",
        "cf",
        "u",
        "s",
        "k",
        "n",
        "г",
        "гг",
        "т",
        "тт",
        "д",
        "им",
        "ул",
        "св",
        "тыс",
        "млн",
        "млрд",
        "руб",
        "долл",
        "ген",
        "см",
        "стр",
        "рис",
        "пос",
        "обл",
        "р-н",
        "кв",
        "гл",
        "зам",
        "пред",
        "нач",
        "чел",
        "мин",
        "сек",
        "корр",
        "ред",
        "англ",
        "рус",
        "кыргыз",
        "тадж",
    ]
)
# A sentence-end candidate: end punctuation followed (after closing quotes) by white
# space, or a line break. `TOKEN_RE` yields exactly these marks as tokens too, in the
# same order, so a token stream and `mark_decisions` line up one to one.
_MARK = r"[.!?…]+(?=[\"'»”’)\]]*\s)|\n"
MARK_RE = re.compile(_MARK)
_AFTER_MARK_RE = re.compile(r"(?P<close>[\"'»”’)\]]*)[ \t\u00a0]*(?P<next>\S)?")
_CLOSING_RE = re.compile(r"[\"'»”’)\]]*")
_OPENERS = frozenset("\"'«“„—–-([")


class Sentence(NamedTuple):
    start: int
    end: int
    text: str


def is_abbreviation(word: str) -> bool:
    """Whether a full stop right after `word` closes an abbreviation or an initial
    ("Gen", "Sept", "г", "т.д" → "д", "В" of "В. Путин", "S" of "U.S.")."""
    if not word or not word[0].isalpha():
        return False
    if len(word) == 1:
        return True
    return word.lower().replace("ё", "е") in ABBREVIATIONS


# Abbreviations that usually close a sentence ("… танки, БТР и т.д. Всё прибыло.").
FINAL_ABBREVIATIONS = frozenset(["т.д", "т.п", "etc", "др"])


def _is_abbreviation(text: str, dot_at: int) -> bool:
    """Whether the full stop at `dot_at` closes an abbreviation or an initial."""
    begin = max(text.rfind(" ", 0, dot_at), text.rfind("\n", 0, dot_at)) + 1
    whole = text[begin:dot_at].lstrip("\"'«“„([")
    if whole.lower() in FINAL_ABBREVIATIONS:
        return False
    return is_abbreviation(whole.rsplit(".", 1)[-1])


def iter_mark_ends(text: str) -> Iterator[int]:
    """Offset just after each sentence-end candidate of `text` (closing quotes too)."""
    close = _CLOSING_RE.match
    for mark in MARK_RE.finditer(text):
        if mark.group() == "\n":
            yield mark.end()
            continue
        closing = close(text, mark.end())
        yield closing.end() if closing is not None else mark.end()


def mark_decisions(text: str) -> list[tuple[int, bool]]:
    """For each sentence-end candidate of `text` (see `MARK_RE`), in order: the offset
    just after it (closing quotes included) and whether it really ends a sentence.

    A line break always does. `.`, `!`, `?` or `…` do when the next visible character
    is an upper-case letter, a digit, a quote, a dash or an opening bracket (or there
    is none), unless a full stop closes an abbreviation ("Gen.", "Sept.", "г.",
    "т.д.") or an initial ("В. Путин", "U.S.").
    """
    decisions: list[tuple[int, bool]] = []
    for mark in MARK_RE.finditer(text):
        if mark.group() == "\n":
            decisions.append((mark.end(), True))
            continue
        after = _AFTER_MARK_RE.match(text, mark.end())
        assert after is not None  # the pattern can match the empty string
        nxt = after.group("next")
        ends = nxt is None or nxt.isupper() or nxt.isdigit() or nxt in _OPENERS
        if ends and mark.group()[0] == "." and _is_abbreviation(text, mark.start()):
            ends = False
        decisions.append((after.end("close"), ends))
    return decisions


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of `text`, stripped of blanks.

    Sentences end where `mark_decisions` says so, and at the end of the text.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for end, ends in mark_decisions(text):
        if ends:
            _append_span(text, start, end, spans)
            start = end
    _append_span(text, start, len(text), spans)
    return spans


def _append_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        first = start + len(piece) - len(piece.lstrip())
        spans.append((first, first + len(stripped)))


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
            tokens.append(Token(found.group(), norm, stem(norm), found.start(), found.end(), index))
    return tokens
