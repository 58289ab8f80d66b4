"""A calm month through `monitor replay` (issue 12, alert fatigue): build the corpus, run
the real command on it, and read back what fired.

The calm month is `tests/fixtures/corpus/calm_month.jsonl` (irrelevant and near-miss items
over 2026-10-01..30, written blind to the rules) plus the dev corpus's calm items: its
negatives (`neg-*`, no label; not the unlabelled trench item, which the corpus README says
should raise risk). Those are dated 2016-2024 or not at all; they are re-dated into the
month, spread evenly over it, so they are replayed among the month's news rather than
as lone items years before it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from monitor import db
from monitor.cli import cli

REPO = Path(__file__).resolve().parents[2]
INDICATORS = REPO / "indicators.yaml"
CORPUS_FIXTURES = REPO / "tests" / "fixtures" / "corpus"
CALM_MONTH = CORPUS_FIXTURES / "calm_month.jsonl"
DEV_CORPUS = CORPUS_FIXTURES / "dev.jsonl"
MONTH_START = date(2026, 10, 1)
MONTH_DAYS = 30
URGENT_KINDS = ("level_up", "surge", "critical")


def dev_calm_records(path: Path = DEV_CORPUS) -> list[dict[str, Any]]:
    """The dev corpus's negatives, re-dated into the month (the old date kept in `notes`)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    calm = [r for r in records if not r["labels"] and r["id"].startswith("neg-")]
    for position, record in enumerate(calm):
        day = MONTH_START + timedelta(days=position * MONTH_DAYS // len(calm))
        record["notes"] = (
            f"{record.get('notes', '')} [calm month: from dev.jsonl, first dated {record['date']}]"
        ).strip()
        record["date"] = day.isoformat()
    return calm


def write_corpus(path: Path, *sources: Path, extra: Sequence[dict[str, Any]] = ()) -> Path:
    """Concatenate JSONL files and `extra` records into one corpus file."""
    lines = []
    for source in sources:
        lines += [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines += [json.dumps(record, ensure_ascii=False) for record in extra]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Fired:
    """One counted match (confidence >= 0.5) the replay stored."""

    item_id: str
    indicator_id: str
    theatre_id: str
    confidence: float


@dataclass(frozen=True)
class CalmFigure:
    items: int
    days: int
    alerts_by_kind: dict[str, int]
    matches: int  # every stored match, counted or not
    fired: tuple[Fired, ...]  # the counted ones
    peak_score: dict[str, float]  # the highest score point of each theatre

    @property
    def urgent(self) -> int:
        return sum(self.alerts_by_kind.get(kind, 0) for kind in URGENT_KINDS)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.alerts_by_kind.items())) or "none"
        by_indicator = Counter(f"{f.indicator_id} in {f.theatre_id}" for f in self.fired)
        signs = ", ".join(f"{k} {n}" for k, n in sorted(by_indicator.items())) or "none"
        peaks = ", ".join(f"{t} {s:.1f}" for t, s in sorted(self.peak_score.items()))
        return (
            f"calm month: {self.items} items over {self.days} days; alerts: {kinds}"
            f" (urgent {self.urgent}); matches {self.matches}, counted {len(self.fired)}"
            f" ({signs}); peak score {peaks}"
        )

    def details(self) -> str:
        return "\n".join(
            f"  {f.item_id}: {f.indicator_id} in {f.theatre_id} ({f.confidence:.2f})"
            for f in self.fired
        )


def replay_calm(corpus: Path, db_path: Path) -> CalmFigure:
    """`monitor replay CORPUS --db DB --format json`, then what it alerted and matched."""
    run = CliRunner().invoke(
        cli,
        [
            "--indicators",
            str(INDICATORS),
            "replay",
            str(corpus),
            "--db",
            str(db_path),
            "--format",
            "json",
        ],
        env={"MONITOR_CONFIG": ""},
    )
    assert run.exit_code == 0, run.output
    document = json.loads(run.output)
    kinds = Counter(alert["kind"] for alert in document["alerts"])
    with db.Store.open(db_path, readonly=True) as store:
        days = store.query("SELECT count(DISTINCT substr(published_at, 1, 10)) AS n FROM articles")
        [total] = store.query("SELECT count(*) AS n FROM matches")
        fired = store.query(
            "SELECT a.entry_id, m.indicator_id, m.theatre_id, m.confidence"
            " FROM matches m JOIN articles a ON a.id = m.article_id"
            " WHERE m.confidence >= 0.5 ORDER BY a.published_at, a.entry_id, m.indicator_id"
        )
        peaks = store.query("SELECT theatre_id, max(score) AS peak FROM scores GROUP BY theatre_id")
    return CalmFigure(
        items=document["replay"]["replayed"],
        days=days[0]["n"],
        alerts_by_kind=dict(kinds),
        matches=total["n"],
        fired=tuple(
            Fired(row["entry_id"], row["indicator_id"], row["theatre_id"], row["confidence"])
            for row in fired
        ),
        peak_score={row["theatre_id"]: float(row["peak"]) for row in peaks},
    )
