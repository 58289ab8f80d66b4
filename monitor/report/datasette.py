"""Serving the database with Datasette and the metadata shipped beside this module.

`datasette-metadata.json` names and describes every table, view and column (with units
in the descriptions: index 0–100, points, counts, UTC times) and holds the canned
queries. Datasette keys metadata by the database's name, which is the file's name
without `.db`: `metadata_for` re-keys it for any file name. Needs the `datasette` extra.
"""

from __future__ import annotations

import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.errors import MonitorError

INSTALL_HINT = "pip install 'monitor[datasette]'"


def metadata() -> dict[str, Any]:
    """The shipped metadata, keyed for a database named `monitor` (monitor.db)."""
    text = resources.files("monitor.report").joinpath("datasette-metadata.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def metadata_for(database: Path) -> dict[str, Any]:
    """The metadata for the database file `database` (Datasette names it by its stem)."""
    shipped = metadata()
    databases = shipped["databases"]
    databases[database.stem] = databases.pop("monitor")
    return shipped


def serve(database: Path, extra_args: list[str]) -> None:
    """`datasette serve DATABASE --metadata …` with anything else the user added."""
    try:
        from datasette.cli import cli
    except ImportError:
        raise MonitorError(
            f"monitor datasette needs Datasette, which is not installed: {INSTALL_HINT}"
        ) from None
    with tempfile.TemporaryDirectory(prefix="monitor-datasette-") as folder:
        path = Path(folder) / "metadata.json"
        path.write_text(json.dumps(metadata_for(database), ensure_ascii=False), encoding="utf-8")
        cli.main(
            ["serve", str(database), "--metadata", str(path), *extra_args], prog_name="datasette"
        )
