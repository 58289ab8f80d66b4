"""Benchmark: this checkout's matcher against another git revision's, on the same
articles, in alternating processes: the ratio issue 12 asks for ("matching speed must not
fall by more than 10% against today's"), read in one run.

`bench/match.py` gives absolute rates and a ratio to a regular-expression baseline; both
swing with the shared host's load (±15% between runs) and the baseline grows with the
rules, so two runs of it, before and after a change, cannot show a 10% difference. Here
the two versions of the code match the same articles in the same minutes:

- REF's `monitor/` and `indicators.yaml` are exported with `git archive` into a
  temporary folder; this checkout is used as it is (uncommitted changes included);
- each version runs in its own process (`PYTHONPATH` set to its tree; the worker checks
  that `monitor` came from there), with its own rules: the speed of each product as
  shipped, on the articles of `bench/match.py` (the feed-item mix: every labelled set
  plus generated items; long articles; and the calm month of irrelevant news when the
  corpus has it), built once by this process and handed to both;
- the two workers run side by side and take turns, pass by pass: one pass over a mix in
  one version, then the same pass in the other (the first to go alternates), so both
  see the same load within a second or two. Each pass is timed in CPU time of its
  worker (one core). The ratio of a pair of neighbouring passes is REF's time over this
  checkout's (above 1: this checkout is faster); the figure is the median over all
  pairs, and each version's rate the median of its passes. `--rounds` pairs of workers
  are started, each pair with its own hash seed (the same for both versions: string
  hashing shifts a process's speed by a few per cent from seed to seed).

Exits 1 when the feed-item ratio is below 1 - `--tolerance` (default 0.10), 2 when REF
cannot be exported or a worker fails. No network; seeded.

Run: `.venv/bin/python bench/match_compare.py REF [--rounds R] [--passes P]`, e.g. `main`,
or the commit the work started from (a few minutes with the defaults).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEED_MIX = "feed items"


class CompareError(Exception):
    """REF cannot be exported, or a worker failed."""


# ---------------------------------------------------------------------------
# The worker: runs under the version being timed; imports nothing from bench/match.py


def serve(tree: Path, articles_path: Path) -> None:
    """Load the rules of `tree` and the articles, run a warm-up pass of every mix, say
    ready (the matcher's file, the detections per mix) as a JSON line, then answer each
    mix name read on stdin with one timed pass's CPU seconds."""
    import time

    import monitor
    from monitor.config import load_yaml
    from monitor.models import ArticleText

    try:
        from monitor.detect.matcher import match_article
        from monitor.detect.rules import compile_ruleset

        matcher_module = "monitor.detect.matcher"
    except ImportError:  # a revision from before the package layout (issue 16)
        from monitor.matcher import match_article  # type: ignore[no-redef]
        from monitor.rules import compile_ruleset  # type: ignore[no-redef]

        matcher_module = "monitor.matcher"

    package = Path(monitor.__file__).resolve().parent
    if not package.is_relative_to(tree.resolve()):
        raise CompareError(f"monitor was imported from {package}, not from {tree}")
    indicators = tree / "indicators.yaml"
    data = load_yaml(indicators.read_text(encoding="utf-8"))
    rules = compile_ruleset(data["theatres"], data["indicators"], source=str(indicators))
    mixes = {
        name: [
            ArticleText(
                title=a["title"],
                text=a["text"],
                language=a["language"],
                published_at=datetime.fromisoformat(a["published_at"])
                if a["published_at"]
                else None,
            )
            for a in raw
        ]
        for name, raw in json.loads(articles_path.read_text(encoding="utf-8")).items()
    }
    events = {
        name: sum(sum(1 for m in match_article(a, rules) if m.is_event) for a in articles)
        for name, articles in mixes.items()
    }
    matcher = sys.modules[matcher_module].__file__
    print(json.dumps({"matcher": matcher, "events": events}), flush=True)
    for line in sys.stdin:
        articles = mixes[line.strip()]
        began = time.process_time()
        for article in articles:
            match_article(article, rules)
        print(json.dumps({"seconds": time.process_time() - began}), flush=True)


# ---------------------------------------------------------------------------
# The driver


def export_revision(ref: str, into: Path) -> str:
    """`monitor/` and `indicators.yaml` of `ref` into `into`; returns the commit's short id."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{ref}^{{commit}}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        archive = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "archive",
                "--format=tar",
                commit,
                "monitor",
                "indicators.yaml",
            ],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
        raise CompareError(
            f"cannot export revision {ref!r}: {text.strip().splitlines()[-1] if text.strip() else exc}"
        ) from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def build_mixes(*, generated: int, long: int, limit: int | None, seed: int) -> dict[str, list]:
    """The articles of bench/match.py, as plain records both versions can read."""
    sys.path.insert(0, str(ROOT / "bench"))
    import match as bench_match

    now = datetime.now(UTC)
    items = bench_match.labelled_items()
    mixes = {
        FEED_MIX: [item.article() for item in items]
        + bench_match.generated_articles(
            items, generated, sizes=bench_match.FEED_ITEM_SIZES, now=now, seed=seed
        ),
        "long articles": bench_match.generated_articles(
            items, long, sizes=bench_match.LONG_ARTICLE_SIZES, now=now, seed=seed + 1
        ),
    }
    calm = bench_match.calm_articles()
    if calm:
        mixes["calm month"] = calm
    return {
        name: [
            {
                "title": a.title,
                "text": a.text,
                "language": a.language,
                "published_at": a.published_at.isoformat() if a.published_at else None,
            }
            for a in articles[:limit]
        ]
        for name, articles in mixes.items()
    }


class Worker:
    """One version's serving process."""

    def __init__(self, tree: Path, articles_path: Path, *, hash_seed: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": str(hash_seed)}
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(tree)]
        self.tree = tree
        self.process = subprocess.Popen(
            [*command, str(articles_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tree,
        )
        ready = self._read()
        self.matcher: str = ready["matcher"]
        self.events: dict[str, int] = ready["events"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            assert self.process.stderr is not None
            last = (self.process.stderr.read().strip().splitlines() or ["no output"])[-1]
            raise CompareError(
                f"the worker for {self.tree} failed (exit {self.process.returncode}): {last}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def time_pass(self, mix: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(mix + "\n")
        self.process.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()


def compare(
    ref: str,
    *,
    rounds: int,
    passes: int,
    generated: int,
    long: int,
    limit: int | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Time both versions; returns the figures `main` prints (and tests read)."""
    with tempfile.TemporaryDirectory(prefix="match-compare-") as folder:
        base = Path(folder)
        reference = base / "ref"
        reference.mkdir()
        commit = export_revision(ref, reference)
        mixes = build_mixes(generated=generated, long=long, limit=limit, seed=seed)
        articles_path = base / "articles.json"
        articles_path.write_text(json.dumps(mixes, ensure_ascii=False), encoding="utf-8")
        sides = {"this checkout": ROOT, f"{ref} ({commit})": reference}
        order = list(sides)
        seconds: dict[str, dict[str, list[float]]] = {
            side: {n: [] for n in mixes} for side in sides
        }
        pairs: dict[str, list[float]] = {name: [] for name in mixes}
        matchers: dict[str, str] = {}
        events: dict[str, dict[str, int]] = {}
        for round_number in range(rounds):
            workers: dict[str, Worker] = {}
            try:
                for side in order:
                    workers[side] = Worker(sides[side], articles_path, hash_seed=round_number)
                    matchers[side] = workers[side].matcher
                    events[side] = workers[side].events
                for number in range(passes):
                    for name in mixes:
                        first = (number + round_number) % 2
                        taken: dict[str, float] = {}
                        for side in (order[first], order[1 - first]):
                            taken[side] = workers[side].time_pass(name)
                            seconds[side][name].append(taken[side])
                        pairs[name].append(taken[order[1]] / taken[order[0]])
            finally:
                for running in workers.values():
                    running.close()
    counts = {name: len(articles) for name, articles in mixes.items()}
    rates = {
        side: {name: counts[name] / statistics.median(values) for name, values in mix.items()}
        for side, mix in seconds.items()
    }
    return {
        "sides": order,
        "commit": commit,
        "matchers": matchers,
        "counts": counts,
        "events": events,
        "rates": rates,
        "ratios": {name: statistics.median(values) for name, values in pairs.items()},
        "pair_ratios": pairs,
        "passes": {
            side: {name: len(v) for name, v in mix.items()} for side, mix in seconds.items()
        },
    }


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("ref", help="the git revision to compare with (e.g. main, HEAD~3)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="pairs of workers, one hash seed each"
    )
    parser.add_argument("--passes", type=int, default=9, help="timed passes per mix and round")
    parser.add_argument("--generated", type=int, default=1500, help="generated feed items")
    parser.add_argument("--long", type=int, default=500, help="generated long articles")
    parser.add_argument("--limit", type=int, default=None, help="at most N articles per mix")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed slowdown")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"load average at start: {load()}")
    try:
        figures = compare(
            args.ref,
            rounds=args.rounds,
            passes=args.passes,
            generated=args.generated,
            long=args.long,
            limit=args.limit,
            seed=args.seed,
        )
    except CompareError as exc:
        print(f"match_compare: {exc}", file=sys.stderr)
        return 2
    current, previous = figures["sides"]
    for side in (current, previous):
        print(f"{side}: matcher {figures['matchers'][side]}")
    print()
    for name, count in figures["counts"].items():
        events = ", ".join(str(figures["events"][side][name]) for side in (current, previous))
        print(f"{name}: {count} articles; detections (events) {events}")
        for side in (current, previous):
            passes = figures["passes"][side][name]
            print(f"  {side:30} {figures['rates'][side][name]:7.0f}/s (median of {passes} passes)")
        spread = sorted(figures["pair_ratios"][name])
        low, high = spread[len(spread) // 10], spread[-1 - len(spread) // 10]
        print(
            f"  ratio this checkout / {previous}: {figures['ratios'][name]:.2f}"
            f" (median of {len(spread)} neighbouring pairs; middle 80% {low:.2f}-{high:.2f})"
        )
    print(f"load average at end: {load()}")
    ratio = figures["ratios"][FEED_MIX]
    floor = 1 - args.tolerance
    if ratio < floor:
        print(f"SLOWER: feed items at {ratio:.2f} of {previous}'s speed (< {floor:.2f})")
        return 1
    print(f"within {args.tolerance:.0%}: feed items at {ratio:.2f} of {previous}'s speed")
    return 0


def serve_main(argv: list[str]) -> int:
    """`--serve TREE ARTICLES`: time one version's passes as asked on stdin."""
    parser = argparse.ArgumentParser(prog="match_compare.py --serve")
    parser.add_argument("tree")
    parser.add_argument("articles")
    args = parser.parse_args(argv)
    serve(Path(args.tree), Path(args.articles))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(main())
