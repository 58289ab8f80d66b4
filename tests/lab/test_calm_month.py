"""Alert fatigue (issue 12): a calm month replayed through the production pipeline
(`monitor replay`: the real matcher, scorer and alert rules on a simulated clock) raises
no level_up, surge or critical alert.

The month: `tests/fixtures/corpus/calm_month.jsonl` (irrelevant and near-miss items over
2026-10-01..30, written blind to the rules) plus the dev corpus's negatives re-dated into
it (tests/support/calm.py). The figure (alerts by kind, what was matched) is printed; run
`pytest tests/test_calm_month.py -s` to see it. SETS.md records it.
"""

from __future__ import annotations

import json
from pathlib import Path

from monitor.lab.corpus import load_corpus
from tests.support.calm import (
    CALM_MONTH,
    DEV_CORPUS,
    MONTH_DAYS,
    dev_calm_records,
    replay_calm,
    write_corpus,
)


def test_a_calm_month_raises_no_urgent_alert(tmp_path: Path) -> None:
    calm_dev = dev_calm_records()
    corpus = write_corpus(tmp_path / "calm.jsonl", CALM_MONTH, extra=calm_dev)
    items = load_corpus(corpus)  # ids unique across both sources, every line valid
    assert len(items) >= 1000 + len(calm_dev) and len(calm_dev) >= 10
    assert all(not item.labels for item in items)
    figure = replay_calm(corpus, tmp_path / "calm.db")
    print(figure.line())
    assert figure.items == len(items)
    assert figure.days >= MONTH_DAYS - 1, "the month's items are spread over its days"
    assert figure.urgent == 0, f"{figure.line()}\ncounted matches:\n{figure.details()}"


# ---------------------------------------------------------------------------
# The machinery, on small files of its own


def test_dev_negatives_are_re_dated_evenly_into_the_month() -> None:
    records = dev_calm_records()
    raw = [json.loads(line) for line in DEV_CORPUS.read_text(encoding="utf-8").splitlines()]
    negatives = [r for r in raw if not r["labels"] and r["id"].startswith("neg-")]
    assert [r["id"] for r in records] == [r["id"] for r in negatives]
    days = [r["date"] for r in records]
    assert days == sorted(days) and days[0] == "2026-10-01" and days[-1] <= "2026-10-30"
    assert len(set(days)) == len(days)
    # the trench item (unlabelled, but a warning sign) is not calm
    assert "kg-tj-trenches-topcor-ru" not in {r["id"] for r in records}


def test_the_dev_negatives_alone_are_calm(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "negatives.jsonl", extra=dev_calm_records())
    figure = replay_calm(corpus, tmp_path / "negatives.db")
    assert figure.items == len(dev_calm_records())
    assert figure.urgent == 0, figure.details()


def test_a_month_with_fighting_in_it_is_not_calm_and_says_what_fired(tmp_path: Path) -> None:
    """The check can fail: the same negatives plus the dev corpus's reports of the
    September 2022 fighting, moved into the month, raise urgent alerts, and the figure
    names the items and indicators that fired."""
    raw = [json.loads(line) for line in DEV_CORPUS.read_text(encoding="utf-8").splitlines()]
    fighting = [r for r in raw if "border_clash" in r["labels"] and r["theatre"] == "kg-tj"]
    for number, record in enumerate(fighting):
        record["date"] = f"2026-10-{12 + number % 3:02d}"
    corpus = write_corpus(tmp_path / "hot.jsonl", extra=[*dev_calm_records(), *fighting])
    figure = replay_calm(corpus, tmp_path / "hot.db")
    assert figure.urgent > 0, figure.line()
    fired_ids = {f.item_id for f in figure.fired if f.indicator_id == "border_clash"}
    assert fired_ids and fired_ids <= {r["id"] for r in fighting}
    assert "border_clash in kg-tj" in figure.line()
    for item_id in fired_ids:
        assert f"  {item_id}: border_clash in kg-tj" in figure.details()
