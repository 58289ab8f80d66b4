"""`--format table`: our own layout is tabulate's "simple" format, character for character.

`output.render_rows` lays out tables of numbers, None and plain text itself (tabulate
took 0.3 s for a year of daily history) and hands anything else to tabulate. Both paths
must print the same table: compared here on generated rows.
"""

from __future__ import annotations

import string
from typing import Any

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
