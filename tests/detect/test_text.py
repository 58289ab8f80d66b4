"""Text handling: normalisation, stems, words with offsets, sentences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.detect.text import (
    SENTENCE_MARKS,
    TOKEN_RE,
    is_abbreviation,
    iter_mark_ends,
    mark_decisions,
    month_number,
    normalize,
    normalize_word,
    split_sentences,
    stem,
    strip_invisible,
    tokenize,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("Учения ОТМЕНЕНЫ", "учения отменены", id="case-fold-ru"),
        pytest.param("Ёлки и всё", "елки и все", id="yo"),
        pytest.param("Kyrgyz–Tajik — border", "kyrgyz-tajik - border", id="dashes"),
        pytest.param("«Орлан» “TB2” ‘x’", '"орлан" "tb2" \'x\'', id="quotes"),
        pytest.param("уче\u0301ния", "учения", id="stress-mark"),
        pytest.param("отме\u00adнены", "отменены", id="soft-hyphen"),
        pytest.param("й", "й", id="short-i-kept"),
        pytest.param("STRAẞE", "strasse", id="casefold-not-lower"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        pytest.param("CSTO's", "csto", id="possessive"),
        pytest.param("Kyrgyzstan’s", "kyrgyzstan", id="typographic-apostrophe"),
        pytest.param("didn't", "didn't", id="contraction-kept"),
        pytest.param("Ёлка", "елка", id="yo"),
    ],
)
def test_normalize_word(word: str, expected: str) -> None:
    assert normalize_word(word) == expected


@pytest.mark.parametrize(
    "forms",
    [
        pytest.param(["cancel", "cancels", "cancelled", "cancelling"], id="en-verb"),
        pytest.param(["drill", "drills"], id="en-noun"),
        pytest.param(["учения", "учений", "учениях", "учениям"], id="ru-noun"),
        pytest.param(["отменили", "отменить", "отменят", "отменены"], id="ru-verb"),
        pytest.param(["граница", "границы", "границе", "границу"], id="ru-border"),
    ],
)
def test_inflections_share_a_stem(forms: list[str]) -> None:
    assert len({stem(normalize_word(form)) for form in forms}) == 1


def test_stem_picks_the_stemmer_by_script() -> None:
    assert stem("drones") == "drone"
    assert stem("беспилотники") == stem("беспилотников")
    assert stem("2022") == "2022"


def test_tokenize_keeps_offsets_into_the_original_text() -> None:
    text = 'Kyrgyz-Tajik clash.  Уче\u0301ния ОДКБ, "Bishkek\'s" view.'
    tokens = tokenize(text)
    assert [t.text for t in tokens] == [
        "Kyrgyz",
        "Tajik",
        "clash",
        "Уче\u0301ния",
        "ОДКБ",
        "Bishkek's",
        "view",
    ]
    assert all(text[t.start : t.end] == t.text for t in tokens)
    assert [t.sentence for t in tokens] == [0, 0, 0, 1, 1, 1, 1]
    assert tokens[3].norm == "учения" and tokens[5].norm == "bishkek"
    assert tokens[2].stem == "clash"


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        pytest.param(
            "Gen. Sidorov spoke. Troops left.",
            ["Gen. Sidorov spoke.", "Troops left."],
            id="en-title-abbreviation",
        ),
        pytest.param(
            "The U.S. troop withdrawal ended. Then calm.",
            ["The U.S. troop withdrawal ended.", "Then calm."],
            id="en-initialism",
        ),
        pytest.param(
            "It opened on Sept. 12 in Bishkek. Drills began.",
            ["It opened on Sept. 12 in Bishkek.", "Drills began."],
            id="en-month-abbreviation",
        ),
        pytest.param(
            "В 2019 г. В. Путин приехал. Учения начались.",
            ["В 2019 г. В. Путин приехал.", "Учения начались."],
            id="ru-year-and-initial",
        ),
        pytest.param(
            "Танки, БТР и т.д. Всё прибыло.",
            ["Танки, БТР и т.д.", "Всё прибыло."],
            id="ru-etc-ends-when-capital-follows",
        ),
        pytest.param(
            "Growth was 7.5 percent. Good.", ["Growth was 7.5 percent.", "Good."], id="decimal"
        ),
        pytest.param(
            'Is it over? Yes! "Maybe." Fine…',
            ["Is it over?", "Yes!", '"Maybe."', "Fine…"],
            id="marks-and-quotes",
        ),
        pytest.param(
            "Wait... and then it ended.", ["Wait... and then it ended."], id="lower-case-goes-on"
        ),
        pytest.param(
            "Headline\n\nFirst paragraph.\n- a bullet",
            ["Headline", "First paragraph.", "- a bullet"],
            id="line-breaks",
        ),
        pytest.param("  \n \n", [], id="blank"),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    found = split_sentences(text)
    assert [s.text for s in found] == sentences
    assert all(text[s.start : s.end] == s.text for s in found)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        pytest.param("Gen", True, id="rank"),
        pytest.param("г", True, id="ru-year"),
        pytest.param("S", True, id="initial"),
        pytest.param("Kyrgyzstan", False, id="word"),
        pytest.param("2022", False, id="number"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_abbreviation(word: str, expected: bool) -> None:
    assert is_abbreviation(word) is expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        pytest.param("October", 10, id="en-name"),
        pytest.param("Sept", 9, id="en-abbreviation"),
        pytest.param("May", 5, id="en-may-capitalised"),
        pytest.param("may", 0, id="en-modal"),
        pytest.param("march", 0, id="en-verb"),
        pytest.param("апреля", 4, id="ru-genitive"),
        pytest.param("мае", 5, id="ru-may-prepositional"),
        pytest.param("Декабрь", 12, id="ru-capitalised"),
        # month adjectives date an event as the month's name does ("сентябрьские бои")
        pytest.param("мартовский", 3, id="ru-adjective"),
        pytest.param("сентябрьских", 9, id="ru-adjective-plural"),
        pytest.param("маршрут", 0, id="ru-other-word"),
        pytest.param("2024", 0, id="number"),
    ],
)
def test_month_number(word: str, expected: int) -> None:
    assert month_number(word) == expected


def test_strip_invisible_only_touches_marks() -> None:
    assert strip_invisible("уче\u0301ния отме\u00adнены") == "учения отменены"
    plain = "nothing to do"
    assert strip_invisible(plain) is plain


_ALPHABET = st.sampled_from([*"ab АБ.?!…\n\"'»()—-,:7 ", "Gen.", "U.S.", "г.", "  "])


@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_mark_tokens_and_mark_decisions_line_up(text: str) -> None:
    """The matcher relies on this: the i-th mark token is the i-th mark decision."""
    marks = [token for token in TOKEN_RE.findall(text) if token[0] in SENTENCE_MARKS]
    decisions = mark_decisions(text)
    assert len(marks) == len(decisions) == len(list(iter_mark_ends(text)))
    assert [end for end, _ in decisions] == list(iter_mark_ends(text))
