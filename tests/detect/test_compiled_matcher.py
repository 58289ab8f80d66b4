"""The wheel compiles the matcher where it can, and finds exactly what the source finds.

`pip install .` (and `pip wheel .`) compiles the modules that pyproject's custom build
hook lists with mypyc (about 1.5x faster matching; see bench/README.md), through
`hatch_build.py`; where it cannot, the wheel is the plain Python one and the build says
why; `MONITOR_PURE_PYTHON=1` asks for the plain one. These tests build real wheels from a
copy of the project (offline: hatchling, hatch-mypyc and mypy come with the test extra):

- the default build, once per session: its compiled matcher runs in a child process over
  every labelled corpus, benchmark articles and some hostile texts, and each match is
  compared with the source's (skipped only where no C compiler or Python headers exist);
- builds that cannot compile (no compiler; a compiler that fails) and the opt-out: a
  working pure wheel, and the line saying so, in the build's output and in
  `monitor --version`;
- the build requirements hatchling reports: mypy only for a wheel that will compile,
  nothing extra for an editable install.
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
from dataclasses import dataclass
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
]["targets"]["wheel"]["hooks"]["custom"]
HOT_MODULES = {"matcher", "rules", "text"}
PROJECT_FILES = (
    "pyproject.toml",
    "hatch_build.py",
    "README.md",
    "indicators.yaml",
    "monitor.example.toml",
)

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


@dataclass(frozen=True)
class Built:
    """A wheel built from a copy of the project, unpacked into `site`."""

    project: Path
    wheel: Path
    site: Path
    output: str  # what the build printed (pip -v shows the backend's lines)

    @property
    def compiled(self) -> set[str]:
        """The names of the compiled monitor modules in the wheel."""
        with zipfile.ZipFile(self.wheel) as archive:
            return {
                Path(n).name.split(".")[0]
                for n in archive.namelist()
                if n.startswith("monitor/") and n.endswith(".so")
            }

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """`python ARGS` with the unpacked wheel first on the path."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(self.site)},
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )


def _copy_project(where: Path) -> Path:
    # a build leaves compiled modules beside the sources while it runs: never in this
    # checkout
    project = where / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        shutil.copy(REPO / name, project / name)
    shutil.copytree(
        REPO / "monitor", project / "monitor", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    return project


def build_wheel(where: Path, **env: str) -> Built:
    """`pip wheel` the project as a user would (offline, this environment's hatchling)."""
    project = _copy_project(where)
    build = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "-v", "-w", str(where / "dist"), str(project)),
        ],
        env={**os.environ, "MYPYC_OPT_LEVEL": "0", **env},  # -O0: the same semantics, sooner
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (where / "dist").glob("monitor-*.whl")
    site = where / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        # the files `monitor init` writes travel as package data
        assert {"monitor/indicators.yaml", "monitor/monitor.example.toml"} <= set(
            archive.namelist()
        )
    assert not list(project.rglob("*.so")), "the build left compiled files behind"
    return Built(project, wheel, site, build.stdout + build.stderr)


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


@pytest.fixture(scope="module")
def articles_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ArticleText], Path]:
    articles = _articles()
    path = tmp_path_factory.mktemp("articles") / "articles.json"
    path.write_text(
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
    return articles, path


def _matches_in_child(
    built: Built, articles_path: Path, where: Path
) -> tuple[dict[str, bool], list[list[dict[str, object]]]]:
    """The wheel's matcher run over the articles: which modules were compiled, and the
    matches, as JSON."""
    out = where / "out.json"
    child = built.run(
        "-c", CHILD, str(articles_path), str(REPO / "indicators.yaml"), str(out), cwd=where
    )
    assert child.returncode == 0, child.stderr[-3000:]
    output = json.loads(out.read_text(encoding="utf-8"))
    return output["compiled"], output["results"]


def _expected(articles: list[ArticleText]) -> list[list[dict[str, object]]]:
    import monitor.detect.matcher as source_matcher

    assert source_matcher.__file__.endswith(".py"), "the reference must be the source"
    rules = shipped_rules()
    return [
        [json.loads(json.dumps(dataclasses.asdict(m))) for m in match_article(a, rules)]
        for a in articles
    ]


def _version_lines(built: Built, where: Path) -> list[str]:
    done = built.run("-m", "monitor", "--version", cwd=where)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def default_wheel(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The default build (no variables set), once per session: about a minute."""
    if not _has_compiler():
        pytest.skip("no C compiler or Python headers here")
    return build_wheel(tmp_path_factory.mktemp("default"))


@pytest.mark.timeout(900)
def test_the_default_wheel_compiles_the_matcher_and_finds_exactly_what_the_source_finds(
    default_wheel: Built, articles_file: tuple[list[ArticleText], Path], tmp_path: Path
) -> None:
    assert default_wheel.compiled >= HOT_MODULES
    assert "-cp3" in default_wheel.wheel.name  # a platform wheel, not py3-none-any
    assert "monitor build: matcher: compiled (mypyc)" in default_wheel.output
    assert _version_lines(default_wheel, tmp_path)[1] == "matcher: compiled (mypyc)"

    articles, path = articles_file
    compiled, results = _matches_in_child(default_wheel, path, tmp_path)
    assert compiled == {
        "monitor.detect.matcher": True,
        "monitor.detect.rules": True,
        "monitor.detect.text": True,
    }
    expected = _expected(articles)
    assert len(results) == len(expected) > 500
    assert sum(map(len, expected)) > 300  # the articles do hold detections
    for article, got, want in zip(articles, results, expected, strict=True):
        assert got == want, (article.title, article.text[:200])


WORKER_CHILD = r"""
import asyncio, dataclasses, json, pickle, sys
from datetime import UTC, datetime
import yaml
from monitor.detect.matcher import match_article
from monitor.detect.rules import compile_ruleset
from monitor.fetch.parse_sandbox import ParserPool, article_text, pickle_rules

document = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
rules = compile_ruleset(document["theatres"], document["indicators"])
again = pickle.loads(pickle_rules(rules))  # what a parser worker receives
body = open(sys.argv[2], "rb").read()
now = datetime(2022, 9, 20, tzinfo=UTC)

async def parse():
    async with ParserPool(workers=1) as pool:
        return await pool.parse_and_match(body, rules=rules, feed_id="f", fetched_at=now)

parsed = asyncio.run(parse())
here = [[dataclasses.asdict(m) for m in match_article(article_text(e), rules)]
        for e in parsed.result.entries]
json.dump({
    "entries": len(parsed.result.entries),
    "same_rules": [len(again.compiled_indicators), len(again.compiled_theatres)]
                  == [len(rules.compiled_indicators), len(rules.compiled_theatres)],
    "worker_matched": parsed.matches is not None,
    "worker_grouped": parsed.facts is not None,
    "same_matches": parsed.matches is not None
                    and [[dataclasses.asdict(m) for m in ms] for ms in parsed.matches] == here,
    "detections": sum(map(len, here)),
}, sys.stdout)
"""

FEED = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
<item><title>Kyrgyz and Tajik border guards exchange fire near Batken</title>
<link>https://a.example/1</link><pubDate>Mon, 19 Sep 2022 08:00:00 GMT</pubDate>
<description>Kyrgyz and Tajik border guards exchanged fire near the village of Kok-Tash in
Batken region on Monday, officials in Bishkek said; two soldiers were wounded.</description></item>
<item><title>Столкновения на кыргызско-таджикской границе</title>
<link>https://b.example/2</link><pubDate>Mon, 19 Sep 2022 09:00:00 GMT</pubDate>
<description>Пограничники Кыргызстана и Таджикистана вступили в перестрелку у села Кок-Таш
Баткенской области, сообщили в Бишкеке.</description></item>
</channel></rss>"""


@pytest.mark.timeout(300)
def test_the_compiled_rules_reach_the_parser_workers_and_match_there(
    default_wheel: Built, tmp_path: Path
) -> None:
    """The daemon matches in its parser workers, which get the rules as a pickle: a
    compiled frozen record must survive it, or every entry is matched in the main
    process instead (seen: `FrozenInstanceError` in the worker, the poll 1.4 x slower)."""
    feed = tmp_path / "feed.xml"
    feed.write_text(FEED, encoding="utf-8")
    done = default_wheel.run(
        "-c", WORKER_CHILD, str(REPO / "indicators.yaml"), str(feed), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["entries"] == 2 and result["detections"] > 0, result
    assert result["same_rules"] and result["worker_matched"] and result["worker_grouped"], result
    assert result["same_matches"], result


PURE_BUILDS = {
    # no compiler at all: found before mypy runs
    "no compiler": (
        {"CC": "/nonexistent/cc"},
        "matcher: python source (not compiled: no C compiler (/nonexistent/cc not found))",
    ),
    # a compiler that fails: mypy runs, then the C build fails inside hatch-mypyc
    "compiler fails": (
        {"CC": "false"},
        "matcher: python source (not compiled: mypyc failed: error: command '",
    ),
    "opted out": (
        {"MONITOR_PURE_PYTHON": "1"},
        "matcher: python source (MONITOR_PURE_PYTHON=1)",
    ),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(PURE_BUILDS))
def test_a_build_that_does_not_compile_makes_a_working_pure_wheel_and_says_why(
    case: str, articles_file: tuple[list[ArticleText], Path], tmp_path: Path
) -> None:
    env, line = PURE_BUILDS[case]
    built = build_wheel(tmp_path, **env)
    assert built.compiled == set()
    assert built.wheel.name.endswith("-py3-none-any.whl")
    said = [x.strip() for x in built.output.splitlines() if "monitor build:" in x]
    assert len(said) == 1 and said[0].startswith(f"monitor build: {line}"), said
    version = _version_lines(built, tmp_path)
    assert version[1].startswith(line) and version[1] == said[0].removeprefix("monitor build: ")

    articles, path = articles_file
    articles = articles[:60]  # the source's own tests cover the rest
    (tmp_path / "few.json").write_text(
        json.dumps(json.loads(path.read_text(encoding="utf-8"))[:60]), encoding="utf-8"
    )
    compiled, results = _matches_in_child(built, tmp_path / "few.json", tmp_path)
    assert set(compiled.values()) == {False}
    assert results == _expected(articles)
    assert sum(map(len, results)) > 0


def _requirements(project: Path, **env: str) -> dict[str, list[str]]:
    """What hatchling asks the frontend to install for a wheel and for an editable wheel."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, hatchling.build as b; print(json.dumps("
            "{'wheel': b.get_requires_for_build_wheel(),"
            " 'editable': b.get_requires_for_build_editable()}))",
        ],
        cwd=project,
        env={**{k: v for k, v in os.environ.items() if k != "MONITOR_PURE_PYTHON"}, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _names(requirements: list[str]) -> set[str]:
    return {r.split("<")[0].split(">")[0].split("=")[0].split("~")[0] for r in requirements}


def test_only_a_wheel_that_may_compile_asks_for_mypy_and_an_editable_one_never(
    tmp_path: Path,
) -> None:
    project = _copy_project(tmp_path)
    default = _requirements(project)
    assert {"hatch-mypyc", "mypy"} <= _names(default["wheel"])
    assert "pyyaml" in _names(default["wheel"])  # mypy reads the dependencies' types
    assert _names(default["editable"]) == {"editables"}
    opted_out = _requirements(project, MONITOR_PURE_PYTHON="1")
    assert opted_out == {"wheel": [], "editable": ["editables~=0.3"]}


def test_an_editable_wheel_holds_no_compiled_module_and_no_build_note(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    done = subprocess.run(
        [
            *(sys.executable, "-c"),
            "import sys, hatchling.build as b; print(b.build_editable(sys.argv[1]))",
            str(tmp_path / "dist"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "dist" / done.stdout.strip()) as archive:
        names = archive.namelist()
    assert not [n for n in names if n.endswith(".so") or n.endswith("matcher-build.txt")]
    assert "monitor build:" not in done.stdout + done.stderr
    assert not list(project.rglob("*.so"))


def test_the_source_checkout_reports_the_python_matcher(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--version"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[1] == "matcher: python source"


def test_the_hook_compiles_the_hot_modules() -> None:
    assert HOOK["path"] == "hatch_build.py"
    assert set(HOOK["include"]) == {f"monitor/detect/{name}.py" for name in HOT_MODULES}
