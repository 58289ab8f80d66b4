"""One way to print rows: `--format table|csv|json` for every listing command.

Owns rendering only; it never queries. Tables go through tabulate, CSV through the csv
module (RFC 4180), JSON as a list of objects with ISO timestamps.
"""

from __future__ import annotations

import csv
import io
import json
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
    from tabulate import tabulate  # only tables need it; it imports importlib.metadata

    return tabulate(
        [[_cell(row.get(k)) for k in names] for row in rows], headers=names, tablefmt="simple"
    )


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}"
    if value is None:
        return ""
    return value
