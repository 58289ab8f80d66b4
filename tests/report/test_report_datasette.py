"""Datasette on the demo database with monitor's metadata: every table, view and column
described, and every canned query returns rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from monitor.report.datasette import metadata, metadata_for
from tests.support.report import demo_database

datasette_app = pytest.importorskip("datasette.app", reason="the datasette extra is not installed")

# Parameters of each canned query for the demo's story.
PARAMS: dict[str, dict[str, str]] = {
    "theatre_daily_scores": {"theatre": "kg-tj"},
    "score_evidence": {"theatre": "kg-tj", "at": "2022-09-16T18:00:00Z"},
    "alerts_by_theatre": {},
    "search_articles_en": {"words": "clash*"},
    "search_articles_ru": {"words": "границ*"},
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_database(tmp_path_factory)[0] / "monitor.db"


def _get(database: Path, path: str) -> Any:
    ds = datasette_app.Datasette([str(database)], metadata=metadata_for(database))
    import asyncio

    async def fetch() -> Any:
        response = await ds.client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        return response.json()

    return asyncio.run(fetch())


def test_every_canned_query_returns_rows(database: Path) -> None:
    queries = metadata()["databases"]["monitor"]["queries"]
    assert set(queries) == set(PARAMS)
    for name, params in PARAMS.items():
        query = "&".join(f"{k}={v}" for k, v in params.items())
        data = _get(database, f"/monitor/{name}.json?_shape=array&{query}")
        assert data, f"canned query {name} returned no rows"


def test_the_docs_examples_return_rows(database: Path) -> None:
    # The table-page forms docs/database.md gives: an existing point, a raw prefix search.
    evidence = _get(
        database,
        "/monitor/evidence.json?_shape=array&theatre_id=kg-tj&score_at=2022-09-16T12:00:00Z",
    )
    assert evidence
    found = _get(database, "/monitor/articles.json?_shape=array&_search=границ*&_searchmode=raw")
    assert found
    digest = _get(database, "/monitor/alert_log.json?_shape=array&delivery=digest")
    assert digest


def test_every_table_view_and_column_is_described(database: Path) -> None:
    tables = metadata()["databases"]["monitor"]["tables"]
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    names = [
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        if not row[0].startswith("articles_fts_") and row[0] != "sqlite_sequence"
    ]
    for name in names:
        assert name in tables, f"{name} has no metadata"
        entry = tables[name]
        assert entry.get("title") and entry.get("description"), name
        if name == "articles_fts":
            continue
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({name})")]
        missing = [c for c in columns if c not in entry.get("columns", {})]
        assert not missing, f"{name}: undescribed columns {missing}"


def test_metadata_follows_the_file_name(tmp_path: Path) -> None:
    assert "copy" in metadata_for(tmp_path / "copy.db")["databases"]
