"""What names the database knows: the theatre ids it has data for, and the words of the
articles' full-text index (for the search that stems, `monitor.detect.stem_search`).

Read-only queries; each takes an open `Store` (usually read-only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.db import Store

THEATRE_TABLES = ("scores", "alerts", "matches")  # each has an index led by theatre_id


def theatre_ids(store: Store) -> tuple[str, ...]:
    """Every theatre id the database has scores, alerts or matches for (a skip scan of
    each table's theatre index: one index step per theatre, not per row)."""
    found: set[str] = set()
    for table in THEATRE_TABLES:
        found.update(
            str(row[0])
            for row in store.conn.execute(
                f"""
                WITH RECURSIVE t(id) AS (
                  SELECT min(theatre_id) FROM {table}
                  UNION ALL
                  SELECT (SELECT min(theatre_id) FROM {table} WHERE theatre_id > t.id)
                  FROM t WHERE t.id IS NOT NULL
                )
                SELECT id FROM t WHERE id IS NOT NULL
                """
            )
        )
    return tuple(sorted(found))


def has_theatre(store: Store, theatre_id: str) -> bool:
    """Whether the database has any score, alert or match for this theatre."""
    return any(
        store.conn.execute(
            f"SELECT 1 FROM {table} WHERE theatre_id = ? LIMIT 1", (theatre_id,)
        ).fetchone()
        for table in THEATRE_TABLES
    )


def fts_index_terms(store: Store, prefix: str) -> list[str]:
    """The words of the articles' full-text index that begin with `prefix` (a range scan
    of its sorted vocabulary, through an fts5vocab table in the connection's temp schema,
    which a read-only connection may create)."""
    if not prefix:
        return []
    store.conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.articles_fts_terms "
        "USING fts5vocab(main, articles_fts, row)"
    )
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return [
        str(term)
        for (term,) in store.conn.execute(
            "SELECT term FROM temp.articles_fts_terms WHERE term >= ? AND term < ?", (prefix, end)
        )
    ]
