"""Benchmark: matching throughput of the shipped indicator set, per core.

Builds a mix of English and Russian articles of realistic length (a corpus item's
headline and text, padded with synthetic filler sentences drawn from the corpus
vocabulary to 1.5-4 KB), then times on one core:

- `match_article` with every indicator, theatre and non-event check of
  `indicators.yaml`, lexicon cache warm (the steady state of a running daemon) and
  cold (a fresh rule set: every distinct word analysed once);
- the baseline, measured in the same run: one compiled regular expression
  alternating every term of the rules (stems, prefixes, exact forms), `findall`
  over the same texts. It only finds words; it knows no sentences, negation or
  theatres, so it is a floor for "scanning the text once".

Prints articles/s, MB/s and the ratio to the baseline. No network; deterministic
(seeded). Run: `.venv/bin/python bench/match.py [--articles N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import yaml

from monitor.corpus import load_corpus
from monitor.matcher import match_article
from monitor.models import ArticleText
from monitor.rules import RuleSet, compile_ruleset

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "dev.jsonl"
CONFIG = ROOT / "indicators.yaml"


def load_rules() -> RuleSet:
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return compile_ruleset(data["theatres"], data["indicators"], source=str(CONFIG))


def build_articles(count: int, seed: int = 7) -> list[ArticleText]:
    """`count` articles, alternating EN and RU, each 1.5-4 KB of text."""
    rng = random.Random(seed)
    items = load_corpus(CORPUS)
    by_lang = {lang: [item for item in items if item.lang == lang] for lang in ("en", "ru")}
    vocabulary = {
        lang: [word for item in group for word in re.findall(r"\w+", item.body)]
        for lang, group in by_lang.items()
    }
    articles = []
    for index in range(count):
        lang = "ru" if index % 3 == 2 else "en"  # about a third Russian, like the feeds
        item = rng.choice(by_lang[lang])
        target = rng.randint(1500, 4000)
        paragraphs = [item.body]
        size = len(item.title) + len(item.body)
        words = vocabulary[lang]
        while size < target:
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(10, 26)))
            sentence = sentence[:1].upper() + sentence[1:] + "."
            if rng.random() < 0.3:
                paragraphs.append(sentence)
            else:
                paragraphs[-1] += " " + sentence
            size += len(sentence) + 1
        articles.append(
            ArticleText(
                title=item.title,
                text="\n\n".join(paragraphs),
                language=lang,
                published_at=item.published_at,
            )
        )
    return articles


def baseline_regex(rules: RuleSet) -> re.Pattern[str]:
    """One regular expression alternating every term the rules use."""
    alternatives = set()
    for kind, label in rules.lexicon.terms():
        if kind == "prefix":
            alternatives.add(re.escape(label[:-1]) + r"\w*")
        elif kind == "exact":
            alternatives.add(re.escape(label[1:]))
        else:
            alternatives.add(re.escape(label) + r"\w*")
    ordered = sorted(alternatives, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(ordered) + r")\b", re.IGNORECASE)


def time_it(run, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    articles = build_articles(args.articles)
    texts = [f"{a.title}\n{a.text}" for a in articles]
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    languages = {lang: sum(1 for a in articles if a.language == lang) for lang in ("en", "ru")}

    started = time.perf_counter()
    rules = load_rules()
    compile_seconds = time.perf_counter() - started

    cold_started = time.perf_counter()
    detections = sum(
        sum(1 for m in match_article(article, rules) if m.is_event) for article in articles
    )
    cold = time.perf_counter() - cold_started

    def ours() -> None:
        for article in articles:
            match_article(article, rules)

    warm = time_it(ours, args.repeat)

    pattern = baseline_regex(rules)

    def baseline() -> None:
        for text in texts:
            pattern.findall(text)

    base = time_it(baseline, args.repeat)

    count = len(articles)
    print(f"articles: {count} ({languages['en']} en, {languages['ru']} ru),")
    print(f"  {megabytes:.2f} MB, mean {megabytes * 1e6 / count:.0f} bytes each")
    print(
        f"rules: {len(rules.indicators)} indicators, {rules.pattern_count()} patterns,"
        f" {len(rules.lexicon)} terms; compiled in {compile_seconds * 1000:.0f} ms"
    )
    print(f"detections (events) in the mix: {detections}")
    print()
    rows = [
        ("match_article, warm cache", warm),
        ("match_article, cold cache", cold),
        ("baseline: one regex of all terms", base),
    ]
    for name, seconds in rows:
        print(
            f"{name:34} {count / seconds:9.0f} articles/s  {megabytes / seconds:6.2f} MB/s"
            f"  {seconds / count * 1e6:7.1f} µs/article"
        )
    print()
    print(f"ratio matcher (warm) / baseline throughput: {base / warm:.2f}")
    print(f"target >= 2000 articles/s per core: {'met' if count / warm >= 2000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
