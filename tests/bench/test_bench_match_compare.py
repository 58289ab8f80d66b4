"""bench/match_compare.py: it times this checkout against an exported git revision, each
in its own process with its own `monitor` and rules, on the same articles (no timings are
asserted here: speed is read from the bench's ratio, on a quiet machine)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "match_compare.py"


def _is_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "HEAD"], capture_output=True
    )
    return done.returncode == 0


pytestmark = pytest.mark.skipif(not _is_git_checkout(), reason="needs git and a git checkout")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_match_compare", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_match_compare"] = module
    spec.loader.exec_module(module)
    return module


def test_both_versions_run_on_the_same_articles_each_with_its_own_code(
    bench: ModuleType,
) -> None:
    figures = bench.compare("HEAD", rounds=2, passes=1, generated=6, long=2, limit=12)
    current, reference = figures["sides"]
    assert current == "this checkout" and reference.startswith("HEAD (")
    assert Path(figures["matchers"][current]).resolve().is_relative_to(REPO / "monitor")
    # the reference ran from the exported tree, not from this checkout
    assert not Path(figures["matchers"][reference]).resolve().is_relative_to(REPO)
    assert figures["counts"]["feed items"] == 12 and figures["counts"]["long articles"] == 2
    for side in (current, reference):
        # one pass per round, two rounds: each version timed twice on every mix, in pairs
        assert figures["passes"][side] == {name: 2 for name in figures["counts"]}
    assert all(len(pairs) == 2 for pairs in figures["pair_ratios"].values())
    for ratio in figures["ratios"].values():
        assert ratio > 0


def test_an_unknown_revision_is_one_line_and_exit_2(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["no-such-revision-xyz", "--rounds", "1", "--limit", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("match_compare: cannot export revision")
