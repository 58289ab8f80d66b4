"""Find indicators in one article, attribute them to theatres, and keep the evidence.

Owns `match_article`: a pure function of an `ArticleText` and a compiled `RuleSet`.

Reading. The title is sentence 0; the body (without a wire dateline or a repeated
headline) is tokenised in one pass, its sentence-end marks being tokens too. Each
distinct token is looked up once in the rules' lexicon (cached), which gives an
inverted index term → positions. Only patterns anchored on a term of the article are
tried, only when every required part has a word in it, and only in the sentences
where all of them occur.

Judging. Every hit is checked for non-events, which are kept with a reduced confidence
and a qualifier saying which and why:

- other sense: a word of the indicator's `exclude` list in the sentence, or three or
  more of them across the article (a football report stays a football report);
- the indicator's own `context` cues ("a protocol to END the fighting");
- negated: "not", "no", "не", "никакой" just before (same clause) the match or a word
  of a further clause ("the treaty will NOT be SIGNED"), or inside the match; a denial
  before it ("denied plans to cancel"), after it ("… were false", "не соответствует",
  "никто не планирует", "not on the agenda"), or a denial of reports anywhere before
  it in the sentence ("denied reports that its troops had shelled …"); not "ни"/"nor"
  continuing a negation of their clause ("не будет участвовать НИ в учениях"), nor a
  denial by a named side after the report ("…, Yerevan denies"), which contests it;
- hypothetical: a modal just before ("could", "may", "hope", "future", "может", "бы",
  "якобы"; not "considers IT …", a stated view), one just after ("… are not ruled
  out", "не исключены"), "would" outside reported speech, a conditional around it
  ("if", "unless", "если"), a question (not a "why …?", which takes the event as given);
- historical: a phrase like "last year", "years ago", "в прошлом году", "напомним",
  or a year before the publication year, that governs the match (same clause, within
  a few words, or opening the sentence: "In 2021, …"; a year that dates a paper, "maps
  of 1927", does not); without a year, a month two to six months before the
  publication month ("в конце апреля" in an October story), or the month before it
  named without a day in a story from after the first week;
- background: a recent event recalled as the setting of today's news: a past time
  frame near it ("last week's fighting", "Earlier this year, …", "ранее"), a relative
  past clause whose object it is ("comes six months AFTER deadly fighting", "residents
  WHO FLED the fighting", "через месяц ПОСЛЕ конфликта"), or a past adjective right
  before it ("since the clashes", "недавних боев"). A day of this week or a renewal in
  the match's own clause ("on Tuesday", "resumed", "again", "вновь") keeps it news.
  The past perfect of narration ("the leaders HAD MET …"), outside reported speech,
  is background too;
- reversed (opt-in, for agreements): a contrast or relative clause after the match
  saying it failed ("a truce, but it quickly broke down", "но оно было нарушено");
- weapon type (opt-in, for violence): the event word is the modifier of a weapon
  ("STRIKE drones", "УДАРНЫЕ беспилотники"), not its head ("drone STRIKE");
- deep mention (opt-in per indicator, `deep_mentions`): weak evidence after the first
  few sentences of the text is the story's context, not its news ("delegations meet
  regularly" in the fifth paragraph of an analysis).

Then, over the whole article (`_judge_news`, `_judge_settings`): a look back (an
anniversary, "two years on", an opinion, a question headline such as "Could …?")
makes the body's undated signs background; a sign the headline recalls as a setting is
background in the body too; and a sign named as the setting of another sign of its
sentence ("agreed a ceasefire AFTER this week's FIGHTING") is that sign's background.

A pattern's further clauses ("x & y") each need a word of their own: one word cannot
be both the event and its confirmation ("agreements" for "agreement & agre*").

Theatres. A hit counts for a theatre when the article names it: a pair by both sides
or a disputed place, an alliance by its own names (with one of its members, or its
names, near the hit). `one_side` indicators need only one side of a pair, named in the
hit's sentence or the title, and always need a side (arms "used in Karabakh" are not
arms for either side); even when the article names both sides, the pair must be named
in the hit's sentence, the one before it or the title (arms for Kuwait in a story that
recalls the Karabakh war are not Azerbaijan's). When several theatres qualify, those
named in the hit's own sentence win over those named only in the title, then the lede,
then elsewhere.
One Match per (indicator, theatre): the best hit, its confidence nudged up a little
when other sentences confirm it.

Must not: do I/O, read the clock, or compile patterns (that is `rules`).

Why one module of this size: it is one algorithm (sentences, spans, the non-event checks,
theatres, the article's judgement of what is news) whose steps share private structures
on the hot path, and mypyc compiles it as one unit (`pyproject.toml`); split, each step
would cost a cross-module call per sentence and the compiled build its inlining.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from itertools import chain, compress, count
from operator import itemgetter

from monitor.detect.rules import (
    LINE_BREAK_CHUNK,
    MARK_TERM,
    MONTH_TERM,
    PUNCT_TERM,
    YEAR_TERM,
    AltNode,
    ChainNode,
    CompiledIndicator,
    Lexicon,
    Node,
    Pattern,
    RuleSet,
    TermNode,
)
from monitor.detect.text import (
    ABBREVIATIONS,
    FINAL_ABBREVIATIONS,
    iter_mark_ends,
    month_number,
    strip_invisible,
)
from monitor.models import EVENT_CONFIDENCE, ArticleText, Match

__all__ = ["match_article"]

# Confidence multipliers of the engine's non-event checks.
NEGATED_FACTOR = 0.1
HYPOTHETICAL_FACTOR = 0.4
HISTORICAL_FACTOR = 0.2
BACKGROUND_FACTOR = 0.2
REVERSED_FACTOR = 0.2
WEAPON_TYPE_FACTOR = 0.0
OTHER_SENSE_FACTOR = 0.0
CORROBORATION_BONUS = 0.05  # per further sentence with event-grade evidence
MAX_ARTICLE_CHARS = 100_000  # text beyond this is not read (news bodies are far shorter)
ARTICLE_OTHER_SENSE = 3  # distinct `exclude` words across an article that make it another sense

# Windows, in words.
PARTICLE_WINDOW = 3
CORRELATIVE_WINDOW = 8  # "не будет участвовать ни в одном из учений": "ни" continues "не"
DENIAL_BEFORE_WINDOW = 10
DENIAL_AFTER_WINDOW = 10
CONDITIONAL_WINDOW = 25
CONDITIONAL_AFTER_WINDOW = 6  # "would leave the bloc IF it fails to act"
MODAL_WINDOW = 6
MODAL_AFTER_WINDOW = 6  # "clashes on the border are NOT RULED OUT"
YEAR_WINDOW = 6  # a year this close to a match dates it…
SENTENCE_OPENING = 3  # …and so does one opening the sentence ("In 2021, …")
YEAR_PAPER_BEFORE = 3  # a year this close after a paper ("maps from 1958") dates it…
YEAR_PAPER_AFTER = 2  # …and so does one just before it ("1920s documents")
ANNIVERSARY_WINDOW = 3  # "the anniversary of the CEASEFIRE": the match it names
BACKGROUND_WINDOW = 8  # "comes six months after deadly FIGHTING"
BACKGROUND_CLOSE_WINDOW = 2  # "since the CLASHES", "прошлых боев"
BACKGROUND_AFTER_WINDOW = 3
PLUPERFECT_WINDOW = 3  # "the leaders HAD (already) MET"  # "the CLASHES last week"
REVERSAL_WINDOW = 10  # "a TRUCE, but it quickly broke down"
MONTHS_BACK = (2, 6)  # a month this many months before publication is background
# (and the month just before, named without a day, after this day of the publication month)
LAST_MONTH_AFTER_DAY = 7


Span = tuple[int, int, tuple[int, ...]]  # first word, one past the last, matched words
_NO_SPANS: list[Span] = []  # shared: never mutated
_NO_TERMS: frozenset[int] = frozenset()

_YEAR_BEFORE = frozenset(
    [
        "in",
        "since",
        "of",
        "from",
        "by",
        "until",
        "till",
        "before",
        "after",
        "between",
        "during",
        "the",
        "early",
        "late",
        "mid",
        "summer",
        "autumn",
        "winter",
        "spring",
        "fall",
        "and",
        "to",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "в",
        "с",
        "до",
        "к",
        "от",
        "по",
        "и",
        "на",
        "за",
        "году",
        "года",
        "летом",
        "осенью",
        "весной",
        "зимой",
        "конце",
        "начале",
        "середине",
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ]
)
# Words opening a relative clause: the time of the clause before carries over to it.
_RELATIVE_WORDS = frozenset(
    ["when", "which", "where", "whereupon", "когда", "где", "который", "которая", "которое",
     "которые", "которых", "которым", "которой", "которого", "после", "after"]
)  # fmt: skip
_LINE_BREAK = f" {LINE_BREAK_CHUNK} "
_TOKENS = itemgetter(0)  # of a chunk's reading
_IDS = itemgetter(1)
_OPENER_TOKENS = frozenset(["(", "[", "—", "–", "-"])
_YEAR_AFTER = frozenset(["год", "года", "году", "годах", "годом", "годы", "г", "гг"])

# A wire dateline opening the lede: "BAKU, Azerbaijan, May 17 (Trend) – ", "MOSCOW (AP) – ".
# The place it names is where the story was filed, not an actor of the story.
_DATELINE_RE = re.compile(
    r"[A-ZА-ЯЁ][A-ZА-ЯЁ'.-]{2,}(?: [A-ZА-ЯЁ][A-ZА-ЯЁ'.-]+)*(?:,| \()[^\n–—]{0,70}? [–—-]{1,2} "
)


def _read(text: str, lexicon: Lexicon, words: list[str], found: list[tuple[int, ...]]) -> None:
    """Append the tokens of `text` and their term ids, read chunk by chunk.

    Equivalent to `TOKEN_RE.findall(f" {text} ")` (line breaks are mark tokens), but each
    distinct white-space delimited chunk is tokenised and looked up once per process.
    """
    chunks = text.replace("\n", _LINE_BREAK).split()
    readings = list(map(lexicon.chunks.get, chunks))
    if None in readings:  # new chunks (or a cache just cleared at its bound)
        for i, chunk in enumerate(chunks):
            if readings[i] is None:
                readings[i] = lexicon.read_chunk(chunk)
    words.extend(chain.from_iterable(map(_TOKENS, readings)))  # type: ignore[arg-type]
    found.extend(chain.from_iterable(map(_IDS, readings)))  # type: ignore[arg-type]


class _Doc:
    """An article read once: tokens, positions per term, sentences, punctuation, years.

    The title is sentence 0 (when there is one); the body is tokenised in one pass, its
    sentence-end marks being tokens too, and cut into sentences where
    `text.mark_decisions` says a mark ends one. Token positions count punctuation and
    marks, so a phrase never runs across a comma and a clause is the run of tokens
    between two clause marks.
    """

    __slots__ = (
        "_mark_iter",
        "_mark_offsets",
        "_title_case",
        "_years",
        "alternatives",
        "body",
        "bounds",
        "ending_marks",
        "has_title",
        "index",
        "lede",
        "mark_count",
        "possible",
        "present",
        "punct",
        "sent_of",
        "sentence_sets",
        "spans",
        "term_spans",
        "title",
        "words",
    )

    def __init__(self, article: ArticleText, rules: RuleSet) -> None:
        title = " ".join(strip_invisible(article.title).split())
        body = strip_invisible(article.text)
        cut = len(body) - len(body.lstrip())
        if title and body.startswith(title, cut):
            cut += len(title)  # a summary that repeats the headline
            cut += len(body) - cut - len(body[cut:].lstrip())
        dateline = _DATELINE_RE.match(body, cut)
        if dateline is not None:
            cut = dateline.end()
        body = body[cut:]
        self.title = title
        self.has_title = bool(title)

        body += " "  # a final mark is then followed by white space, as any other
        self.body = body
        lexicon = rules.lexicon
        title_tokens: list[str] = []
        title_ids: list[tuple[int, ...]] = []
        if title:
            _read(title, lexicon, title_tokens, title_ids)
        title_count = len(title_tokens)
        words = title_tokens
        found = title_ids
        _read(body, lexicon, words, found)
        index: dict[int, list[int]] = {}
        for position in compress(count(), found):
            for term_id in found[position]:
                if term_id in index:
                    index[term_id].append(position)
                else:
                    index[term_id] = [position]

        # Sentences: the title, then the body cut after each mark that ends a sentence.
        self.words = words
        title_size = title_count
        marks = [p for p in index.pop(MARK_TERM, []) if p >= title_size]  # the body's
        total = len(words)
        bounds: list[tuple[int, int]] = [(0, title_size)] if title else []
        ending_marks: list[int] = [-1] if title else []  # per sentence: its mark's rank
        sent_of: list[int] = [0] * title_size
        low = title_size
        opener_tokens = _OPENER_TOKENS
        abbreviations = ABBREVIATIONS
        for rank, position in enumerate(marks):
            token = words[position]
            if token != "\n":
                following = words[position + 1] if position + 1 < total else ""
                if following and following != "\n":
                    first = following[0]
                    if not (first.isupper() or first.isdigit() or following in opener_tokens):
                        continue
                if token[0] == "." and position > low:
                    previous = words[position - 1]
                    if (
                        previous[0].isalpha()
                        and (len(previous) == 1 or previous.lower() in abbreviations)
                        and not (  # "и т.д." / "и т.п." close a sentence
                            len(previous) == 1
                            and position - 2 >= low
                            and f"{words[position - 2]}.{previous}".lower() in FINAL_ABBREVIATIONS
                        )
                    ):
                        continue  # "Gen. Sidorov", "В. Путин", "U.S. troops"
            high = position + 1
            if high > low:
                if words[low][0].isalnum() or any(words[i][0].isalnum() for i in range(low, high)):
                    sent_of += [len(bounds)] * (high - low)
                    bounds.append((low, high))
                    ending_marks.append(rank)
                else:  # only marks and punctuation: blank lines
                    sent_of += [max(len(bounds) - 1, 0)] * (high - low)
                low = high
        if total > low:
            if any(words[i][0].isalnum() for i in range(low, total)):
                sent_of += [len(bounds)] * (total - low)
                bounds.append((low, total))
                ending_marks.append(len(marks))
            else:
                sent_of += [max(len(bounds) - 1, 0)] * (total - low)
        self.bounds = bounds
        self.ending_marks = ending_marks
        self.mark_count = len(marks)
        self._mark_offsets: list[int] | None = None
        self._mark_iter: Iterator[int] | None = None
        self.sent_of = sent_of
        self.lede = 1 if self.has_title and len(bounds) > 1 else (0 if bounds else -1)
        self.index: dict[int, list[int]] = index
        self.present = frozenset(index)
        self.punct = index.get(PUNCT_TERM, [])
        self.possible: dict[int, bool] = {}  # id(chain) → all its items have a word here
        self.sentence_sets: dict[int, set[int]] = {}  # id(term set) → sentences
        # id(alternatives) → (position lists of its words here, options that can match)
        self.alternatives: dict[int, tuple[frozenset[int], tuple[Node, ...]]] = {}
        self.spans: dict[int, list[Span]] = {}  # id(node) → its occurrences
        self.term_spans: dict[int, list[Span]] = {}  # term id → its occurrences
        self._years: dict[int, list[tuple[int, int]]] | None = None
        self._title_case: dict[int, bool] = {}

    def _char_end(self, rank: int) -> int:
        """Character offset just after the body's `rank`-th mark (closing quotes too).

        The marks are found in the text only as far as needed: evidence sentences are
        few, and usually early.
        """
        if rank >= self.mark_count:
            return len(self.body)
        if self._mark_offsets is None:
            self._mark_offsets = []
            self._mark_iter = iter_mark_ends(self.body)
        offsets = self._mark_offsets
        while len(offsets) <= rank:
            offsets.append(next(self._mark_iter, len(self.body)))  # type: ignore[arg-type]
        return offsets[rank]

    def sentences_with(self, terms: frozenset[int]) -> set[int]:
        """The sentences holding at least one of `terms` (memoised per article)."""
        key = id(terms)
        found = self.sentence_sets.get(key)
        if found is None:
            sent_of = self.sent_of
            index = self.index
            found = {
                sent_of[position] for term_id in terms & self.present for position in index[term_id]
            }
            self.sentence_sets[key] = found
        return found

    def is_question(self, sentence: int) -> bool:
        """Whether the sentence ends with a question mark."""
        last = self.words[self.bounds[sentence][1] - 1]
        if last[0] in "?!.…\n":
            return "?" in last
        if sentence == len(self.bounds) - 1 or (sentence == 0 and self.has_title):
            # the title, or the end of the text: no mark token, look at the text itself
            return self.sentence_text(sentence).rstrip().rstrip("\"'»”)").endswith("?")
        return False

    def sentence_text(self, sentence: int) -> str:
        if sentence == 0 and self.has_title:
            return self.title
        first_body = 1 if self.has_title else 0
        previous = self.ending_marks[sentence - 1] if sentence > first_body else -1
        start = self._char_end(previous) if previous >= 0 else 0
        return self.body[start : self._char_end(self.ending_marks[sentence])].strip()

    def same_clause(self, first: int, second: int) -> bool:
        """No clause punctuation between two positions."""
        low, high = (first, second) if first <= second else (second, first)
        i = bisect_right(self.punct, low)
        return i == len(self.punct) or self.punct[i] >= high

    @property
    def years(self) -> dict[int, list[tuple[int, int]]]:
        """sentence → [(position, year)] for the numbers that read as years."""
        if self._years is None:
            self._years = self._find_years(self.index.get(YEAR_TERM, []))
        return self._years

    def _find_years(self, candidates: list[int]) -> dict[int, list[tuple[int, int]]]:
        years: dict[int, list[tuple[int, int]]] = {}
        words = self.words
        accepted: set[int] = set()
        for position in candidates:
            token = words[position]
            digits = token[:4]
            sentence = self.sent_of[position]
            low, high = self.bounds[sentence]
            if len(token) > 4:
                is_year = True  # "1990s", "1990-х"
            else:
                before = words[position - 1].lower() if position > low else ""
                after = words[position + 1].lower() if position + 1 < high else ""
                is_year = (
                    before in _YEAR_BEFORE
                    or after in _YEAR_AFTER
                    or before.isdigit()
                    or (position - 1) in accepted
                    or position == low
                    or not after.isalpha()
                )
            if is_year:
                accepted.add(position)
                years.setdefault(sentence, []).append((position, int(digits)))
        return years

    def months(self, sentence: int) -> list[tuple[int, int]]:
        """[(position, month)] of the month names in one sentence ("May" opening a
        sentence may be the modal: not counted)."""
        positions = self.index.get(MONTH_TERM)
        if not positions:
            return []
        low, high = self.bounds[sentence]
        words = self.words
        found = []
        for position in positions[bisect_left(positions, low) : bisect_left(positions, high)]:
            word = words[position]
            if position == low and word == "May":
                continue
            found.append((position, month_number(word)))
        return found

    def is_title_case(self, sentence: int) -> bool:
        cached = self._title_case.get(sentence)
        if cached is None:
            low, high = self.bounds[sentence]
            letters = [w for w in self.words[low:high] if w[0].isalpha()]
            capitals = sum(1 for w in letters if w[0].isupper())
            cached = len(letters) >= 3 and capitals >= 0.6 * len(letters)
            self._title_case[sentence] = cached
        return cached

    def evidence(self, sentence: int) -> str:
        return " ".join(self.sentence_text(sentence).split())


# ---------------------------------------------------------------------------
# Evaluating compiled nodes


def _term_spans(term_id: int, doc: _Doc) -> list[Span]:
    """The occurrences of a term present in the article (memoised per article)."""
    found = doc.term_spans.get(term_id)
    if found is None:
        found = [(position, position + 1, (position,)) for position in doc.index[term_id]]
        doc.term_spans[term_id] = found
    return found


def _is_possible(node: ChainNode, doc: _Doc) -> bool:
    """Whether every item of the chain has at least one of its words in the article."""
    key = id(node)
    known = doc.possible.get(key)
    if known is None:
        present = doc.present
        known = True
        for need in node.needs:
            if need.isdisjoint(present):
                known = False
                break
        doc.possible[key] = known
    return known


def _alternatives_here(node: AltNode, doc: _Doc) -> tuple[frozenset[int], tuple[Node, ...]]:
    """The node's one-word options present in the article, and its other options that
    can match in it at all (computed once per article and node)."""
    key = id(node)
    here = doc.alternatives.get(key)
    if here is not None:
        return here
    present = doc.present
    if node.needs.isdisjoint(present):
        here = (_NO_TERMS, ())
    else:
        terms = node.terms & present
        gated = node.gate_terms & present
        if not gated:
            here = (terms, ())
        else:
            gates = node.gates
            numbers: Iterable[int]
            if len(gated) == 1:
                numbers = gates[next(iter(gated))]  # in order already
            else:
                numbers = sorted({number for term_id in gated for number in gates[term_id]})
            options = node.options
            here = (terms, tuple(options[n] for n in numbers if _is_possible(options[n], doc)))
    doc.alternatives[key] = here
    return here


def _spans(node: Node, doc: _Doc) -> list[Span]:
    """Every occurrence of `node` in the article, memoised per article (nodes are
    shared between patterns): the list is shared, callers must not change it."""
    key = id(node)
    found = doc.spans.get(key)
    if found is not None:
        return found
    if type(node) is TermNode:
        found = _term_spans(node.id, doc) if node.id in doc.present else _NO_SPANS
    elif type(node) is AltNode:
        terms, options = _alternatives_here(node, doc)
        if len(terms) == 1 and not options:
            found = _term_spans(next(iter(terms)), doc)
        else:
            found = []
            for term_id in terms:
                found.extend(_term_spans(term_id, doc))
            for option in options:
                found.extend(_spans(option, doc))
    else:
        assert type(node) is ChainNode
        found = _chain_spans(node, doc) if _is_possible(node, doc) else _NO_SPANS
    doc.spans[key] = found
    return found


def _chain_spans(node: ChainNode, doc: _Doc) -> list[Span]:
    current = _spans(node.items[0], doc)
    for item, (gap, ordered) in zip(node.items[1:], node.joins, strict=True):
        if not current:
            return _NO_SPANS
        following = _spans(item, doc)
        if not following:
            return _NO_SPANS
        if type(item) is TermNode:  # a term's occurrences: in text order, one word each
            starts = doc.index[item.id]
            longest = 1
        else:
            following = sorted(following)
            starts = [span[0] for span in following]
            longest = 0 if ordered else max(end - start for start, end, _ in following)
        joined: list[Span] = []
        for start, end, matched in current:
            # after: the next item starts within `gap` words of this end
            for _, end2, matched2 in following[
                bisect_left(starts, end) : bisect_right(starts, end + gap)
            ]:
                joined.append((start, end2, matched + matched2))
            if not ordered:  # before: it ends within `gap` words of this start
                for start2, end2, matched2 in following[
                    bisect_left(starts, start - gap - longest) : bisect_left(starts, start)
                ]:
                    if end2 <= start and start - end2 <= gap:
                        joined.append((start2, end, matched2 + matched))
        current = joined
    return current


# ---------------------------------------------------------------------------
# Hits and their qualifiers


@dataclass(slots=True)
class _Hit:
    sentence: int
    start: int
    end: int
    positions: tuple[int, ...]
    confidence: float
    qualifiers: tuple[str, ...]


class _Judge:
    """Non-event checks for the hits of one article (cue spans cached per sentence)."""

    def __init__(self, doc: _Doc, rules: RuleSet, published_at: datetime | None) -> None:
        self.doc = doc
        self.cues = rules.cues
        self.published_year = published_at.year if published_at is not None else None
        # A date at midnight on 1 January is a bare year (month unknown): no month check.
        self.published_month = (
            published_at.month
            if published_at is not None
            and not (
                published_at.month == 1
                and published_at.day == 1
                and published_at.time() == time(0, 0)
            )
            else None
        )
        self.published_day = (
            published_at.day if published_at is not None and self.published_month is not None else 0
        )
        self._cache: dict[int, dict[int, list[Span]]] = {}  # id(node) → by sentence
        self._article_other_sense: dict[int, str | None] = {}
        self._background_sentences: set[int] | None = None
        self._weapon_modifiers: set[int] | None = None

    def spans_in(self, node: Node, sentence: int) -> list[Span]:
        """Occurrences of `node` in one sentence. A node is looked for in several
        sentences of most articles, so it is found once over the whole article and
        sorted by sentence; a span that runs across a sentence end belongs to none."""
        return self.by_sentence(node).get(sentence, _NO_SPANS)

    def sentences_of(self, node: Node) -> Iterable[int]:
        """The sentences where `node` occurs."""
        return self.by_sentence(node).keys()

    def by_sentence(self, node: Node) -> dict[int, list[Span]]:
        """sentence → the occurrences of `node` in it (memoised per article)."""
        by_sentence = self._cache.get(id(node))
        if by_sentence is None:
            by_sentence = {}
            sent_of = self.doc.sent_of
            for span in _spans(node, self.doc):
                sentence = sent_of[span[0]]
                if sent_of[span[1] - 1] == sentence:
                    if sentence in by_sentence:
                        by_sentence[sentence].append(span)
                    else:
                        by_sentence[sentence] = [span]
            self._cache[id(node)] = by_sentence
        return by_sentence

    def cue_spans(self, name: str, node: Node, sentence: int) -> list[Span]:
        """Occurrences of the engine cue `name` (compiled as `node`) in one sentence;
        none at once when the sentence has none of the cue's gate words."""
        gate = self.cues.gates[name]
        if gate.isdisjoint(self.doc.present) or sentence not in self.doc.sentences_with(gate):
            return _NO_SPANS
        return self.spans_in(node, sentence)

    def weapon_modifiers(self) -> set[int]:
        """Positions of the words that may modify a weapon noun ("strike", "ударные")."""
        if self._weapon_modifiers is None:
            index = self.doc.index
            self._weapon_modifiers = {
                position
                for term_id in self.cues.weapon_gate & self.doc.present
                for position in index[term_id]
            }
        return self._weapon_modifiers

    def text(self, span: Span) -> str:
        return " ".join(self.doc.words[span[0] : span[1]])

    def is_cue_word(self, position: int, sentence: int) -> bool:
        """A cue written with a capital inside a sentence is a name ("May", "Will")."""
        word = self.doc.words[position]
        if not word[0].isupper() or position == self.doc.bounds[sentence][0]:
            return True
        return self.doc.is_title_case(sentence) or word.isupper()

    def judge(
        self, ci: CompiledIndicator, sentence: int, span: Span, extra: tuple[int, ...], base: float
    ) -> tuple[float, tuple[str, ...]]:
        start, end, _ = span
        matched = set(span[2]) | set(extra)
        factor = base
        qualifiers: list[str] = []
        cues = self.cues

        if ci.exclude is not None:
            other = self._other_sense(ci, sentence)
            if other is not None:
                factor *= OTHER_SENSE_FACTOR
                qualifiers.append(f"other sense: '{other}'")

        # Cues are looked for before the event words (the first clause) and before the
        # earliest matched word, which may belong to a later clause ("failed to AGREE on
        # a peace TREATY").
        starts = (start,) if min(matched) >= start else (start, min(matched))
        same_clause = self.doc.same_clause
        for context in ci.contexts:
            for cue in self.spans_in(context.node, sentence):
                position = cue[0]
                if matched.intersection(cue[2]):
                    continue
                inside = start <= position < end + context.after
                before = any(
                    anchor - context.before <= position < anchor and same_clause(position, anchor)
                    for anchor in starts
                )
                if inside or before:
                    factor *= context.factor
                    qualifiers.append(f"{context.name}: '{self.text(cue)}'")
                    break

        if "negated" in ci.non_events:
            # a particle may also negate the word of a further clause: "the peace treaty
            # will NOT be SIGNED" (pattern "treaty & signed")
            anchors = starts + tuple(sorted(set(extra) - set(span[2])))
            why = self._negation(sentence, anchors, end, matched)
            if why is not None:
                factor *= NEGATED_FACTOR
                qualifiers.append(f"negated: '{why}'")
        if "hypothetical" in ci.non_events:
            why = self._hypothetical(sentence, start, end, matched)
            if why is not None:
                factor *= HYPOTHETICAL_FACTOR
                qualifiers.append(f"hypothetical: {why}")
        if "historical" in ci.non_events:
            why = self._historical(sentence, start, end, matched)
            if why is not None:
                factor *= HISTORICAL_FACTOR
                qualifiers.append(f"historical: {why}")
        if "background" in ci.non_events and factor >= EVENT_CONFIDENCE:
            # a cue may share a word with a further clause ("after DEADLY fighting",
            # pattern "fighting & dead*"), not with the event words themselves
            why = self._background(sentence, starts, end, set(span[2]))
            if why is None:
                why = self._pluperfect(sentence, starts)
            if why is not None:
                factor *= BACKGROUND_FACTOR
                qualifiers.append(f"background: '{why}'")
        if "reversed" in ci.non_events and not cues.reversal_gate.isdisjoint(self.doc.present):
            reversal = self._cue_in(
                cues.reversal,
                sentence,
                end,
                min(self.doc.bounds[sentence][1], end + REVERSAL_WINDOW),
                matched,
            )
            if reversal is not None:
                factor *= REVERSED_FACTOR
                qualifiers.append(f"reversed: '{self.text(reversal)}'")
        if "weapon_type" in ci.non_events and not self.weapon_modifiers().isdisjoint(span[2]):
            for cue in self.spans_in(cues.weapon_types, sentence):
                if cue[0] in span[2]:  # the event word modifies a weapon noun
                    factor *= WEAPON_TYPE_FACTOR
                    qualifiers.append(f"weapon type: '{self.text(cue)}'")
                    break
        return max(0.0, min(1.0, factor)), tuple(qualifiers)

    def _other_sense(self, ci: CompiledIndicator, sentence: int) -> str | None:
        assert ci.exclude is not None
        for span in self.spans_in(ci.exclude, sentence):
            return self.text(span)  # may overlap the match: "heart ATTACK", "drone SHOW"
        key = id(ci)
        if key not in self._article_other_sense:
            doc = self.doc
            found = _spans(ci.exclude, doc)
            distinct = {self.text(span).lower() for span in found}
            self._article_other_sense[key] = (
                ", ".join(sorted(distinct)[:ARTICLE_OTHER_SENSE])
                if len(distinct) >= ARTICLE_OTHER_SENSE
                else None
            )
        return self._article_other_sense[key]

    def _cue_in(
        self,
        node: Node,
        sentence: int,
        low: int,
        high: int,
        matched: set[int],
        *,
        same_clause_as: int | None = None,
    ) -> Span | None:
        for cue in self.spans_in(node, sentence):
            position = cue[0]
            if not low <= position < high or matched.intersection(cue[2]):
                continue
            if same_clause_as is not None and not self.doc.same_clause(position, same_clause_as):
                continue
            if not self.is_cue_word(position, sentence):
                continue
            return cue
        return None

    def _negation(
        self, sentence: int, starts: tuple[int, ...], end: int, matched: set[int]
    ) -> str | None:
        cues = self.cues
        start = starts[0]
        first = self.doc.bounds[sentence][0]
        last = self.doc.bounds[sentence][1]
        exceptions = {span[0] for span in self.spans_in(cues.negation_exceptions, sentence)}
        windows: list[tuple[int, int, int | None]] = [
            (max(first, anchor - PARTICLE_WINDOW), anchor, anchor) for anchor in starts
        ]
        windows.append((start + 1, end, None))
        particles = self.spans_in(cues.negation_particles, sentence)
        for low, high, clause in windows:
            for cue in particles:
                position = cue[0]
                if not low <= position < high or position in matched or position in exceptions:
                    continue
                if clause is not None and not self.doc.same_clause(position, clause):
                    continue
                if self._correlative(cue, particles, sentence):
                    continue  # "не будет участвовать НИ в учениях": the same negative
                if self.is_cue_word(position, sentence):
                    return self.text(cue)
        denial = self._cue_in(
            cues.denials_before, sentence, max(first, start - DENIAL_BEFORE_WINDOW), end, matched
        )
        if denial is None:
            denial = self._cue_in(
                cues.denials_after, sentence, end, min(last, end + DENIAL_AFTER_WINDOW), matched
            )
            if denial is not None and any(
                span[0] < denial[0] < span[1]
                for span in self.cue_spans("party_denials", cues.party_denials, sentence)
            ):
                denial = None  # "Baku reports Armenian fire, YEREVAN DENIES": contested
        if denial is None:  # "denied reports that …", however far before
            denial = self._cue_in(cues.denied_reports, sentence, first, start, matched)
        if denial is not None and any(
            span[0] <= denial[0] < span[1]
            for span in self.cue_spans("denial_exceptions", cues.denial_exceptions, sentence)
        ):
            denial = None  # "… and has no plans to RETURN": the sign stands
        return self.text(denial) if denial is not None else None

    def _correlative(self, cue: Span, particles: list[Span], sentence: int) -> bool:
        """A correlative ("ни", "nor") after a negation of its own clause continues that
        negation ("will NOT take part NI in the drills NI in the summits"): it is no
        second negation of the match, which already carries (or is) the first."""
        position = cue[0]
        correlatives = {
            c[0]
            for c in self.cue_spans(
                "negation_correlatives", self.cues.negation_correlatives, sentence
            )
        }
        return position in correlatives and any(
            position - CORRELATIVE_WINDOW <= other[0] < position
            and other[0] not in correlatives
            and self.doc.same_clause(other[0], position)
            for other in particles
        )

    def _hypothetical(self, sentence: int, start: int, end: int, matched: set[int]) -> str | None:
        """The cue that makes the match hypothetical, nearest kind first."""
        cues = self.cues
        first, last = self.doc.bounds[sentence]
        found = self._cue_in(
            cues.modals,
            sentence,
            max(first, start - MODAL_WINDOW),
            start,
            matched,
            same_clause_as=start,
        ) or self._cue_in(cues.modals, sentence, start + 1, end, matched)
        if found is not None and any(
            span[0] == found[0] for span in self.spans_in(cues.modal_exceptions, sentence)
        ):
            found = None  # "considers it inappropriate": a stated view
        if found is None:  # "new clashes on the border are not ruled out"
            after = max(end, max(matched) + 1)  # after the last matched word
            found = self._cue_in(
                cues.modals_after,
                sentence,
                after,
                min(last, after + MODAL_AFTER_WINDOW),
                matched,
                same_clause_as=after - 1,
            )
        if found is None:
            would = self._cue_in(
                cues.would, sentence, max(first, start - MODAL_WINDOW), end, matched
            )
            if would is not None:
                reported = self._cue_in(cues.reporting, sentence, first, would[0], matched)
                if reported is None:
                    found = would
        if found is None:
            found = self._cue_in(
                cues.conditionals,
                sentence,
                max(first, start - CONDITIONAL_WINDOW),
                min(last, end + CONDITIONAL_AFTER_WINDOW),
                matched,
            )
        if found is None:
            found = self._cue_in(
                cues.indirect_questions,
                sentence,
                max(first, start - CONDITIONAL_WINDOW),
                start,
                matched,
                same_clause_as=start,
            )
        if found is None:
            found = self._cue_in(cues.questions_after, sentence, end, end + 2, matched)
        if found is not None:
            return f"'{self.text(found)}'"
        if self.doc.is_question(sentence) and not any(
            cue[0] < first + SENTENCE_OPENING + 2  # "Q: Why did …"
            for cue in self.spans_in(cues.presupposing_questions, sentence)
        ):
            return "question"
        return None

    def _historical(self, sentence: int, start: int, end: int, matched: set[int]) -> str | None:
        """A background reference: a phrase like "last year", or an earlier year that
        governs the match (same clause, within a few words, or opening the sentence:
        "In 2021, clashes …"; not one that belongs to another clause, unless that clause
        is a relative one it opens: "in 2022, WHEN Azerbaijani forces attacked …", "the
        2020 war, WHICH ended with a ceasefire")."""
        first = self.doc.bounds[sentence][0]
        same_clause = self.doc.same_clause
        relative = self._relative_clause_start(sentence, start)

        def governs(position: int) -> bool:
            distance = start - position if position < start else position - end + 1
            return (
                distance <= YEAR_WINDOW
                or position < first + SENTENCE_OPENING
                or same_clause(position, start)
                or (relative is not None and same_clause(position, relative - 1))
            )

        for cue in self.spans_in(self.cues.history, sentence):
            # a phrase like "years ago" dates the match when it governs it, as a year does
            if (
                matched.isdisjoint(cue[2])
                and governs(cue[0])
                and self.is_cue_word(cue[0], sentence)
            ):
                return f"'{self.text(cue)}'"
        for cue in self.cue_spans("anniversaries", self.cues.anniversaries, sentence):
            if 0 <= start - cue[1] <= ANNIVERSARY_WINDOW and same_clause(cue[0], start):
                return f"'{self.text(cue)}'"
        if self.published_year is None:
            return None
        years = self.doc.years.get(sentence)
        if not years and (
            self.published_month is None
            or MONTH_TERM not in self.doc.present
            or not self.doc.months(sentence)
        ):
            return None
        years = years or []

        def distance(item: tuple[int, int]) -> int:
            position = item[0]
            return start - position if position < start else max(0, position - end + 1)

        relevant = [item for item in years if governs(item[0])]
        if relevant:
            papers = [
                span[0]
                for span in self.spans_in(self.cues.year_documents, sentence)
                if matched.isdisjoint(span[2])
            ]
            if papers:  # "maps of 1927", "1920s documents": the year dates a paper
                relevant = [
                    item
                    for item in relevant
                    if not any(
                        -YEAR_PAPER_AFTER <= item[0] - paper <= YEAR_PAPER_BEFORE
                        and same_clause(paper, item[0])
                        for paper in papers
                    )
                ]
        if not relevant:  # no year dates it (a paper's year may not): a month still may
            return self._month_before(sentence, governs, distance)
        position, year = min(relevant, key=distance)
        if year < self.published_year:
            return f"'{self.doc.words[position]}' before {self.published_year}"
        if year == self.published_year:  # "in February 2024" in a December 2024 story
            return self._month_before(sentence, governs, distance, this_year=True)
        return None

    def _relative_clause_start(self, sentence: int, start: int) -> int | None:
        """The mark opening the match's clause, when the clause is a relative one
        ("…, when", "…, which", "…, когда", "…, который"): the clause the time of the
        previous one carries over to. None otherwise."""
        punct = self.doc.punct
        i = bisect_right(punct, start) - 1
        if i < 0:
            return None
        mark = punct[i]
        if mark < self.doc.bounds[sentence][0] or mark + 1 >= start:
            return None
        if self.doc.words[mark + 1].lower() in _RELATIVE_WORDS:
            return mark
        return None

    def _month_before(
        self,
        sentence: int,
        governs: Callable[[int], bool],
        distance: Callable[[tuple[int, int]], int],
        *,
        this_year: bool = False,
    ) -> str | None:
        """A month named without a year, two to six months before publication (further
        back it reads as a plan: "drills due in October" in a May story); or the month
        before publication named without a day, in a story from after the first week of
        its month ("in September" on 9 October, but not "on 30 September", nor "in
        September" on 2 October: both may be this week). A month of the publication's
        own year (its year named, or "this year" in the sentence: "In January Armenia
        declined to host this year's drills" in a November story) two or more months
        before the publication month is past however far back."""
        published = self.published_month
        if published is None:
            return None
        months = self.doc.months(sentence)
        relevant = [item for item in months if governs(item[0])]
        if not relevant:
            return None
        position, month = min(relevant, key=distance)
        low, high = MONTHS_BACK
        back = (published - month) % 12
        if not this_year and month < published:
            this_year = bool(self.cue_spans("this_year", self.cues.this_year, sentence))
        if (
            low <= back <= high
            or (this_year and month < published and back >= low)
            or (
                back == 1
                and self.published_day > LAST_MONTH_AFTER_DAY
                and not self._has_day(position)
            )
        ):
            return f"'{self.doc.words[position]}' months before month {published}"
        return None

    def _has_day(self, position: int) -> bool:
        """Whether a day number stands next to the month at `position`."""
        words = self.doc.words
        return any(
            0 <= i < len(words) and words[i].isdigit() and 1 <= int(words[i]) <= 31
            for i in (position - 1, position + 1)
        )

    def _pluperfect(self, sentence: int, starts: tuple[int, ...]) -> str | None:
        """The past perfect of narration ("the leaders HAD MET several times and agreed
        to …"): an event before the story's time, so background; not in reported speech
        ("troops had opened fire, officials said"), where it tells the news."""
        cue_name = "pluperfect"
        found = self.cue_spans(cue_name, self.cues.pluperfect, sentence)
        if not found:
            return None
        for cue in found:
            if any(
                0 < anchor - cue[1] + 1 <= PLUPERFECT_WINDOW
                and self.doc.same_clause(cue[0], anchor)
                for anchor in starts
            ):
                if self.spans_in(self.cues.reporting, sentence):
                    return None
                return self.text(cue)
        return None

    def _background(
        self, sentence: int, starts: tuple[int, ...], end: int, matched: set[int]
    ) -> str | None:
        """The cue that makes the match a recalled recent event, unless the match's own
        clause says it is today's news."""
        cues = self.cues
        if cues.background_gate.isdisjoint(self.doc.present):
            return None  # most articles: none of the cues' rarest words
        if sentence not in self.doc.sentences_with(cues.background_gate):
            return None  # nor most sentences
        if self._background_sentences is None:
            self._background_sentences = {
                found
                for node in (
                    cues.background_frames,
                    cues.background_relative,
                    cues.background_close,
                )
                for found in self.sentences_of(node)
            }
        if sentence not in self._background_sentences:
            return None  # a gate word, but no whole cue
        doc = self.doc
        same_clause = doc.same_clause
        first = doc.bounds[sentence][0]
        excepted: set[int] | None = None

        def usable(cue: Span) -> bool:
            nonlocal excepted
            if matched.intersection(cue[2]) or not self.is_cue_word(cue[0], sentence):
                return False
            if excepted is None:
                excepted = {
                    position
                    for span in self.spans_in(cues.background_exceptions, sentence)
                    for position in span[2]
                }
            return excepted.isdisjoint(cue[2])

        found: tuple[Span, int] | None = None
        for node, window, opening in (
            (cues.background_frames, BACKGROUND_WINDOW, True),
            (cues.background_relative, BACKGROUND_WINDOW, False),
            (cues.background_close, BACKGROUND_CLOSE_WINDOW, False),
        ):
            spans = self.spans_in(node, sentence)
            if len(spans) > 1:  # the longest cue at a place names it best
                spans = sorted(spans, key=lambda c: (c[0], -c[1]))  # "Earlier this year"
            for cue in spans:
                for anchor in starts:
                    if cue[1] <= anchor and (
                        (anchor - cue[1] <= window and same_clause(cue[0], anchor))
                        or (opening and cue[0] < first + SENTENCE_OPENING)
                    ):
                        if usable(cue):
                            found = (cue, anchor)
                        break
                if found is not None:
                    break
            if found is not None:
                break
        if found is None:
            for cue in self.spans_in(cues.background_frames, sentence):
                if (
                    end <= cue[0] < end + BACKGROUND_AFTER_WINDOW
                    and same_clause(end - 1, cue[0])
                    and usable(cue)
                ):
                    found = (cue, end - 1)
                    break
        if found is None:
            return None
        cue, anchor = found
        # the match's clause: from the mark before the anchor to the mark after it
        punct = doc.punct
        low, high = doc.bounds[sentence]
        i = bisect_right(punct, anchor)
        clause_low = max(low, punct[i - 1] + 1) if i else low
        clause_high = min(high, punct[i]) if i < len(punct) else high
        cue_words = set(range(cue[0], cue[1]))
        for current in self.spans_in(cues.current, sentence):
            if clause_low <= current[0] < clause_high and cue_words.isdisjoint(current[2]):
                return None
        return self.text(cue)


# ---------------------------------------------------------------------------
# Theatres


@dataclass(slots=True)
class _Presence:
    kind: str
    article: bool  # the theatre counts for this article at all (both sides / core)
    any_side: bool  # at least one side (pairs) or the core (alliances)
    sides: bool  # a side of a pair is named (not only a disputed place)
    local: set[int]  # sentences naming its actors (an alliance: its own names)
    involved: set[int]  # sentences naming any actor, members of an alliance included
    both: set[int] = field(default_factory=set)  # a pair: both sides or a disputed place
    # a pair: sentences naming one of its neighbours with one side and not the other
    elsewhere: set[int] = field(default_factory=set)


def _presence(doc: _Doc, rules: RuleSet) -> dict[str, _Presence]:
    sent_of = doc.sent_of

    def sentences_of(node: Node | None) -> set[int]:
        if node is None:
            return set()
        if type(node) is AltNode:
            found = set(doc.sentences_with(node.terms))
            _, options = _alternatives_here(node, doc)
            for option in options:
                found.update(sent_of[span[0]] for span in _spans(option, doc))
            return found
        return {sent_of[span[0]] for span in _spans(node, doc)}

    presence: dict[str, _Presence] = {}
    for ct in rules.compiled_theatres:
        if ct.theatre.kind == "pair":
            side_a, side_b = (sentences_of(node) for node in ct.sides)
            disputed = sentences_of(ct.disputed)
            local = side_a | side_b | disputed
            both = (side_a & side_b) | disputed
            neighbours = sentences_of(ct.neighbours) & local
            presence[ct.theatre.id] = _Presence(
                "pair",
                bool(side_a and side_b) or bool(disputed),
                bool(local),
                bool(side_a or side_b),
                local,
                local,
                both,
                neighbours - both,
            )
        else:
            core = sentences_of(ct.sides[0])
            members = sentences_of(ct.members)
            presence[ct.theatre.id] = _Presence(
                "alliance", bool(core), bool(core), bool(core), core, core | members
            )
    return presence


def _theatres_for(
    ci: CompiledIndicator,
    sentence: int,
    doc: _Doc,
    presence: dict[str, _Presence],
    judge: _Judge,
    *,
    alliance_story: bool = False,
) -> list[str]:
    if ci.alliance_when is not None:
        # Aid from the alliance (its leader, its names) to a member is the alliance's
        # sign, not the recipient's pair's; other hits are the pairs'.
        if alliance_story or (
            sentence in doc.sentences_with(ci.alliance_gate)
            and judge.spans_in(ci.alliance_when, sentence)
        ):
            return [
                theatre_id
                for theatre_id in ci.theatre_ids
                if presence[theatre_id].kind == "alliance"
                and (
                    sentence in presence[theatre_id].involved
                    or (doc.has_title and 0 in presence[theatre_id].involved)
                )
            ]
        theatre_ids = [t for t in ci.theatre_ids if presence[t].kind == "pair"]
    else:
        theatre_ids = list(ci.theatre_ids)
    ranked: list[tuple[int, str]] = []
    for theatre_id in theatre_ids:
        seen = presence[theatre_id]
        if sentence in seen.local:
            tier = 0
        elif doc.has_title and 0 in seen.local:
            tier = 1
        elif doc.lede in seen.local:
            tier = 2
        else:
            tier = 3
        one_sided = ci.one_side and seen.kind == "pair" and seen.any_side and tier <= 1
        if not (seen.article or one_sided):
            continue  # a pair needs both sides, unless one side suffices and is named here
        if ci.one_side and seen.kind == "pair" and not seen.sides:
            continue  # arms "used in Karabakh": a one-sided sign needs a side, not a place
        if (
            seen.kind == "pair"
            and not ci.one_side
            and sentence not in seen.both
            and (sentence in seen.elsewhere or (doc.has_title and 0 in seen.elsewhere))
        ):
            # one side and a neighbour of the pair, without the other side: "Kyrgyz and
            # Uzbek villagers clashed", or a story the headline sets on that border
            # ("… the worst Kyrgyz-Uzbek border violence in years")
            continue
        if ci.one_side and seen.kind == "pair" and tier > 1 and sentence - 1 not in seen.local:
            # arms for a buyer the sentence names, in a story that mentions the pair
            # elsewhere ("Baykar signed a contract to supply Kuwait …", after a recap of
            # the Karabakh war): the recipient is named where the sign is, in the
            # sentence before it, or in the headline
            continue
        if seen.kind == "alliance" and not (
            sentence in seen.involved
            or (doc.has_title and 0 in seen.involved)
            or doc.lede in seen.involved
        ):
            continue  # the alliance is named, but no member acts near this sign
        ranked.append((tier, theatre_id))
    if not ranked:
        return []
    best = min(tier for tier, _ in ranked)
    return [theatre_id for tier, theatre_id in ranked if tier == best]


# ---------------------------------------------------------------------------
# The article's news: what the headline and lede report, and what the body recalls

RETROSPECTIVE_WINDOW = 4  # "two years INTO Armenia's CSTO FREEZE": the cue governs it


def _is_news_sentence(doc: _Doc, sentence: int) -> bool:
    """The headline and the lede: the sentences that say what the article reports."""
    return (sentence == 0 and doc.has_title) or sentence == doc.lede


def _judge_news(
    found: list[tuple[CompiledIndicator, list[_Hit]]], doc: _Doc, judge: _Judge
) -> None:
    """Decide, over the whole article, which hits are its news and which its background.

    The headline (the lede when there is none) names what the article is about, and the
    headline and lede report its news; a long analysis may open its lede with history.
    A sign reported later counts when it is new; it is background (kept, with the
    reason, at a confidence that no longer counts) when

    - the article looks back: its headline holds a retrospective cue (an anniversary,
      a commemoration, "two years on", "вспоминают погибших", "уроки"), and the sign is
      not one the headline or lede reports as news; a retrospective cue just before a
      sign in the headline itself ("two years INTO the freeze") governs that sign too;
    - the headline recalls the same sign as background or history ("signed a protocol
      AFTER the bloodiest fighting"), and neither it nor the lede reports it as news:
      the body's account of it is the same recalled event.

    A sign whose own sentence says it is today's ("on Tuesday", "resumed", "вновь")
    stays news either way.
    """
    if not doc.bounds:
        return
    headline = 0 if doc.has_title else doc.lede
    cues = judge.cues
    retrospective: Span | None = min(  # the headline's first cue names the look back
        judge.cue_spans("retrospective", cues.retrospective, headline),
        key=itemgetter(0),
        default=None,
    )
    opening = doc.bounds[headline][0] + SENTENCE_OPENING

    def opening_cue(name: str, node: Node) -> Span | None:
        """The headline's first cue of `name` that opens it."""
        return next(
            (cue for cue in judge.cue_spans(name, node, headline) if cue[0] < opening), None
        )

    if retrospective is None:
        retrospective = opening_cue("retrospective_openings", cues.retrospective_openings)
    if retrospective is None and doc.is_question(headline):
        # a headline asking a yes/no or what-if question ("Could the valley burn
        # again?", "Is the CSTO still an alliance?", "Выйдет ли …?") opens an essay: its
        # body weighs the past and the possible, and reports news only with a date
        retrospective = opening_cue("speculative_questions", cues.speculative_questions)
    if retrospective is not None:  # "two years INTO the freeze": the cue governs it
        for _, hits in found:
            for hit in hits:
                if (
                    hit.sentence == headline
                    and hit.confidence >= EVENT_CONFIDENCE
                    and retrospective[1] <= hit.start <= retrospective[1] + RETROSPECTIVE_WINDOW
                    and doc.same_clause(retrospective[0], hit.start)
                ):
                    _demote(hit, f"background: governed by '{judge.text(retrospective)}'")
    for _, hits in found:
        # What the article reports: in a look back, only its headline's signs; otherwise
        # the headline's and the lede's (their later mentions elaborate the news).
        reported = any(
            hit.confidence >= EVENT_CONFIDENCE
            and (
                hit.sentence == headline
                if retrospective is not None
                else _is_news_sentence(doc, hit.sentence)
            )
            for hit in hits
        )
        if reported:
            continue
        recalled = any(
            hit.sentence == headline
            and any(q.startswith(("background", "historical")) for q in hit.qualifiers)
            for hit in hits
        )
        for hit in hits:
            if hit.confidence < EVENT_CONFIDENCE or hit.sentence == headline:
                continue
            if retrospective is not None:
                if not judge.cue_spans("renewal", cues.renewal, hit.sentence):
                    cue = judge.text(retrospective)
                    _demote(hit, f"background: the article looks back ('{cue}' in the headline)")
            elif recalled and not judge.cue_spans("current", cues.current, hit.sentence):
                _demote(hit, "background: the headline recalls it as the story's setting")


SETTING_WINDOW = 4  # "agreed a ceasefire AFTER this week's border FIGHTING"


def _judge_settings(
    found: list[tuple[CompiledIndicator, list[_Hit]]], doc: _Doc, judge: _Judge
) -> None:
    """A sign named as the time or setting of another sign of its sentence is that
    sign's background: "agreed a ceasefire AFTER this week's border FIGHTING", "Баткен
    ПОСЛЕ БОЕВ: стороны договорились об отводе войск", "cancelled the drills, weeks after
    criticism of its silence DURING the FIGHTING". The preposition ("after", "during",
    "после", "в ходе") comes just before the sign, in its clause; the other sign is news
    (event-grade) in the same sentence. Only indicators that check for background."""
    news: dict[int, set[str]] = {}
    for ci, hits in found:
        for hit in hits:
            if hit.confidence >= EVENT_CONFIDENCE:
                news.setdefault(hit.sentence, set()).add(ci.indicator.id)
    if not any(len(ids) > 0 for ids in news.values()):
        return
    cues = judge.cues
    for ci, hits in found:
        if "background" not in ci.non_events:
            continue
        for hit in hits:
            others = news.get(hit.sentence, set()) - {ci.indicator.id}
            if hit.confidence < EVENT_CONFIDENCE or not others:
                continue
            for cue in judge.cue_spans("settings", cues.settings, hit.sentence):
                if hit.start - SETTING_WINDOW <= cue[1] - 1 < hit.start and doc.same_clause(
                    cue[0], hit.start
                ):
                    other = sorted(others)[0]
                    _demote(hit, f"background: the setting of {other} ('{judge.text(cue)}')")
                    break


def _demote(hit: _Hit, why: str) -> None:
    hit.confidence *= BACKGROUND_FACTOR
    hit.qualifiers += (why,)


# ---------------------------------------------------------------------------
# The entry point


def _candidates(doc: _Doc, rules: RuleSet) -> dict[int, set[int]]:
    """indicator → the patterns whose anchor words occur in the article."""
    found: dict[int, set[int]] = {}
    anchor_index = rules.anchor_index
    for term_id in rules.anchor_terms & doc.present:
        for indicator_index, pattern_index in anchor_index[term_id]:
            found.setdefault(indicator_index, set()).add(pattern_index)
    return found


def _pattern_hits(
    pattern: Pattern, judge: _Judge, raw: dict[int, list[tuple[float, Span, tuple[int, ...]]]]
) -> None:
    """Add the pattern's hits to `raw` (sentence → (base confidence, span, extra words))."""
    by_sentence = judge.by_sentence(pattern.required[0])
    further = pattern.required[1:]
    for sentence in sorted(by_sentence):
        first = by_sentence[sentence]
        if not further and not pattern.excluded:  # most patterns: one clause
            raw.setdefault(sentence, []).extend((pattern.confidence, span, ()) for span in first)
            continue
        clauses = [judge.spans_in(clause, sentence) for clause in further]
        if not all(clauses):
            continue
        if any(judge.spans_in(node, sentence) for node in pattern.excluded):
            continue
        for span in first:
            # each further clause needs a word of its own: "agreements & agre*" is
            # not met by the one word "agreements"
            extra: tuple[int, ...] = ()
            own = set(span[2])
            for found in clauses:
                other = next((c for c in found if own.isdisjoint(c[2])), None)
                if other is None:
                    break
                extra += other[2]
            else:
                raw.setdefault(sentence, []).append((pattern.confidence, span, extra))


def _hits(
    ci: CompiledIndicator, pattern_ids: Iterable[int], doc: _Doc, judge: _Judge
) -> list[_Hit]:
    """The best judged hit of the indicator in each sentence where a pattern matches."""
    raw: dict[int, list[tuple[float, Span, tuple[int, ...]]]] = {}
    present = doc.present
    for pattern_index in sorted(pattern_ids):
        pattern = ci.patterns[pattern_index]
        for need in pattern.needs:
            if need.isdisjoint(present):
                break  # some required part has none of its words in the article
        else:
            _pattern_hits(pattern, judge, raw)
    hits: list[_Hit] = []
    for sentence in sorted(raw):
        best: _Hit | None = None
        # Judging only lowers a confidence: once the best judged hit of the sentence
        # reaches the next hit's base, no other hit of the sentence can beat it.
        for base, span, extra in sorted(raw[sentence], key=lambda item: -item[0]):
            if best is not None and base <= best.confidence:
                break
            confidence, qualifiers = judge.judge(ci, sentence, span, extra, base)
            if best is None or confidence > best.confidence:
                best = _Hit(sentence, span[0], span[1], span[2] + extra, confidence, qualifiers)
        assert best is not None
        deep = ci.deep_mentions
        if (
            deep is not None
            and sentence >= doc.lede + deep.after_sentences
            and EVENT_CONFIDENCE <= best.confidence < deep.below
        ):
            best.confidence *= deep.factor
            best.qualifiers += (
                f"deep in the story: sentence {sentence - doc.lede + 1} of the text",
            )
        hits.append(best)
    return hits


def _terms(doc: _Doc, positions: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(doc.words[p] for p in sorted(set(positions))))


def match_article(article: ArticleText, rules: RuleSet) -> list[Match]:
    """The indicators found in `article`, at most one Match per (indicator, theatre).

    Non-events are kept with a low confidence and a qualifier; `Match.is_event` tells
    the detections apart. Pure: the same article and rules always give the same list.
    """
    if len(article.text) > MAX_ARTICLE_CHARS:  # bound the work a hostile item can cause
        article = replace(article, text=article.text[:MAX_ARTICLE_CHARS])
    doc = _Doc(article, rules)
    if rules.actor_terms.isdisjoint(doc.present):
        return []  # no theatre is named: nothing can count (most world news)
    candidates = _candidates(doc, rules)
    if not candidates:
        return []
    judge = _Judge(doc, rules, article.published_at)
    presence = _presence(doc, rules)
    if not any(p.any_side for p in presence.values()):
        return []

    found: list[tuple[CompiledIndicator, list[_Hit]]] = []
    for indicator_index in sorted(candidates):
        ci = rules.compiled_indicators[indicator_index]
        if not any(presence[t].any_side for t in ci.theatre_ids):
            continue
        found.append((ci, _hits(ci, candidates[indicator_index], doc, judge)))
    _judge_news(found, doc, judge)
    _judge_settings(found, doc, judge)

    matches: list[Match] = []
    for ci, hits in found:
        best: dict[str, _Hit] = {}
        supporting: dict[str, set[int]] = {}
        # the headline or lede names the alliance as the supplier: the whole story's
        alliance_story = (
            ci.alliance_when is not None and not ci.alliance_gate.isdisjoint(doc.present)
        ) and any(
            hit.confidence >= EVENT_CONFIDENCE
            and _is_news_sentence(doc, hit.sentence)
            and judge.spans_in(ci.alliance_when, hit.sentence)
            for hit in hits
        )
        for hit in hits:
            for theatre_id in _theatres_for(
                ci, hit.sentence, doc, presence, judge, alliance_story=alliance_story
            ):
                if hit.confidence >= EVENT_CONFIDENCE:
                    supporting.setdefault(theatre_id, set()).add(hit.sentence)
                current = best.get(theatre_id)
                if (
                    current is None
                    or hit.confidence > current.confidence
                    or (hit.confidence == current.confidence and hit.sentence < current.sentence)
                ):
                    best[theatre_id] = hit
        for theatre_id in sorted(best):
            hit = best[theatre_id]
            confidence = hit.confidence
            others = len(supporting.get(theatre_id, ())) - 1
            if confidence >= EVENT_CONFIDENCE and others > 0:
                confidence = min(1.0, confidence + CORROBORATION_BONUS * others)
            matches.append(
                Match(
                    indicator_id=ci.indicator.id,
                    theatre_id=theatre_id,
                    confidence=round(confidence, 3),
                    evidence=doc.evidence(hit.sentence),
                    terms=_terms(doc, hit.positions),
                    qualifiers=hit.qualifiers,
                )
            )
    return matches
