"""The optional compiled matcher finds exactly what the Python source finds.

`HATCH_BUILD_HOOK_ENABLE_MYPYC=1 pip install .` compiles the modules that the
pyproject's mypyc hook lists (about 1.5x faster matching; see bench/README.md). This
test builds that wheel from a copy of the project (offline: hatchling, hatch-mypyc and
mypy come with the test extra), runs its compiled matcher in a child process over
every labelled corpus, benchmark articles and some hostile texts, and compares each
match with the source's. It is skipped only where no C compiler or Python headers
exist.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from monitor.detect.matcher import MAX_ARTICLE_CHARS, match_article
from monitor.lab.corpus import load_corpus
from monitor.models import ArticleText
from tests.support.detection import CORPUS_FIXTURES, DEMO_CORPUS, REPO, shipped_rules

sys.path.insert(0, str(REPO / "bench"))
import match as bench_match  # bench/match.py builds the benchmark mixes

HOOK = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"][
    "build"
]["targets"]["wheel"]["hooks"]["mypyc"]

# The child: import the compiled package, check it is compiled, match every article.
CHILD = r"""
import dataclasses, json, sys
from datetime import datetime
import yaml
import monitor.detect.matcher, monitor.detect.rules, monitor.detect.text
from monitor.detect.matcher import match_article
from monitor.models import ArticleText
from monitor.detect.rules import compile_ruleset

articles_path, indicators_path, out_path = sys.argv[1:4]
compiled = {m.__name__: m.__file__.endswith(".so")
            for m in (monitor.detect.matcher, monitor.detect.rules, monitor.detect.text)}
document = yaml.safe_load(open(indicators_path, encoding="utf-8"))
rules = compile_ruleset(document["theatres"], document["indicators"])
results = []
for raw in json.load(open(articles_path, encoding="utf-8")):
    published = datetime.fromisoformat(raw["published_at"]) if raw["published_at"] else None
    article = ArticleText(raw["title"], raw["text"], raw["language"], published)
    results.append([dataclasses.asdict(m) for m in match_article(article, rules)])
json.dump({"compiled": compiled, "results": results}, open(out_path, "w", encoding="utf-8"))
"""


def _has_compiler() -> bool:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return compiler is not None and headers.exists()


def _articles() -> list[ArticleText]:
    articles = []
    for path in [*sorted(CORPUS_FIXTURES.glob("*.jsonl")), DEMO_CORPUS]:
        for item in load_corpus(path):
            articles.append(ArticleText(item.title, item.body, item.lang, item.published_at))
    articles += bench_match.build_articles(120, sizes=bench_match.FEED_ITEM_SIZES)
    articles += bench_match.build_articles(60, sizes=bench_match.LONG_ARTICLE_SIZES, seed=3)
    articles += bench_match.build_articles(30, dense=True, seed=5)
    hostile = [
        "",
        "\n\n\n",
        "Kyrgyz Tajik clash " * (MAX_ARTICLE_CHARS // 10),  # beyond the reading limit
        "Таджикские\u00ad войска́ обстреляли кыргызский пост.\u200b\x00",
        "U.S. Gen. Smith. 2021. 1990s. 30 September. «Ворух» — 1924–1927 гг.",
        "?!… ... ,,, ;;; (((",
    ]
    articles += [ArticleText("Kyrgyz-Tajik border", text, "en", None) for text in hostile]
    return articles


@pytest.mark.timeout(900)
@pytest.mark.skipif(not _has_compiler(), reason="no C compiler or Python headers here")
def test_the_compiled_matcher_finds_exactly_what_the_source_finds(tmp_path: Path) -> None:
    # Build the wheel as a user would, from a copy of the project (a build leaves
    # compiled modules beside the sources while it runs; never in this checkout).
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "indicators.yaml", "monitor.example.toml"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(
        REPO / "monitor", project / "monitor", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    build = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "-q", "-w", str(tmp_path / "dist"), str(project)),
        ],
        env={
            **os.environ,
            "HATCH_BUILD_HOOK_ENABLE_MYPYC": "1",
            "HATCH_BUILD_CLEAN_HOOKS_AFTER": "1",
            "MYPYC_OPT_LEVEL": "0",  # the same semantics, built sooner
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("monitor-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        compiled = {n for n in archive.namelist() if n.endswith(".so")}
        # the files `monitor init` writes travel as package data
        assert {"monitor/indicators.yaml", "monitor/monitor.example.toml"} <= set(
            archive.namelist()
        )
    assert {"matcher", "rules", "text"} <= {
        Path(name).name.split(".")[0] for name in compiled if name.startswith("monitor/")
    }
    assert not list((project / "monitor").glob("*.so")), "the build left compiled files behind"

    articles = _articles()
    (tmp_path / "articles.json").write_text(
        json.dumps(
            [
                {
                    "title": a.title,
                    "text": a.text,
                    "language": a.language,
                    "published_at": a.published_at.isoformat() if a.published_at else None,
                }
                for a in articles
            ]
        ),
        encoding="utf-8",
    )
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path / "articles.json"),
            str(REPO / "indicators.yaml"),
            str(tmp_path / "out.json"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    output = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert output["compiled"] == {
        "monitor.detect.matcher": True,
        "monitor.detect.rules": True,
        "monitor.detect.text": True,
    }

    import monitor.detect.matcher as source_matcher

    assert source_matcher.__file__.endswith(".py"), "the reference must be the source"
    rules = shipped_rules()
    expected = [
        [json.loads(json.dumps(dataclasses.asdict(m))) for m in match_article(a, rules)]
        for a in articles
    ]
    assert len(output["results"]) == len(expected) > 500
    assert sum(map(len, expected)) > 300  # the articles do hold detections
    for article, got, want in zip(articles, output["results"], expected, strict=True):
        assert got == want, (article.title, article.text[:200])


def test_the_hook_compiles_the_hot_modules_and_is_off_by_default() -> None:
    assert HOOK["enable-by-default"] is False
    assert set(HOOK["include"]) == {
        "monitor/detect/matcher.py",
        "monitor/detect/rules.py",
        "monitor/detect/text.py",
    }
