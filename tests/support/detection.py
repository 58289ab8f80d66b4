"""Shared helpers for the detection tests (text, rules, matcher, corpus, evaluation).

The rules under test are the shipped `indicators.yaml` at the repository root, the
same file the daemon loads; corpus fixtures live in `tests/fixtures/corpus/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import yaml

from monitor.detect.rules import RuleSet, compile_ruleset
from monitor.models import ArticleText, Match

REPO = Path(__file__).resolve().parents[2]
SHIPPED_INDICATORS = REPO / "indicators.yaml"
CORPUS_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
DEV_CORPUS = CORPUS_FIXTURES / "dev.jsonl"
# Written independently of the dev corpus and never tuned on: the held-out check.
DEMO_CORPUS = REPO / "monitor" / "lab" / "demo_data" / "items.jsonl"
# Written blind (their authors never saw the rules), measured once, then tuned on:
# see tests/fixtures/corpus/SETS.md for the first-look figures.
HELDOUT_CORPUS = CORPUS_FIXTURES / "heldout.jsonl"
UNSEEN_CORPUS = CORPUS_FIXTURES / "unseen.jsonl"
FINAL_CORPUS = CORPUS_FIXTURES / "final.jsonl"


@cache
def shipped_rules() -> RuleSet:
    """The rule set of the shipped indicators.yaml, compiled once per test session."""
    document = yaml.safe_load(SHIPPED_INDICATORS.read_text(encoding="utf-8"))
    return compile_ruleset(document["theatres"], document["indicators"])


def article(
    text: str,
    *,
    title: str = "",
    language: str = "en",
    published: datetime | None = datetime(2024, 5, 1, tzinfo=UTC),
) -> ArticleText:
    return ArticleText(title=title, text=text, language=language, published_at=published)


def events(matches: list[Match]) -> set[str]:
    """ "indicator@theatre" of every match that counts as a detection."""
    return {f"{m.indicator_id}@{m.theatre_id}" for m in matches if m.is_event}


def find(matches: list[Match], key: str) -> Match | None:
    indicator_id, _, theatre_id = key.partition("@")
    for match in matches:
        if match.indicator_id == indicator_id and match.theatre_id == theatre_id:
            return match
    return None
