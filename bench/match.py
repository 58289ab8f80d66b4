"""Benchmark: matching throughput of the shipped indicator set, per core.

Builds mixes of English and Russian articles (about a third Russian): a corpus item's
headline and text, padded with synthetic filler (templated neutral news sentences
naming the region's states and cities) to the length of a feed item (400-1,500
characters) or of a long article (800-3,000); plus a dense worst case padded with
random words of the corpus itself. Then times on one core:

- `match_article` with every indicator, theatre and non-event check of
  `indicators.yaml`, lexicon cache warm (the steady state of a running daemon) and
  cold (a fresh rule set: every distinct word analysed once);
- the baseline, measured in the same run: one compiled regular expression
  alternating every term of the rules (stems, prefixes, exact forms), `findall`
  over the same texts. It only finds the words (no sentences, negation or theatres),
  yet Python's `re` tries the ~2,000 alternatives one by one at every position of
  the text: the work the matcher's word-by-word lexicon lookup and its index of
  patterns by anchor word avoid.

Prints articles/s, MB/s and the ratio to the baseline, and which matcher ran: the
Python source or the optional compiled build (`HATCH_BUILD_HOOK_ENABLE_MYPYC=1 pip
install .`; run this script with that environment's python). No network;
deterministic (seeded). Run: `.venv/bin/python bench/match.py [--articles N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import yaml

import monitor.matcher as matcher_module
from monitor.corpus import load_corpus
from monitor.matcher import match_article
from monitor.models import ArticleText
from monitor.rules import RuleSet, compile_ruleset
from monitor.text import clear_stem_cache

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "corpus" / "dev.jsonl"
# Text lengths in characters (title excluded). Feed items: what a feed entry's summary
# holds, like the corpus items themselves (paraphrased leads of 260-1,260 characters).
# Long articles: full-text feeds.
FEED_ITEM_SIZES = (400, 1500)
LONG_ARTICLE_SIZES = (800, 3000)
CONFIG = ROOT / "indicators.yaml"


def load_rules() -> RuleSet:
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return compile_ruleset(data["theatres"], data["indicators"], source=str(CONFIG))


# Synthetic filler: the ordinary sentences around a story in a regional feed (economy,
# weather, transport, culture, diplomacy), naming the region's states and cities.
_SLOTS = {
    "country": [
        "Kyrgyzstan",
        "Tajikistan",
        "Armenia",
        "Azerbaijan",
        "Kazakhstan",
        "Uzbekistan",
        "Russia",
        "China",
        "Turkey",
        "Georgia",
    ],
    "city": [
        "Bishkek",
        "Dushanbe",
        "Yerevan",
        "Baku",
        "Osh",
        "Khujand",
        "Gyumri",
        "Ganja",
        "Almaty",
        "Tashkent",
    ],
    "sector": [
        "energy",
        "agriculture",
        "tourism",
        "mining",
        "banking",
        "transport",
        "textiles",
        "education",
        "health care",
        "construction",
    ],
    "month": ["January", "March", "May", "July", "September", "November"],
    "number": ["3", "12", "45", "120", "2,500", "7.5", "18", "300"],
}
_SLOTS_RU = {
    "country": [
        "Киргизия",
        "Таджикистан",
        "Армения",
        "Азербайджан",
        "Казахстан",
        "Узбекистан",
        "Россия",
        "Китай",
        "Турция",
        "Грузия",
    ],
    "city": [
        "Бишкеке",
        "Душанбе",
        "Ереване",
        "Баку",
        "Оше",
        "Худжанде",
        "Гюмри",
        "Алматы",
        "Ташкенте",
        "Москве",
    ],
    "sector": [
        "энергетики",
        "сельского хозяйства",
        "туризма",
        "горнодобывающей отрасли",
        "банковского сектора",
        "транспорта",
        "образования",
        "здравоохранения",
    ],
    "month": ["январе", "марте", "мае", "июле", "сентябре", "ноябре"],
    "number": ["3", "12", "45", "120", "2500", "7,5", "18", "300"],
}
_TEMPLATES_EN = [
    "The government of {country} approved a new budget for {sector} worth {number} million dollars.",
    "Officials in {city} said the new road to the airport would open in {month}.",
    "Inflation in {country} slowed to {number} percent, the central bank said on Tuesday.",
    "Heavy snow closed mountain passes near {city} and cut power to {number} villages.",
    "A delegation from {country} visited {city} to discuss investment in {sector}.",
    "Exports of cotton and fruit grew by {number} percent in the first half of the year.",
    "The ministry of {sector} announced a tender for {number} new schools and clinics.",
    "Residents of {city} complained about rising prices for bread, fuel and rent.",
    "The national airline of {country} will launch direct flights to {city} in {month}.",
    "A music festival in {city} drew {number} thousand visitors over the weekend.",
    "Parliament in {country} passed a law on digital signatures and online services.",
    "The World Bank said growth in {country} would reach {number} percent next year.",
    "Engineers finished repairs on the hydropower station upstream of {city}.",
    "The mayor of {city} opened a new park and promised more bus routes.",
    "Migrant workers from {country} sent home {number} million dollars in {month}.",
    "Doctors in {city} reported a rise in seasonal flu among children.",
    "The foreign ministers of {country} and {country} discussed trade and transit.",
    "Students from {country} won medals at an international science olympiad.",
    "A new railway line will link {city} with the ports on the Caspian Sea.",
    "Prices for natural gas will rise by {number} percent from {month}, the regulator said.",
]
_TEMPLATES_RU = [
    "Правительство страны {country} одобрило бюджет {sector} на {number} млн долларов.",
    "В {city} заявили, что новая дорога к аэропорту откроется в {month}.",
    "Инфляция замедлилась до {number} процента, сообщил центральный банк.",
    "Сильный снегопад закрыл перевалы, без света остались {number} сел.",
    "Делегация из страны {country} обсудила в {city} инвестиции в развитие {sector}.",
    "Экспорт хлопка и фруктов вырос на {number} процента за первое полугодие.",
    "Министерство объявило тендер на строительство {number} школ и поликлиник.",
    "Жители в {city} жалуются на рост цен на хлеб, топливо и аренду жилья.",
    "Национальная авиакомпания запустит прямые рейсы в {month}.",
    "Музыкальный фестиваль в {city} посетили {number} тысяч человек.",
    "Парламент принял закон об электронной подписи и онлайн-услугах.",
    "Всемирный банк ожидает роста экономики на {number} процента в следующем году.",
    "Инженеры завершили ремонт гидроэлектростанции выше по течению реки.",
    "Мэр открыл в {city} новый парк и пообещал новые автобусные маршруты.",
    "Трудовые мигранты перевели на родину {number} млн долларов в {month}.",
    "Врачи в {city} сообщили о росте заболеваемости гриппом среди детей.",
    "Министры иностранных дел обсудили торговлю и транзит грузов.",
    "Школьники завоевали медали на международной олимпиаде по физике.",
    "Новая железная дорога свяжет {city} с портами на Каспийском море.",
    "Цены на газ вырастут на {number} процента с {month}, сообщил регулятор.",
]


def _filler_sentence(rng: random.Random, lang: str) -> str:
    template = rng.choice(_TEMPLATES_RU if lang == "ru" else _TEMPLATES_EN)
    slots = _SLOTS_RU if lang == "ru" else _SLOTS
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(slots[m.group(1)]), template)


def _vocabulary_sentence(rng: random.Random, words: list[str]) -> str:
    sentence = " ".join(rng.choice(words) for _ in range(rng.randint(10, 26)))
    return sentence[:1].upper() + sentence[1:] + "."


def build_articles(
    count: int, *, seed: int = 7, dense: bool = False, sizes: tuple[int, int] = (800, 3000)
) -> list[ArticleText]:
    """`count` articles, about a third Russian: a corpus item padded with filler.

    The realistic mix pads with templated neutral news sentences to a text length
    drawn from `sizes` (characters). `dense=True` pads instead with random words of the
    corpus itself, so nearly every sentence holds trigger words: a worst case.
    """
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
        target = rng.randint(*sizes)
        paragraphs = [item.body]
        size = len(item.title) + len(item.body)
        while size < target:
            if dense:
                sentence = _vocabulary_sentence(rng, vocabulary[lang])
            else:
                sentence = _filler_sentence(rng, lang)
            if rng.random() < 0.3:
                paragraphs.append(sentence)
            else:
                paragraphs[-1] += " " + sentence
            size += len(sentence) + 1
        if rng.random() < 0.5:  # the story's own paragraphs are not always first
            rng.shuffle(paragraphs)
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
    """One regular expression alternating every term the rules test (a stem matches any
    ending, a prefix any continuation, an exact form only itself), case-insensitive."""
    alternatives = set()
    for kind, key, _label in rules.lexicon.terms():
        if kind == "exact":
            alternatives.add(re.escape(key))
        else:
            alternatives.add(re.escape(key) + r"\w*")
    ordered = sorted(alternatives, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(ordered) + r")\b", re.IGNORECASE)


def cpu_seconds(
    items: Sequence[T], work: Callable[[T], object], *, batch: int, repeat: int
) -> float:
    """CPU seconds (this process, i.e. one core) to run `work` over `items`.

    The items are timed in small batches, each `repeat` times, and the best time of
    each batch is summed: other jobs on a shared machine then inflate the figure as
    little as possible (the same reasoning as `timeit`'s best of several runs).
    """
    total = 0.0
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        best = float("inf")
        for _ in range(repeat):
            began = time.process_time()
            for item in chunk:
                work(item)
            best = min(best, time.process_time() - began)
        total += best
    return total


def _row(name: str, count: int, megabytes: float, seconds: float) -> str:
    return (
        f"{name:38} {count / seconds:8.0f} articles/s {megabytes / seconds:6.2f} MB/s"
        f" {seconds / count * 1e6:8.1f} µs/article"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7, help="runs per batch; best counts")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--baseline-articles", type=int, default=100)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    rules = load_rules()
    compile_ms = (time.perf_counter() - began) * 1000
    print(
        f"rules: {len(rules.indicators)} indicators, {rules.pattern_count()} patterns,"
        f" {len(rules.lexicon)} terms; compiled in {compile_ms:.0f} ms"
    )
    build = "compiled (mypyc)" if matcher_module.__file__.endswith(".so") else "Python source"
    print(f"matcher: {build}, {matcher_module.__file__}")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()

    feed_items = build_articles(args.articles, sizes=FEED_ITEM_SIZES)
    long_articles = build_articles(args.articles, sizes=LONG_ARTICLE_SIZES)
    dense = build_articles(args.articles, dense=True, sizes=LONG_ARTICLE_SIZES)

    # Cold: a fresh rule set and empty stem cache, every distinct word analysed once.
    cold_rules = load_rules()
    clear_stem_cache()
    began = time.process_time()
    detections = sum(
        sum(1 for m in match_article(article, cold_rules) if m.is_event) for article in feed_items
    )
    cold = time.process_time() - began

    rows = []
    ratios: list[tuple[str, float]] = []
    rates: list[tuple[str, float]] = []
    mixes = (("feed items", feed_items), ("long articles", long_articles), ("dense", dense))
    for name, articles in mixes:
        texts = [f"{a.title}\n{a.text}" for a in articles]
        megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
        languages = {lang: sum(1 for a in articles if a.language == lang) for lang in ("en", "ru")}
        print(
            f"{name} mix: {len(articles)} articles ({languages['en']} en, {languages['ru']} ru),"
            f" {megabytes:.2f} MB, mean {megabytes * 1e6 / len(articles):.0f} bytes"
        )
        for article in articles:  # warm the lexicon cache: the steady state of the daemon
            match_article(article, rules)
        warm = cpu_seconds(
            articles, lambda a: match_article(a, rules), batch=args.batch, repeat=args.repeat
        )
        rows.append((f"match_article, {name}, warm", len(articles), megabytes, warm))
        if name == "feed items":
            rows.append((f"match_article, {name}, cold", len(articles), megabytes, cold))
        if name != "dense":
            pattern = baseline_regex(rules)
            sample = texts[: args.baseline_articles]
            sample_mb = sum(len(text.encode("utf-8")) for text in sample) / 1e6
            base = cpu_seconds(sample, pattern.findall, batch=args.batch, repeat=3)
            rows.append((f"baseline regex, {name}", len(sample), sample_mb, base))
            ratios.append((name, (len(articles) / warm) / (len(sample) / base)))
            rates.append((name, len(articles) / warm))
    print(f"detections (events) in the feed-item mix: {detections}")
    print()
    for row in rows:
        print(_row(*row))
    print()
    for name, ratio in ratios:
        print(f"ratio matcher (warm) / baseline regex, {name}: {ratio:.1f}x")
    for name, rate in rates:
        verdict = "met" if rate >= 2000 else "NOT met"
        print(f"target >= 2000 articles/s per core, {name}: {verdict} ({rate:.0f}/s)")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
