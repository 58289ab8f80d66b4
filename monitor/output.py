"""One way to print rows: `--format table|csv|json` for every listing command.

Owns rendering only; it never queries. Tables look like tabulate's "simple" format;
CSV goes through the csv module (RFC 4180), JSON is a list of objects with ISO timestamps.

Tables of the values the queries return (numbers, None and plain one-line text) are laid
out here, the way tabulate lays them out, character for character
(tests/test_output.py compares the two). That is 10-20 times faster than tabulate and
needs no import of it: a year of daily history of five theatres is 1,830 rows, which
tabulate took 0.3 s to lay out. Any other cell (text that reads as a number or a
boolean, several lines, terminal escapes, wide characters) goes to tabulate itself.
"""

from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("table", "csv", "json")


def render_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    fmt: str = "table",
    empty: str = "(nothing to show)",
) -> str:
    names = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    if fmt == "json":
        return json.dumps(
            [{k: row.get(k) for k in names} for row in rows], ensure_ascii=False, indent=2
        )
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if row.get(k) is None else row.get(k) for k in names])
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return empty
    cells = [[_cell(row.get(k)) for k in names] for row in rows]
    fast = _simple_table(cells, names)
    if fast is not None:
        return fast
    from tabulate import tabulate  # imported only for unusual cells: it costs 40-90 ms

    return tabulate(cells, headers=names, tablefmt="simple")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}"
    if value is None:
        return ""
    return value


# -- tabulate's "simple" table, for cells that are numbers, None or plain text ----------

MIN_PADDING = 2  # tabulate's: a header is at least this much narrower than its column


def _number_text(cell: object) -> tuple[str, bool] | None:
    """(the text tabulate shows for `cell` in a numeric column, whether it is an int),
    or None when `cell` is not a number this renderer handles exactly."""
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int):
        return str(cell), True
    if isinstance(cell, str) and cell and _is_decimal_text(cell):
        value = float(cell)
        return (format(value, "g"), False) if math.isfinite(value) else None
    return None


def _is_decimal_text(text: str) -> bool:
    """ "12.5", "-0.3": what `_cell` makes of a float."""
    body = text[1:] if text[:1] == "-" else text
    whole, dot, fraction = body.partition(".")
    return (
        bool(dot)
        and whole.isascii()
        and whole.isdigit()
        and fraction.isascii()
        and (fraction.isdigit())
    )


def _is_plain_text(cell: object) -> bool:
    """Text tabulate shows as it is: one line, not number-like, no escapes, no wide or
    combining characters, no surrounding white space."""
    if not isinstance(cell, str) or cell != cell.strip():
        return False
    if cell in ("True", "False"):
        return False
    try:
        float(cell.replace(",", ""))
        return False  # reads as a number: tabulate may type the column as numeric
    except ValueError:
        pass
    if cell.isascii():
        return cell.isprintable()
    return cell.isprintable() and not any(
        unicodedata.east_asian_width(ch) in "WF" or unicodedata.combining(ch) for ch in cell
    )


def _simple_table(cells: list[list[Any]], headers: Sequence[str]) -> str | None:
    """tabulate(cells, headers, tablefmt="simple"), or None when a cell is unusual."""
    if not all(_is_plain_text(h) or h == "" for h in headers):
        return None
    columns: list[list[str]] = []
    numeric: list[bool] = []
    for index in range(len(headers)):
        values = [row[index] for row in cells]
        present = [v for v in values if v != ""]
        if present and all(_number_text(v) is not None for v in present):
            texts = [_number_text(v) for v in values]
            if all(t is None or t[1] for t in texts):  # an int column
                shown = ["" if t is None else t[0] for t in texts]
            else:  # a float column: ints shown as floats ("3" stays "3" with "g")
                shown = ["" if t is None else format(float(t[0]), "g") for t in texts]
            columns.append(_decimal_aligned(shown))
            numeric.append(True)
        elif all(v == "" or _is_plain_text(v) for v in values):
            columns.append([str(v) for v in values])
            numeric.append(False)
        else:
            return None
    widths = [
        max(len(header) + MIN_PADDING, *(len(text) for text in column))
        for header, column in zip(headers, columns, strict=True)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if num else h.ljust(w)
            for h, w, num in zip(headers, widths, numeric, strict=True)
        ).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for r in range(len(cells)):
        lines.append(
            "  ".join(
                column[r].rjust(w) if num else column[r].ljust(w)
                for column, w, num in zip(columns, widths, numeric, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def _decimal_aligned(texts: list[str]) -> list[str]:
    """Pad numbers on the right so their decimal points line up (tabulate's "decimal")."""
    after = [_after_point(t) for t in texts]
    most = max(after)
    return [t + " " * (most - a) for t, a in zip(texts, after, strict=True)]


def _after_point(text: str) -> int:
    """Characters after the decimal point (or the exponent's "e"); -1 for none."""
    if not text or ("." not in text and "e" not in text):
        return -1
    pos = text.rfind(".")
    pos = text.lower().rfind("e") if pos < 0 else pos
    return len(text) - pos - 1
