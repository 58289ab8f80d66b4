"""Loading the labelled corpus: the three date forms, the fields, and clear errors."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import MonitorError
from monitor.lab.corpus import CorpusError, CorpusItem, load_corpus, parse_corpus_date
from monitor.models import ArticleText
from tests.support.detection import DEV_CORPUS


def test_dev_corpus_loads_with_the_documented_counts() -> None:
    items = load_corpus(DEV_CORPUS)
    assert len(items) == 51
    assert Counter(item.lang for item in items) == {"en": 41, "ru": 10}
    assert Counter(item.theatre for item in items) == {
        "kg-tj": 25,
        "csto": 17,
        "am-az": 5,
        "other": 4,
    }
    labels = Counter(label for item in items for label in item.labels)
    assert labels == {
        "border_clash": 10,
        "de_escalation": 9,
        "arms_delivery": 6,
        "exercise_cancellation": 6,
        "territorial_claim": 5,
        "alliance_withdrawal": 5,
    }
    assert sum(1 for item in items if not item.labels) == 12
    assert Counter(item.date_precision for item in items) == {
        "day": 44,
        "month": 3,
        "year": 1,
        "unknown": 3,
    }
    assert all(item.published_at is None for item in items if item.date_precision == "unknown")


def test_an_item_becomes_the_article_the_matcher_reads() -> None:
    items = {item.id: item for item in load_corpus(DEV_CORPUS)}
    item = items["kg-tj-clash-2021-nsn-ru"]
    assert item.published_at == datetime(2021, 7, 1, tzinfo=UTC)
    text = item.article()
    assert isinstance(text, ArticleText)
    assert text.title == item.title and text.language == "ru"
    assert not text.text.startswith(item.title)  # the repeated headline is dropped
    assert text.text.startswith("В ходе перестрелки")
    assert text.published_at == item.published_at


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2022-09-16", (datetime(2022, 9, 16, tzinfo=UTC), "day"), id="day"),
        pytest.param("2022-09", (datetime(2022, 9, 1, tzinfo=UTC), "month"), id="month"),
        pytest.param("2016", (datetime(2016, 1, 1, tzinfo=UTC), "year"), id="year"),
        pytest.param(None, (None, "unknown"), id="unknown"),
    ],
)
def test_parse_corpus_date(value: str | None, expected: tuple[datetime | None, str]) -> None:
    parsed, precision = parse_corpus_date(value)
    assert (parsed, precision) == expected
    assert parsed is None or parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2022-13", id="month-13"),
        pytest.param("2022-02-30", id="no-such-day"),
        pytest.param("22-01-01", id="two-digit-year"),
        pytest.param("2022/01/01", id="slashes"),
        pytest.param("2022-1-5", id="unpadded"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_corpus_date_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_corpus_date(value)


def _record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "sample-1",
        "date": "2023-01-10",
        "source": "Wire",
        "url": "https://example.org/a",
        "lang": "en",
        "title": "Title",
        "text": "Title\n\nBody.",
        "labels": ["border_clash"],
        "theatre": "kg-tj",
        "notes": "",
        "provenance": {"date_precision": "as published"},
        "paraphrased": True,
    }
    record.update(changes)
    return record


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_blank_lines_and_a_byte_order_mark_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    good = json.dumps(_record())
    path.write_bytes(("\ufeff" + good + "\n\n   \n").encode("utf-8"))
    (item,) = load_corpus(path)
    assert isinstance(item, CorpusItem) and item.labels == ("border_clash",)
    assert item.body == "Body."


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(
            [json.dumps(_record()), "{not json"],
            ":2: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
            id="invalid-json",
        ),
        pytest.param(['["a list"]'], ":1: expected a JSON object, got list", id="not-an-object"),
        pytest.param(
            [json.dumps({k: v for k, v in _record().items() if k != "theatre"})],
            ":1: missing field 'theatre'",
            id="missing-field",
        ),
        pytest.param(
            [json.dumps(_record(labels="border_clash"))],
            ":1: field 'labels' must be a list",
            id="labels-not-a-list",
        ),
        pytest.param(
            [json.dumps(_record(date=20230110))],
            ":1: field 'date' must be a string or null",
            id="date-not-a-string",
        ),
        pytest.param(
            [json.dumps(_record(date="10.01.2023"))],
            ":1: field 'date': expected YYYY-MM-DD, YYYY-MM, YYYY or null, got '10.01.2023'",
            id="date-format",
        ),
        pytest.param(
            [json.dumps(_record(labels=["border_clash", "border_clash"]))],
            ":1: field 'labels' repeats a label",
            id="repeated-label",
        ),
        pytest.param(
            [json.dumps(_record(title="  "))],
            ":1: field 'title' must not be empty",
            id="empty-title",
        ),
        pytest.param(
            [json.dumps(_record()), json.dumps(_record())],
            ":2: id 'sample-1' already used on line 1",
            id="duplicate-id",
        ),
    ],
)
def test_a_bad_line_names_the_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = _write(tmp_path, *lines)
    with pytest.raises(CorpusError) as caught:
        load_corpus(path)
    assert str(caught.value) == f"{path}{message}"
    assert isinstance(caught.value, MonitorError)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(json.dumps(_record()).encode() + b"\n\xff\xfe\n")
    with pytest.raises(CorpusError, match=r":2: not valid UTF-8$"):
        load_corpus(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"nope\.jsonl: cannot read corpus: "):
        load_corpus(tmp_path / "nope.jsonl")


def test_an_empty_file_is_an_empty_corpus(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    assert load_corpus(path) == []


def test_source_feed_ids_are_stable_distinct_and_readable() -> None:
    from monitor.lab.corpus import source_feed_id

    names = ["Border Wire (demo)", "Border-Wire (demo)", "Новости Центральной Азии (демо)"]
    ids = [source_feed_id(name) for name in names]
    assert len(set(ids)) == 3
    assert ids[0].startswith("border-wire-demo-") and ids[2].startswith("feed-")
    assert ids == [source_feed_id(name) for name in names]
