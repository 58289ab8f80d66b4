"""bench/query.py still runs (a small build; slow: run with `pytest -m slow`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "query.py"


@pytest.mark.slow
def test_query_bench_runs_on_a_small_build(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_query", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--articles", "3000", "--alerts", "40", "--contribution-days", "0.2"]) == 0
    out = capsys.readouterr().out
    for name in ("history, 1 year daily", "articles: ru prefix", "status", "bytes per article"):
        assert name in out
    assert "nan" not in out.lower()
