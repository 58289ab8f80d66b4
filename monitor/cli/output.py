"""One way to print rows: `--format table|csv|json` for every listing command.

Owns rendering only; it never queries. Tables look like tabulate's "simple" format;
CSV goes through the csv module (RFC 4180), JSON is a list of objects with ISO timestamps.

Tables of the values the queries return (numbers, None and plain one-line text) are laid
out here, the way tabulate lays them out, character for character
(tests/test_output.py compares the two). That is 10-20 times faster than tabulate and
needs no import of it: a year of daily history of five theatres is 1,830 rows, which
tabulate took 0.3 s to lay out. Any other cell (text that reads as a number or a
boolean, several lines, terminal escapes, wide characters) goes to tabulate itself.

JSON is `json.dumps(..., ensure_ascii=False, indent=2)` character for character, but made
here for documents of dicts, lists and plain values: with `indent`, the standard library
encodes in Python, about 4 times slower than `json_text` (the history of 30 days as JSON
is 14,400 objects). CSV rows go to the csv module in one call, as tuples.
"""

from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring  # the C encoder of a string, where there is one
from math import isfinite
from operator import itemgetter
from typing import Any

FORMATS = ("table", "csv", "json")


def render_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    fmt: str = "table",
    empty: str = "(nothing to show)",
    headers: Mapping[str, str] | None = None,
) -> str:
    """`rows` as a table, CSV or JSON: the `columns` given (default: the first row's keys),
    a row without one showing None. `headers` renames columns in a table's header only
    (CSV and JSON keep the keys scripts read)."""
    names = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    if fmt == "json":
        return json_text([{k: row.get(k) for k in names} for row in rows])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(_value_tuples(rows, names))  # the csv module writes None as ""
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return empty
    shown = names if headers is None else [headers.get(k, k) for k in names]
    fast = _simple_table([[row.get(k) for k in names] for row in rows], shown)
    if fast is not None:
        return fast
    from tabulate import tabulate  # imported only for unusual cells: it costs 40-90 ms

    return tabulate(
        [[_cell(row.get(k)) for k in names] for row in rows], headers=shown, tablefmt="simple"
    )


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}"
    if value is None:
        return ""
    return value


# -- tabulate's "simple" table, for cells that are numbers, None or plain text ----------

MIN_PADDING = 2  # tabulate's: a header is at least this much narrower than its column


def _is_plain_text(cell: str) -> bool:
    """Text tabulate shows as it is: one line, not number-like, no escapes, no wide or
    combining characters, no surrounding white space."""
    if cell != cell.strip() or cell in ("True", "False"):
        return False
    try:
        float(cell.replace(",", ""))
        return False  # reads as a number: tabulate may type the column as numeric
    except ValueError:
        pass
    if cell.isascii():
        return cell.isprintable()
    if not cell.isprintable():
        return False
    # each distinct character looked up once per process (Russian titles repeat theirs)
    new = set(cell) - _NARROW
    if any(unicodedata.east_asian_width(ch) in "WF" or unicodedata.combining(ch) for ch in new):
        return False
    _NARROW.update(new)
    return True


_NARROW: set[str] = set()  # characters seen one column wide and not combining


_NONE = type(None)


def _column_texts(values: list[Any]) -> tuple[list[str], bool] | None:
    """(each value as tabulate shows it, whether the column is numeric), or None when a
    value is one this layout does not handle exactly."""
    kinds = set(map(type, values))
    if kinds <= {int, float, _NONE} and kinds != {_NONE}:
        if float not in kinds:
            shown = ["" if v is None else str(v) for v in values]
        else:
            if not all(math.isfinite(v) for v in values if v is not None):
                return None
            # as tabulate shows `_cell`'s one decimal: parsed back, in the "g" format (once
            # per distinct one-decimal text: a column of scores repeats them)
            memo: dict[str, str] = {}
            shown = []
            for v in values:
                if v is None:
                    shown.append("")
                elif type(v) is float:
                    one_decimal = f"{v:.1f}"
                    text = memo.get(one_decimal)
                    if text is None:
                        text = memo[one_decimal] = format(float(one_decimal), "g")
                    shown.append(text)
                else:
                    shown.append(format(float(v), "g"))
        return _decimal_aligned(shown), True
    if kinds <= {str, _NONE}:
        checked: dict[str, bool] = {"": True}
        for v in values:
            if v is not None and v not in checked:
                if not _is_plain_text(v):
                    return None
                checked[v] = True
        return ["" if v is None else v for v in values], False
    return None


def _simple_table(cells: list[list[Any]], headers: Sequence[str]) -> str | None:
    """tabulate(cells made by `_cell`, headers, tablefmt="simple") from the raw values,
    or None when a value is unusual."""
    if not all(h == "" or _is_plain_text(h) for h in headers):
        return None
    columns: list[list[str]] = []
    numeric: list[bool] = []
    for index in range(len(headers)):
        texts = _column_texts([row[index] for row in cells])
        if texts is None:
            return None
        columns.append(texts[0])
        numeric.append(texts[1])
    widths = [
        max(len(header) + MIN_PADDING, *map(len, column))
        for header, column in zip(headers, columns, strict=True)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if num else h.ljust(w)
            for h, w, num in zip(headers, widths, numeric, strict=True)
        ).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    padded = [
        [t.rjust(w) for t in column] if num else [t.ljust(w) for t in column]
        for column, w, num in zip(columns, widths, numeric, strict=True)
    ]
    lines.extend("  ".join(row).rstrip() for row in zip(*padded, strict=True))
    return "\n".join(lines)


def _decimal_aligned(texts: list[str]) -> list[str]:
    """Pad numbers on the right so their decimal points line up (tabulate's "decimal")."""
    after = {t: _after_point(t) for t in set(texts)}  # a column repeats its texts
    most = max(after.values())
    padded = {t: t + " " * (most - a) for t, a in after.items()}
    return [padded[t] for t in texts]


def _after_point(text: str) -> int:
    """Characters after the decimal point (or the exponent's "e"); -1 for none."""
    if not text or ("." not in text and "e" not in text):
        return -1
    pos = text.rfind(".")
    pos = text.lower().rfind("e") if pos < 0 else pos
    return len(text) - pos - 1


def _value_tuples(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Sequence[Any]]:
    """Each row's values of `names`, in order (None where a row lacks one)."""
    if not names:
        return [() for _ in rows]
    pick = itemgetter(*names)
    try:
        values = list(map(pick, rows))
    except KeyError:
        return [[row.get(k) for k in names] for row in rows]
    return values if len(names) > 1 else [(value,) for value in values]


# -- JSON, indented ---------------------------------------------------------------------


class _Unusual(Exception):
    """A value `json_text` leaves to the json module."""


def json_text(document: Any) -> str:
    """`json.dumps(document, ensure_ascii=False, indent=2)`, made faster for dicts with
    string keys, lists, tuples and plain values (str, int, float, bool, None); anything
    else goes to the json module, which gives the same text or the same error."""
    try:
        return _json(document, "\n")
    except _Unusual:
        return json.dumps(document, ensure_ascii=False, indent=2)


def _json(value: Any, newline: str) -> str:
    """`value` as JSON, its lines after the first indented as `newline` says."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            # the usual values inline: a call per value is most of the cost
            kind = type(item)
            if kind is str:
                text = encode_basestring(item)
            elif kind is float and isfinite(item):
                text = float.__repr__(item)
            elif kind is int:
                text = int.__repr__(item)
            else:
                text = _json_scalar(item, inner)
            parts.append(f"{encode_basestring(key)}: {text}")
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = newline + "  "
        return (
            "[" + inner + ("," + inner).join(_json_scalar(item, inner) for item in value)
            + newline + "]"
        )  # fmt: skip
    return _json_scalar(value, newline)


def _json_scalar(value: Any, newline: str) -> str:
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if isfinite(value):
            return float.__repr__(value)
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is dict or kind is list or kind is tuple:
        return _json(value, newline)
    raise _Unusual
