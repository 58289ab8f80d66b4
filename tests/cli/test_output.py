"""`--format table`: our own layout is tabulate's "simple" format, character for character.

`output.render_rows` lays out tables of numbers, None and plain text itself (tabulate
took 0.3 s for a year of daily history) and hands anything else to tabulate. Both paths
must print the same table: compared here on generated rows.
"""

from __future__ import annotations

import csv
import io
import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from monitor.cli import output

WORDS = st.text(alphabet=string.ascii_letters + "абвгдеёжзийк-:./ ()'", min_size=0, max_size=12)
CELLS = st.one_of(
    st.none(),
    st.integers(min_value=-(10**7), max_value=10**9),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    WORDS,
    st.sampled_from(["", "True", "12", "1,000", "3.5", " padded ", "inf", "日本", "a\nb"]),
)


def by_tabulate(rows: list[dict[str, Any]], columns: list[str]) -> str:
    return tabulate(
        [[output._cell(row.get(k)) for k in columns] for row in rows],
        headers=columns,
        tablefmt="simple",
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str]]:
    columns = draw(
        st.lists(st.sampled_from(["id", "at", "score", "level", "change", "x"]), min_size=1,
                 max_size=5, unique=True)
    )  # fmt: skip
    # a column holds one kind of value, as query columns do, or a mix (the unusual case)
    kinds = {c: draw(st.sampled_from(["int", "float", "text", "mixed"])) for c in columns}
    strategy = {
        "int": st.one_of(st.none(), st.integers(min_value=-(10**6), max_value=10**9)),
        "float": st.one_of(
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
            st.integers(min_value=0, max_value=100),
        ),
        "text": st.one_of(st.none(), WORDS),
        "mixed": CELLS,
    }
    rows = draw(
        st.lists(
            st.fixed_dictionaries({c: strategy[kinds[c]] for c in columns}),
            min_size=1,
            max_size=8,
        )
    )
    return rows, columns


@settings(max_examples=400, deadline=None)
@given(tables())
def test_table_is_tabulates_simple_format(table: tuple[list[dict[str, Any]], list[str]]) -> None:
    rows, columns = table
    assert output.render_rows(rows, columns=columns, fmt="table") == by_tabulate(rows, columns)


def test_a_query_like_table_is_laid_out_without_tabulate() -> None:
    rows = [
        {"theatre_id": "kg-tj", "at": "2026-01-01T00:00:00Z", "score": 12.25, "level": "low",
         "change": None, "stories": 3},
        {"theatre_id": "am-az", "at": "2026-01-02T00:00:00Z", "score": 7.0, "level": "high",
         "change": -5.25, "stories": 12},
    ]  # fmt: skip
    columns = list(rows[0])
    fast = output._simple_table([[r[k] for k in columns] for r in rows], columns)
    assert fast is not None and fast == by_tabulate(rows, columns)
    assert fast.splitlines()[2:] == [
        "kg-tj         2026-01-01T00:00:00Z     12.2  low                        3",
        "am-az         2026-01-02T00:00:00Z      7    high         -5.2         12",
    ]


def test_unusual_cells_go_to_tabulate() -> None:
    for cell in ("1,000", "True", " x", "a\nb", "日本", "\x1b[31mred\x1b[0m", "12", True, 1e400):
        assert output._simple_table([[cell]], ["x"]) is None, cell
    assert output._simple_table([["a"], [3]], ["x"]) is None  # text and numbers


# -- JSON and CSV: the json and csv modules' text, made faster ---------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),  # NaN and the infinities too: json.dumps writes NaN, Infinity
    st.text(max_size=12),  # any characters: quotes, control characters, surrogates' escapes
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=600, deadline=None)
@given(DOCUMENTS)
def test_json_text_is_json_dumps_indented(document: Any) -> None:
    assert output.json_text(document) == json.dumps(document, ensure_ascii=False, indent=2)


def test_json_text_leaves_other_values_to_the_json_module() -> None:
    class Score(float):
        pass

    odd = {"at": Score(1.5), "n": {1: "int key"}, "when": None}
    assert output.json_text(odd) == json.dumps(odd, ensure_ascii=False, indent=2)
    with pytest.raises(TypeError):  # the json module's own error for what it cannot write
        output.json_text({"bad": object()})


@settings(max_examples=300, deadline=None)
@given(tables(), st.booleans())
def test_csv_and_json_rows_are_the_modules_own(
    table: tuple[list[dict[str, Any]], list[str]], drop_a_key: bool
) -> None:
    rows, columns = table
    if drop_a_key:  # a row without one of the columns: shown as None
        del rows[-1][columns[0]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if row.get(k) is None else row.get(k) for k in columns] for row in rows)
    assert output.render_rows(rows, columns=columns, fmt="csv") == buffer.getvalue().rstrip("\n")
    expected = json.dumps(
        [{k: row.get(k) for k in columns} for row in rows], ensure_ascii=False, indent=2
    )
    assert output.render_rows(rows, columns=columns, fmt="json") == expected


def test_repeated_and_signed_zero_scores_are_laid_out_as_tabulate_does() -> None:
    # the layout formats each distinct one-decimal text once: -0.04 shows "-0", 0.04 "0"
    values = [-0.04, 0.04, -0.0, 0.0, 0.05, 0.04, 99999.96, 123456.7, 12, None, -0.04, 1e-7]
    rows = [{"score": v, "level": "low"} for v in values]
    table = output.render_rows(rows, columns=["score", "level"], fmt="table")
    assert table == by_tabulate(rows, ["score", "level"])
    assert table.splitlines()[2].split() == ["-0", "low"]


def test_a_wide_or_combining_character_among_known_ones_still_goes_to_tabulate() -> None:
    assert output._simple_table([["граница"]], ["x"]) is not None  # its letters now known
    assert output._simple_table([["граница日"]], ["x"]) is None
    assert output._simple_table([["гранича\u0301"]], ["x"]) is None  # a combining accent
    assert output._simple_table([["граница"]], ["x"]) is not None
