"""The pattern language of `indicators.yaml` and its compiler.

Owns turning the raw `theatres:` and `indicators:` sections (already parsed from YAML)
into a validated, compiled `RuleSet`: the public `Theatre` and `Indicator` records plus
the compiled patterns, actor lists, an index of patterns by their anchor words, and the
engine-wide vocabulary of non-event cues (negation, hypotheticals, history). Everything
is compiled once here; `matcher` only evaluates.

Validation is strict. Any problem raises `ConfigError` with one line
`"{source}: {key.path}: {problem}"`: unknown keys, wrong types, empty or malformed
patterns, references to theatres that do not exist.

The pattern language (one string per pattern):

    word        the word by its Snowball stem: `cancelled` also matches cancel, cancels
    word*       any word starting with these letters (normalised, >= 3 letters): `отмен*`
    =word       exactly this word form (normalised, not stemmed)
    @actor      any actor of any theatre;  @alliance: any core actor of an alliance
    a b         b right after a (a phrase); hyphenated words are phrases too
    a ..N b     b after a with at most N words between
    a ~N b      a and b in either order with at most N words between
    (a | b c)   a group of alternatives, each a word, phrase or chain
    x & y       x and y in the same sentence, anywhere
    x & !y      ... and no y in that sentence

A pattern may also be written `{match: "...", confidence: 0.4}` to mark weaker
evidence. Non-event checks (negation, hypotheticals, history) are judged around the
first part of a pattern (before the first `&`), so write the event words first.

Must not: read files, print, or evaluate patterns against text (that is `matcher`).

Why one module of this size: the grammar of `indicators.yaml`'s pattern language and its
compiler are one unit (each node type's parsing, checks and compiled form sit together),
compiled by mypyc with the matcher.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from monitor.detect.text import (
    PUNCT_BREAKS,
    SENTENCE_MARKS,
    TOKEN_RE,
    WORD_RE,
    month_number,
    normalize_word,
    stem,
)
from monitor.errors import ConfigError
from monitor.models import Indicator, Theatre

__all__ = [
    "DEFAULT_NON_EVENTS",
    "DEFAULT_PATTERN_CONFIDENCE",
    "MARK_TERM",
    "MONTH_TERM",
    "NON_EVENT_KINDS",
    "PUNCT_TERM",
    "YEAR_TERM",
    "AltNode",
    "ChainNode",
    "CompiledIndicator",
    "CompiledTheatre",
    "Context",
    "Cues",
    "DeepMentions",
    "Lexicon",
    "Node",
    "Pattern",
    "RuleSet",
    "TermNode",
    "compile_ruleset",
]

DEFAULT_PATTERN_CONFIDENCE = 0.85
# Every engine check an indicator may name under `non_events`; without that key an
# indicator gets the default ones. "reversed" (an agreement that broke down) and
# "weapon_type" ("strike drones" are a kind of weapon, not a strike) are opt-in: they
# suit agreements and violence respectively, not every sign.
NON_EVENT_KINDS = (
    "negated",
    "hypothetical",
    "historical",
    "background",
    "reversed",
    "weapon_type",
)
DEFAULT_NON_EVENTS = ("negated", "hypothetical", "historical", "background")
LANGUAGES = ("en", "ru")
MAX_WINDOW = 30
MIN_PREFIX = 3

_THEATRE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_INDICATOR_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_EMAIL_RE = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+$")
_KINDS = ("pair", "alliance")

# ---------------------------------------------------------------------------
# Compiled structures


@dataclass(frozen=True, slots=True)
class TermNode:
    """One word test; `id` indexes the lexicon."""

    id: int
    label: str


@dataclass(frozen=True, slots=True)
class AltNode:
    """Alternatives. Plain one-word options are folded into `terms` (tested as a set);
    the others (phrases and chains) are `options`.

    `needs`: term ids of which at least one must be in a text for any option to match.
    `gates`: each option's rarest word → the options it gates; a text can only match
    the options whose gate word it holds (one set intersection finds them).
    Equal nodes are one object in a rule set (see `Lexicon.share`): the matcher finds
    each once per article, however many patterns hold it.
    """

    terms: frozenset[int]
    options: tuple[ChainNode, ...]
    needs: frozenset[int] = field(compare=False)  # derived from the two above
    gates: Mapping[int, tuple[int, ...]] = field(compare=False)
    gate_terms: frozenset[int] = field(compare=False)


@dataclass(frozen=True, slots=True)
class ChainNode:
    """Items in order; `joins[i]` links item i to item i+1 as (max words between, ordered).

    `needs[i]`: term ids of which at least one must be in a text for item i to match;
    the matcher skips the chain when any of these sets misses the text entirely.
    """

    items: tuple[Node, ...]
    joins: tuple[tuple[int, bool], ...]
    needs: tuple[frozenset[int], ...] = field(compare=False)  # derived from `items`


Node = TermNode | AltNode | ChainNode
N = TypeVar("N", TermNode, AltNode, ChainNode, Node)


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled pattern: required clauses (the first is the event) and exclusions."""

    source: str
    key_path: str
    required: tuple[Node, ...]
    excluded: tuple[Node, ...]
    confidence: float
    anchors: frozenset[int]
    needs: tuple[frozenset[int], ...]  # per required clause: one of these must occur


@dataclass(frozen=True, slots=True)
class Context:
    """An indicator's own non-event context: cue words just before/inside/after a match."""

    name: str
    before: int
    after: int
    factor: float
    node: Node


@dataclass(frozen=True, slots=True)
class CompiledIndicator:
    indicator: Indicator
    theatre_ids: tuple[str, ...]
    one_side: bool
    non_events: frozenset[str]
    patterns: tuple[Pattern, ...]
    exclude: Node | None
    contexts: tuple[Context, ...]
    deep_mentions: DeepMentions | None = None
    # Phrasings that make a hit the alliance's and not a pair's ("Russia handed Tajik
    # border troops weapons": aid from the alliance's leader to a member); when set, a
    # hit whose sentence has none of them counts for pairs only.
    alliance_when: Node | None = None
    alliance_gate: frozenset[int] = frozenset()  # one of these must occur for it


@dataclass(frozen=True, slots=True)
class DeepMentions:
    """Weak evidence deep in a story is its context, not its news ("delegations meet
    regularly" in the fifth paragraph of an analysis): a hit weaker than `below`, in a
    sentence after the title and the first `after_sentences` sentences of the text, has
    its confidence multiplied by `factor`."""

    after_sentences: int
    below: float
    factor: float


@dataclass(frozen=True, slots=True)
class CompiledTheatre:
    """Actors of a theatre. A pair has two `sides`; an alliance one (its core actors)."""

    theatre: Theatre
    sides: tuple[Node, ...]
    disputed: Node | None  # places that by themselves point at the pair's dispute
    members: Node | None  # member states of an alliance (locality only)
    # other states on the pair's borders (a pair): a sign between one side and one of
    # them ("Kyrgyz and Uzbek villagers clashed") is not the pair's
    neighbours: Node | None = None


@dataclass(frozen=True, slots=True)
class Cues:
    """Engine-wide non-event vocabulary (see `_CUE_VOCABULARY`), compiled."""

    negation_particles: Node  # within 3 words before, same clause, or inside the match
    negation_exceptions: Node  # "not only", "no longer", "не только": not negations
    # "ни", "nor" after a negation of their clause: the same negative, not a second one
    negation_correlatives: Node
    denials_before: Node  # "denied (plans to) …", up to 10 words before
    denials_after: Node  # "… were false", up to 6 words after
    denied_reports: Node  # "denied reports that …": anywhere before, same sentence
    # "…, Yerevan denies": a side's denial after another's report contests it, and the
    # report stays a report (not a negation of it)
    party_denials: Node
    # "has no plans to RETURN", "не намерен ВОЗВРАЩАТЬСЯ": refusing to undo a sign affirms it
    denial_exceptions: Node
    conditionals: Node  # "if", "unless", "если": anywhere earlier in the sentence
    # "whether": an indirect question governs its own clause only ("asked WHETHER the
    # exit was near, he said that Armenia would not take part …": the refusal stands)
    indirect_questions: Node
    modals: Node  # "could", "may", "может": within 4 words before, same clause
    modal_exceptions: Node  # "considers IT inappropriate": a stated view, not a modal
    modals_after: Node  # "… are not ruled out", "… не исключены": just after
    would: Node  # "would": hypothetical unless reported speech ("said it would")
    reporting: Node  # "said", "announced": makes a later "would" a reported future
    questions_after: Node  # "ли" right after the match: "отменят ли …"
    presupposing_questions: Node  # "why …?", "почему …?": the question takes the event as given
    history: Node  # "last year", "years ago", "в прошлом году", "напомним"
    # "the anniversary OF THE CEASEFIRE", "годовщина ПЕРЕМИРИЯ": dates the match it names
    # (its complement, a few words after it), not the sentence it stands in
    anniversaries: Node
    this_year: Node  # "this year", "этого года": a month named in the sentence is this year's
    year_documents: Node  # "maps of 1927", "документы 1924 года": the year dates a paper
    # Background framing: a recent event recalled as the setting of today's news.
    background_frames: Node  # "last week", "earlier this year", "ранее": before, after, opening
    background_relative: Node  # "months after", "comes after", "who fled": before, same clause
    background_close: Node  # "since", "previous", "недавних": right before the match
    background_exceptions: Node  # "followed by", "минувшей ночью": not background
    pluperfect: Node  # "had": an event before the story's time, outside reported speech
    current: Node  # "on Tuesday", "resumed", "again", "вновь": the match is today's news
    # "AFTER the fighting", "В ХОДЕ боев": a sign named as the setting of another sign
    settings: Node
    # In the headline or lede: the article looks back ("anniversary", "two years on",
    # "вспоминают погибших"); signs in its body are its history, not its news.
    retrospective: Node
    # Opening a headline: an aftermath piece ("After the September war, …", "Аналитика:
    # после войны …") or an opinion ("Opinion:", "Мнение:"): read as a look back too.
    # Not "Interview:": an official's interview is where news is often announced.
    retrospective_openings: Node
    # Opening a headline that is a question: an essay ("Could …?", "What if …?",
    # "Выйдет ли …?"), read as a look back too
    speculative_questions: Node
    renewal: Node  # "today", "again", "resumed", "вновь": news even in a look back
    reversal: Node  # "…, but it broke down", "но оно было нарушено": after the match
    weapon_types: Node  # "strike drones", "ударные беспилотники": a weapon, not an attack
    # Words of which a text must hold one for a cue group to occur at all (each option's
    # rarest word): the matcher skips a check at once when the text has none.
    background_gate: frozenset[int] = frozenset()
    reversal_gate: frozenset[int] = frozenset()
    gates: Mapping[str, frozenset[int]] = field(default_factory=dict)  # cue name → its gate
    weapon_gate: frozenset[int] = frozenset()


PUNCT_TERM = -1  # pseudo term: a clause-breaking punctuation mark
YEAR_TERM = -2  # pseudo term: a number that may be a year (1900-2099, or "1990s")
MARK_TERM = -3  # pseudo term: a sentence-end candidate (".", "?", a line break…)
MONTH_TERM = -4  # pseudo term: a month name ("October", "апреля"; see `text.month_number`)
# What the matcher puts in place of each line break before splitting a text on white
# space, so that a line break is a chunk of its own (a private-use character: a text
# that holds it alone between spaces reads it as a line break, which only ends a sentence).
LINE_BREAK_CHUNK = "\ue000"
ChunkReading = tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]  # tokens, their term ids
_YEAR_LIKE_RE = re.compile(r"^(?:19|20)\d\d(?:s|-х|х)?$")


class Lexicon:
    """The interned words the rules test, and a cache of what each text word satisfies.

    A term is a stem, an exact normalised form or a prefix. `lookup` maps a token as
    it appears in a text to the ids of every term it satisfies, computing that once
    per distinct token (normalise, stem, probe prefixes) and caching the answer.
    Pseudo terms mark clause punctuation (`PUNCT_TERM`), sentence-end candidates
    (`MARK_TERM`), year-like numbers (`YEAR_TERM`) and month names (`MONTH_TERM`),
    so the matcher learns all of them from the same single lookup.
    """

    _CACHE_LIMIT = 500_000

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}
        self._labels: list[str] = []
        self._stems: dict[str, int] = {}
        self._exact: dict[str, int] = {}
        self._prefixes: dict[str, int] = {}
        self._prefix_lengths: tuple[int, ...] = ()  # the distinct lengths of the prefixes
        self._cache: dict[str, tuple[int, ...]] = {}
        # white-space delimited chunk of a text ("border,", "drills.") → its tokens, and
        # the term ids of each: a text is read with one lookup per chunk
        self._chunks: dict[str, ChunkReading] = {}
        self._nodes: dict[Node, Node] = {}

    def share(self, node: N) -> N:
        """The one compiled node equal to `node` (itself when it is the first)."""
        return self._nodes.setdefault(node, node)  # type: ignore[return-value]

    def intern(self, kind: Literal["stem", "exact", "prefix"], key: str, label: str) -> int:
        found = self._ids.get((kind, key))
        if found is not None:
            return found
        term_id = len(self._labels)
        self._ids[(kind, key)] = term_id
        self._labels.append(label)
        if kind == "stem":
            self._stems[key] = term_id
        elif kind == "exact":
            self._exact[key] = term_id
        else:
            self._prefixes[key] = term_id
            if len(key) not in self._prefix_lengths:
                self._prefix_lengths = tuple(sorted({*self._prefix_lengths, len(key)}))
        self._cache.clear()
        self._chunks.clear()
        return term_id

    def label(self, term_id: int) -> str:
        return self._labels[term_id]

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def cache(self) -> dict[str, tuple[int, ...]]:
        """word → term ids; the matcher reads it directly on its hot path."""
        return self._cache

    @property
    def chunks(self) -> dict[str, ChunkReading]:
        """chunk → (its tokens, the term ids of each), for the chunks seen so far (the
        matcher's hot path)."""
        return self._chunks

    def read_chunk(self, chunk: str) -> ChunkReading:
        """Tokenise one white-space delimited chunk and cache its tokens and their ids.

        The chunk is padded with spaces, so `TOKEN_RE` sees exactly what it would see
        inside a text: a mark at its end is followed by white space, a lone "-" is a dash.
        `LINE_BREAK_CHUNK` stands for a line break (its token is "\n", a mark).
        """
        if chunk == LINE_BREAK_CHUNK:
            tokens: tuple[str, ...] = ("\n",)
        else:
            tokens = tuple(TOKEN_RE.findall(f" {chunk} "))
        if len(self._chunks) >= self._CACHE_LIMIT:
            self._chunks.clear()
        reading = (tokens, tuple(self.lookup(token) for token in tokens))
        self._chunks[chunk] = reading
        return reading

    def lookup(self, word: str) -> tuple[int, ...]:
        """Ids of the terms `word` (as written in a text) satisfies; () for most words."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if word in PUNCT_BREAKS:
            self._cache[word] = (PUNCT_TERM,)
            return self._cache[word]
        if word[0] in SENTENCE_MARKS:
            self._cache[word] = (MARK_TERM,)
            return self._cache[word]
        norm = normalize_word(word)
        found: list[int] = []
        if norm[:1] in ("1", "2") and _YEAR_LIKE_RE.match(norm):
            found.append(YEAR_TERM)
        elif month_number(word):
            found.append(MONTH_TERM)
        stem_id = self._stems.get(stem(norm))
        if stem_id is not None:
            found.append(stem_id)
        exact_id = self._exact.get(norm)
        if exact_id is not None:
            found.append(exact_id)
        for length in self._prefix_lengths:
            if length > len(norm):
                break
            prefix_id = self._prefixes.get(norm[:length])
            if prefix_id is not None:
                found.append(prefix_id)
        result = tuple(sorted(set(found)))
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = result
        return result

    def terms(self) -> Iterator[tuple[str, str, str]]:
        """(kind, key, label) of every term: kind "stem" (key: the stem), "exact" (key:
        the normalised form) or "prefix" (key: the prefix). For diagnostics and the
        benchmark baseline."""
        for (kind, key), term_id in sorted(self._ids.items(), key=lambda item: item[1]):
            yield kind, key, self._labels[term_id]


@dataclass(frozen=True, eq=False)
class RuleSet:
    """Validated theatres and indicators, with everything compiled for the matcher."""

    theatres: Mapping[str, Theatre]
    indicators: Mapping[str, Indicator]
    lexicon: Lexicon
    compiled_theatres: tuple[CompiledTheatre, ...]
    compiled_indicators: tuple[CompiledIndicator, ...]
    # term id → (indicator index, pattern index) of the patterns anchored on it
    anchor_index: Mapping[int, tuple[tuple[int, int], ...]]
    cues: Cues
    source: str = field(default="indicators.yaml")
    anchor_terms: frozenset[int] = field(default=frozenset())  # the keys of anchor_index
    # words of which an article must hold one for any theatre to be named at all
    actor_terms: frozenset[int] = field(default=frozenset())

    def pattern_count(self) -> int:
        return sum(len(ci.patterns) for ci in self.compiled_indicators)


# ---------------------------------------------------------------------------
# Engine-wide cue vocabulary. Written in the pattern language; compiled with the rules.

_CUE_VOCABULARY: dict[str, tuple[str, ...]] = {
    "negation_particles": (
        "not",
        "no",
        "never",
        "neither",
        "nor",
        "without",
        "cannot",
        "(=didn't|=don't|=doesn't|=won't|=wouldn't|=isn't|=aren't|=wasn't|=weren't)",
        "(=hasn't|=haven't|=hadn't|=can't|=couldn't|=shouldn't|=mustn't)",
        "(fail|failed|fails|failing) to",
        "(=не|=нет|=ни|=никогда|=без|=отнюдь)",
        "(=никакой|=никаких|=никакого|=никакие|=никакая|=никакую|=никаким)",
    ),
    "negation_exceptions": (
        "(not|no) (only|longer|least|less|fewer|later|sooner|doubt|far|more than)",
        "never before",
        "without (delay|warning|explanation|provocation|notice)",
        "=не (только|=раз|менее|меньше|позднее|позже|более|=так|исключ*)",
        "=ни (=разу)",
        "=без (предупреждени*|объяснени*|повод*)",
        # "demanded WITHOUT ANY CONDITIONS that …": a demand's terms, not a negation
        "=без ..2 (услови*|предуслови*|промедлени*|отлагательств*)",
        "without ..2 (conditions|preconditions)",
    ),
    "negation_correlatives": ("(=ни|=nor)",),
    "denials_before": (
        "(deny|denies|denied|denial|refut*|dismiss*|debunk*)",
        "(опроверг*|опроверж*|отрица*|отверг*)",
    ),
    "denials_after": (
        "(deny|denies|denied|refut*)",
        "(false|fake|untrue|baseless|groundless|unfounded|fabricat*|disinformation)",
        "not true",
        "(опроверг*|фейк*|ложн*|дезинформац*|=вымысел)",
        "=не соответству*",
        "(=not|=no =longer) (=on =the =agenda|=under =consideration)",
        "=off =the =table",
        "=не (=стоит|=рассматривается|=обсуждается)",
        "(no|not|=никто =не|=не) (plan|plans|planned|intend*|intention|=планирует"
        "|=планируют|=планировал|=планировала|=собирается|=собираются|=намерен|=намерена"
        "|=намерены)",
    ),
    "denial_exceptions": (
        "(no|not|=никто =не|=не) (plan|plans|planned|intend*|intention|=планирует|=планируют"
        "|=намерен|=намерена|=намерены|=собирается|=собираются) ..2 (return*|resum*|rejoin*"
        "|restor*|revers*|возвра*|верну*|вернут*|восстанов*|пересматрива*|отменя*)",
    ),
    # A denial of reports, before the match anywhere in its sentence: "the ministry
    # DENIED REPORTS that its troops had shelled …", "назвало НЕ СООТВЕТСТВУЮЩИМИ
    # ДЕЙСТВИТЕЛЬНОСТИ СООБЩЕНИЯ о том, что …".
    "denied_reports": (
        "(deny|denies|denied|reject*|dismiss*|refut*|debunk*) ..6"
        " (report*|claim*|allegation*|rumour*|rumor*|information|statement*|assertion*)",
        "(опроверг*|отверг*|=не соответству*|=не =соответствующими) ..8"
        " (сообщени*|информаци*|утверждени*|слух*|=данные|заявлени*|публикаци*)",
    ),
    "party_denials": ("@actor ..1 (deny|denies|denied|refut*|опроверг*|отрица*|отверг*)",),
    "conditionals": (
        "(if|unless)",
        "in (case|the event)",
        "(=если|=ежели)",
        "в случае",
        "при условии",
    ),
    "indirect_questions": ("=whether",),
    "modals": (
        "(could|might|may|should|can|possibl*|potential*|=likely|=unlikely|perhaps|maybe)",
        "(threaten|consider|mull|weigh|contemplat*|hypothetical*)",
        "(=risk|=risks|fear|=danger|prospect|spectre|specter)",
        "(=может|=могут|=мог|=могла|=могло|=могли|=сможет|=смогут|=бы|=б)",
        "(возможн*|вероятн*|=наверное|угрожа*|=грозит|=грозят|=грозила|рассматрива*)",
        "(=риск|=риска|=угроза|=угрозу|=угрозы|опасени*|допуска*)",
        "(=future|=eventual|=prospective|=proposed)",
        "(=hope|=hopes|=hoped|=hoping|надежд*|=надеются|=надеется|=надеемся|=надеялись)",
        "(будущ*|=предлагаемый|=предлагаемого|=предлагаемом|=предлагаемая|=предлагаемой)",
        "=якобы",  # "allegedly" in Russian copy signals disbelief; "allegedly" in English does not
        "=не исключ*",
    ),
    "modal_exceptions": (
        "(=considers|=considered|=consider|=considering) (=it|=this|=that|=such)",
    ),
    # Right after the match: "new clashes are NOT RULED OUT", "столкновения НЕ ИСКЛЮЧЕНЫ".
    "modals_after": (
        "(=not =ruled =out|=cannot =be =ruled =out|=not =be =ruled =out)",
        "(=possible|=likely|=probable|=imminent)",
        "=не (=исключены|=исключено|=исключен|=исключена|=исключается|=исключаются)",
        "(=возможны|=возможен|=возможна|=возможно|=вероятны|=вероятно|=неизбежны|=ожидаются)",
    ),
    "would": ("would",),
    "reporting": (
        "(said|says|say|told|tells|announc*|=stated|=added|=noted|report|according|inform*)",
        "(=adding|=noting|=saying|=stressing|=stressed|=insisting|=telling)",
        "(claim|insist|warn|declar*|confirm*|wrote|explain*|promis*|pledg*|expect*)",
    ),
    "questions_after": ("=ли",),
    # A question that opens with one of these takes the event as given: "WHY did Yerevan
    # decide not to host the drills?" is no hypothetical.
    "presupposing_questions": ("(=why|=почему|=зачем|=отчего)",),
    "history": (
        "last year",
        "(year|years|decade|decades|month|months) ago",
        "in the past",
        "back in",
        "over the years",
        "at the time",
        "soviet (times|era|period)",
        "(=прошлом|=прошлого) =году",
        "прошлогодн*",
        "(=лет|=года|=год|=десятилетия|=десятилетий|=месяца|=месяцев) =назад",
        "(=советское|=советские) (=время|=времена)",
        "в свое время",
        "(=previous|=past|=earlier|=prior|=recent) (=years|=decades)",
        "(=прежние|=прошлые|=предыдущие|=минувшие|=прошедшие|=последние) (=годы|=десятилетия)",
        "(=напомним|=напомню|=напоминаем)",
        "=for ..2 (=decades|=years)",
        "(=for|=throughout) (=most =of|=much =of) ..3 (=history|=existence|=independence)",
        "(=большую =часть|=на =протяжении|=за =всю) ..3 (истори*|независимост*|существовани*)",
        "(=на =протяжении|=в =течение) ..2 (десятилети*|=лет)",
        "(=десятилетиями|=годами)",
        "(=as =a =reminder|=it =will =be =recalled)",
    ),
    "anniversaries": ("(anniversar*|годовщин*|=юбилей|=юбилея|=юбилею)",),
    "this_year": ("=this =year", "(=этого|=текущего|=сего) =года", "=в =этом =году"),
    # Papers a year may belong to: "maps of 1927", "1920s documents", "документам
    # 1924-1927 годов". Such a year dates the paper, not the event.
    "year_documents": (
        "(map|maps|document*|treaty|treaties|agreement*|decree*|census*|archive*|record*"
        "|protocol*|accord*|charter*|resolution*)",
        "(карт*|документ*|договор*|соглашени*|указ*|постановлени*|перепис*|архив*|протокол*"
        "|решени*|резолюц*)",
    ),
    # A past time frame: governs a match when it comes within a few words before it in
    # the same clause, opens the sentence ("Earlier this year, …"), or follows the match
    # closely ("the clashes last week").
    "background_frames": (
        "=last (=week|=weekend|=month)",
        "(=previous|=prior|=past) (=week|=weekend|=month)",
        "(=earlier|=previously|=formerly)",
        "=earlier (=this|=in =the) (=week|=month|=year)",
        "(=на =прошлой|=на =минувшей|=на =прошедшей|=на =позапрошлой) =неделе",
        "(=в =прошлом|=в =минувшем|=в =прошедшем|=в =позапрошлом) =месяце",
        "=на (=прошлых|=минувших|=прошедших) =выходных",
        "(=ранее|=прежде)",
        "(=тогда|тогдашн*)",
        "(=days|=weeks|=months|=years|=day|=week|=month|=year) =later",
        "(=днями|=неделями|=месяцами|=годами) =позже",
        "=in =the (=days|=weeks|=months|=years) =that =followed",
        "(=over|=during) =the (=summer|=spring|=winter|=autumn)",
        "(=в =последующие|=в =следующие) (=дни|=недели|=месяцы|=годы)",
        # a recap of the time since an earlier event: "Since then, Yerevan has boycotted
        # …", "In the months since, both states have bought …", "С тех пор …"
        "(=since =then|=ever =since)",
        "=in =the (=days|=weeks|=months|=years) =since",
        "(=с =тех =пор|=с =того =времени|=за =прошедшие (=месяцы|=годы|=недели))",
    ),
    # A relative past clause whose object is the match: "six months AFTER deadly
    # fighting", "the purchase COMES weeks AFTER…", "residents WHO FLED the fighting".
    # Bare "after"/"после" is not enough: "killed after troops opened fire" is news.
    "background_relative": (
        "(day|week|month|year|decade) (=after|=since|=following|=before)",
        "(=comes|=came|=coming|=come) ..4 (=after|=following)",
        "(=followed|=follows)",
        "(=wake|=aftermath|=heels) =of",
        "(=who|=that) ..2 (=fled|=escaped)",
        "(=displaced|=uprooted) =by",
        "(=дней|=дня|=день|=недель|=недели|=неделю|=неделя|=месяцев|=месяца|=месяц) (=после|=спустя)",
        "(=лет|=года|=год|=полгода|=полугода) (=после|=спустя)",
        "=через ..4 =после",
        "(=на =фоне|=against =the =backdrop =of)",
        "(бежавш*|покинувш*)",
        "(=which|=that) (=began|=started|=erupted|=escalated|=intensified|=grew) ..2"
        " (=after|=since|=following)",
        "(начавш*|развернувш*|усилившейся|усилившаяся|возникш*|разгоревш*) ..2 (=после|=с)",
        "(=последовал|=последовала|=последовало|=последовали|=последовавший) =за",
    ),
    # Right before the match (three words at most): "SINCE the clashes", "PREVIOUS
    # fighting", "в результате НЕДАВНИХ боев".
    "background_close": (
        "(=since|=previous|=prior|=earlier|=former|=recent)",
        "(=after|=following) (=deadly|=bloody|=fierce|=heavy|=recent|=last)",
        "(=прошлых|=прошлые|=прошлого|=прошлой|=прошлым|=прошлыми|=прошлая|=прошлый|=прошлую)",
        "(=прошедших|=прошедшие|=прошедшего|=прошедшей|=прошедшим|=прошедшими)",
        "(=минувших|=минувшие|=минувшего|=минувшей|=минувшим|=минувшими)",
        "(недавн*|прежн*|предыдущ*)",
        "=с (=момента|=времени|=тех)",
        # a distal demonstrative points back at an event told before: "THOSE purchases",
        # "в ходе ТЕХ событий"
        "(=those|=тех|=те|=теми)",
        "(=during|=in) =those (=events|=days|=battles|=clashes)",
        "(=в =ходе|=во =время) =тех (=событий|=дней|=боев|=столкновений)",
    ),
    "pluperfect": ("(=had|=hadn't)",),
    # A background cue inside one of these is not one: "followed BY", "said EARLIER".
    "background_exceptions": (
        "(=followed|=follows) (=by|=up|=from)",
        "=earlier (=than|=report|=reports|=statement|=statements)",
        "(=said|=says|=told|=reported|=announced|=confirmed) =earlier",
        "=recent (=days|=hours|=weeks)",
        "(=прошлой|=минувшей|=прошедшей) (=ночью|=ночи)",
        "(=минувшие|=прошедшие|=минувших|=прошедших|=последние) (=сутки|=суток)",
        "(=недавно|=ранее|=прежде) (=сегодня|=утром|=днем|=вечером|=ночью)",
    ),
    # Just before a sign, in a sentence whose news is another sign: the time or setting
    # of that news ("agreed a ceasefire AFTER this week's FIGHTING", "ПОСЛЕ БОЕВ").
    "settings": (
        "(=after|=following|=during|=amid|=since|=before)",
        "(=после|=во =время|=в =ходе|=на =фоне|=по =итогам|=вслед =за|=до)",
    ),
    # Anywhere in the match's own clause, these make it today's news again: a day of
    # this week, or a renewal ("fighting RESUMED days after the truce").
    "current": (
        "(=today|=tonight|=overnight|=yesterday)",
        "=this (=morning|=afternoon|=evening|=week)",
        "(=monday|=tuesday|=wednesday|=thursday|=friday|=saturday|=sunday)",
        "(resum*|renew*|=again|=fresh|=continued|=continues|=continuing|=despite|reignit*)",
        "(=сегодня|=вчера|=накануне|=утром|=днем|=вечером|=ночью)",
        "(=понедельник|=вторник|=среду|=четверг|=пятницу|=субботу|=воскресенье)",
        "(=вновь|=снова|=опять|возобнов*|продолжа*|продолжил*|=несмотря)",
    ),
    # In a headline or lede, these make the whole article a look back: an anniversary,
    # a commemoration, "two years on", "lessons of", "год спустя", "вспоминают погибших".
    # The signs the body recounts are then its background, unless their own sentence
    # says they are today's ("fighting resumed on Tuesday").
    "retrospective": (
        "(anniversar*|commemorat*|remembranc*|=mourns|=mourn|=mourning|=remembers"
        "|=remembering|=remember)",
        "(=year|=years|=decade|=decades) (=on|=later|=into)",
        "(=year|=years|=months|=decade|=decades) =since",
        "(=год|=года|=лет|=месяц|=месяца|=месяцев|=полгода) =спустя",
        "(=looking|=look|=looks) =back",
        "(=lessons|=legacy) =of",
        "(годовщин*|вспомина*|вспомнил*|=почтили|=почтил|=почтит|=помнят|памят*|=уроки|=урок)",
    ),
    "retrospective_openings": (
        "(=after|=since) ..2 (=war|=wars|=conflict|=fighting|=clashes|=hostilities)",
        "(=после|=спустя) ..2 (=войны|=войн|=боев|=конфликта|=столкновений|=боевых)",
        "(=opinion|=op-ed|=oped|=commentary|=column|=viewpoint)",
        "(=мнение|=колонка|=точка =зрения)",
        "(=book =review|=рецензия)",
    ),
    "speculative_questions": (
        "=what =if",
        "(=could|=can|=will|=would|=is|=are|=should|=does|=do|=has|=have|=was|=were)",
        "(=что =если|=что =будет)",
        "=ли",
    ),
    # In an article that looks back, only these keep a sign in its body news: it
    # happened today, yesterday or on a day of this week, or it is a renewal ("fighting
    # RESUMED", "вновь"); not a part of a day ("вечером 14 сентября" may be years ago).
    "renewal": (
        "(=today|=tonight|=yesterday)",
        "=this (=morning|=afternoon|=evening|=week)",
        "(=monday|=tuesday|=wednesday|=thursday|=friday|=saturday|=sunday)",
        "(=понедельник|=вторник|=среду|=четверг|=пятницу|=субботу|=воскресенье)",
        "(resum*|renew*|=again|=fresh|reignit*)",
        "(=сегодня|=вчера|=накануне)",
        "(=вновь|=снова|=опять|возобнов*)",
    ),
    # A contrast or relative clause after an agreement saying that it failed.
    "reversal": (
        "(=but|=however|=yet|=though|=although|=which|=that) ..4"
        " (=collapsed|=collapses|=broke =down|=breaks =down|=fell =apart|=fell =through"
        "|=unravelled|=unraveled|=did =not =hold|=didn't =hold|=failed|=violated|=breached"
        "|=shattered|=crumbled|=revoked|=reversed|=ignored)",
        "=only =to (=collapse|=break =down|=fall =apart|=unravel|=be =violated|=be =broken)",
        "(=но|=однако|=который|=которое|=которая|=которые|=которого|=которую) ..4"
        " (=нарушено|=нарушен|=нарушена|=нарушены|=нарушалось|=нарушался|=нарушалась"
        "|=нарушались|=нарушили|=нарушила|=нарушил|сорвал*|=рухнуло|=рухнул|=рухнула"
        "|=рухнули|провалил*|развалил*|=не продержал*|=не соблюдал*|=не =соблюдается)",
    ),
    # A modifier naming a kind of weapon: the hit is a weapon when its event word is
    # the modifier ("STRIKE drones", "УДАРНЫЕ беспилотники"), not when it is the head
    # ("drone STRIKE", "удар беспилотника").
    "weapon_types": (
        "(=strike|=attack|=combat|=assault|=kamikaze|=loitering|=suicide)"
        " (drone|uav|ucav|helicopt*|aircraft|jet|plane|warplan*|munit*|boat|vehicl*|system)",
        "(ударн*|боев*|штурмов*|атакующ*|барражирующ*)"
        " (беспилотник*|дрон*|=бпла|вертолет*|самолет*|авиац*|комплекс*|катер*|машин*)",
    ),
}


# Words too common to anchor a pattern on (a pattern is indexed by its rarest words).
def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_COMMON_WORDS = _word_set(
    """the a an of to in on at by for with from and or not no as is was be that this
    it its said says will has have had were are their his her they he she which who
    after under over part point act held hold first open re de up out back off down
    border frontier military armed army forces troops government president minister
    в на с по о от до из за и или не ни что как это его ее их к у для при под над
    границ пограничн военн"""
)

# ---------------------------------------------------------------------------
# Errors and type checks


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int | float):
        return repr(value)
    return type(value).__name__


class _Errors:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, problem: str) -> ConfigError:
        one_line = " ".join(f"{self.source}: {path}: {problem}".split())
        return ConfigError(one_line)

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"keys must be strings, got {_describe(key)}")
        return cast(Mapping[str, Any], value)

    def keys(
        self,
        value: Mapping[str, Any],
        path: str,
        *,
        required: Sequence[str] = (),
        optional: Sequence[str] = (),
    ) -> None:
        allowed = set(required) | set(optional)
        for key in value:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(f"{path}.{key}", f"unknown key (expected one of: {expected})")
        for key in required:
            if key not in value:
                raise self.fail(path, f"missing required key '{key}'")

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_describe(value)}")
        if not value.strip():
            raise self.fail(path, "must not be empty")
        return value.strip()

    def number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"expected a number, got {_describe(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(path, f"expected a finite number, got {_describe(value)}")
        return number

    def fraction(self, value: object, path: str) -> float:
        """A number from 0 to 1 (a confidence or a multiplier of one)."""
        number = self.number(value, path)
        if not 0.0 <= number <= 1.0:
            raise self.fail(path, f"must be between 0 and 1, got {number:g}")
        return number

    def integer(self, value: object, path: str, *, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {_describe(value)}")
        if not low <= value <= high:
            raise self.fail(path, f"must be between {low} and {high}, got {value}")
        return value

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_describe(value)}")
        return value

    def string_list(self, value: object, path: str, *, allow_empty: bool = False) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_describe(value)}")
        if not value and not allow_empty:
            raise self.fail(path, "must not be empty")
        return [self.string(item, f"{path}[{index}]") for index, item in enumerate(value)]


# ---------------------------------------------------------------------------
# The pattern parser

_LEX_RE = re.compile(
    r"(?P<space>\s+)|(?P<open>\()|(?P<close>\))|(?P<bar>\|)|(?P<and>&)|(?P<not>!)"
    r"|\.\.(?P<gap>\d+)|~(?P<near>\d+)|(?P<word>[^\s()|&!~]+)|(?P<bad>.)"
)


class _PatternError(Exception):
    """A problem in one pattern string; turned into a ConfigError with its key path."""


@dataclass(slots=True)
class _Lexeme:
    kind: str
    text: str
    value: int = 0


def _lex(text: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    for found in _LEX_RE.finditer(text):
        kind = found.lastgroup or "bad"
        if kind == "space":
            continue
        if kind == "bad":
            raise _PatternError(f"unexpected {found.group()!r}")
        if kind in ("gap", "near"):
            number = int(found.group(kind))
            if number > MAX_WINDOW:
                raise _PatternError(f"window {found.group()!r} is wider than {MAX_WINDOW} words")
            lexemes.append(_Lexeme(kind, found.group(), number))
        else:
            lexemes.append(_Lexeme(kind, found.group()))
    return lexemes


class _Parser:
    """Recursive descent over the lexemes of one pattern (grammar in the module doc)."""

    def __init__(self, text: str, lexicon: Lexicon, macros: Mapping[str, Node]) -> None:
        self.lexemes = _lex(text)
        self.index = 0
        self.lexicon = lexicon
        self.macros = macros

    def peek(self) -> _Lexeme | None:
        return self.lexemes[self.index] if self.index < len(self.lexemes) else None

    def take(self, kind: str) -> bool:
        nxt = self.peek()
        if nxt is not None and nxt.kind == kind:
            self.index += 1
            return True
        return False

    def parse_pattern(self) -> tuple[tuple[Node, ...], tuple[Node, ...]]:
        if not self.lexemes:
            raise _PatternError("empty pattern")
        required: list[Node] = []
        excluded: list[Node] = []
        while True:
            negated = self.take("not")
            clause = self.parse_chain()
            (excluded if negated else required).append(clause)
            if not self.take("and"):
                break
        leftover = self.peek()
        if leftover is not None:
            if leftover.kind == "close":
                raise _PatternError("unbalanced parentheses: ')' without '('")
            raise _PatternError(f"unexpected {leftover.text!r}")
        if not required:
            raise _PatternError("a pattern needs at least one part that is not excluded (!)")
        return tuple(required), tuple(excluded)

    def parse_single_chain(self) -> Node:
        """An actor or cue: one chain, no `&` or `!`."""
        if not self.lexemes:
            raise _PatternError("empty pattern")
        node = self.parse_chain()
        leftover = self.peek()
        if leftover is not None:
            if leftover.kind == "close":
                raise _PatternError("unbalanced parentheses: ')' without '('")
            raise _PatternError(f"unexpected {leftover.text!r} (only a word, phrase or group)")
        return node

    def parse_chain(self) -> Node:
        items = [self.parse_element()]
        joins: list[tuple[int, bool]] = []
        while True:
            nxt = self.peek()
            if nxt is None or nxt.kind in ("and", "close", "bar"):
                break
            if nxt.kind in ("gap", "near"):
                self.index += 1
                joins.append((nxt.value, nxt.kind == "gap"))
                after = self.peek()
                if after is None or after.kind in ("and", "close", "bar", "gap", "near"):
                    raise _PatternError(f"{nxt.text!r} needs a word on both sides")
            else:
                joins.append((0, True))
            items.append(self.parse_element())
        return _make_chain(items, joins, self.lexicon)

    def parse_element(self) -> Node:
        nxt = self.peek()
        if nxt is None:
            raise _PatternError("pattern ends where a word was expected")
        if nxt.kind == "open":
            self.index += 1
            if self.take("close"):
                raise _PatternError("empty group '()'")
            options = [self.parse_chain()]
            while self.take("bar"):
                options.append(self.parse_chain())
            if not self.take("close"):
                raise _PatternError("unbalanced parentheses: '(' is never closed")
            return _make_alt(options, self.lexicon)
        if nxt.kind == "word":
            self.index += 1
            return self.word_node(nxt.text)
        if nxt.kind in ("gap", "near"):
            raise _PatternError(f"{nxt.text!r} needs a word on both sides")
        if nxt.kind == "close":
            raise _PatternError("unbalanced parentheses: ')' without '('")
        if nxt.kind == "bar":
            raise _PatternError("'|' outside a group or with nothing before it")
        raise _PatternError(f"unexpected {nxt.text!r}")

    def word_node(self, written: str) -> Node:
        if written.startswith("@"):
            macro = self.macros.get(written[1:])
            if macro is None:
                known = ", ".join(f"@{name}" for name in sorted(self.macros))
                raise _PatternError(f"unknown name {written!r} (known: {known})")
            return macro
        kind: Literal["stem", "exact", "prefix"] = "stem"
        body = written
        if body.startswith("="):
            kind, body = "exact", body[1:]
        if body.endswith("*"):
            if kind == "exact":
                raise _PatternError(f"{written!r} cannot be both exact (=) and a prefix (*)")
            kind, body = "prefix", body[:-1]
        if "*" in body or "=" in body or "@" in body:
            raise _PatternError(f"misplaced '*', '=' or '@' in {written!r}")
        parts = [normalize_word(part) for part in WORD_RE.findall(body)]
        parts = [part for part in parts if part]
        if not parts:
            raise _PatternError(f"{written!r} has no letters or digits")
        nodes: list[Node] = []
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if kind == "prefix" and last:
                if len(part) < MIN_PREFIX:
                    raise _PatternError(
                        f"prefix {written!r} is too short (at least {MIN_PREFIX} letters)"
                    )
                nodes.append(TermNode(self.lexicon.intern("prefix", part, part + "*"), part + "*"))
            elif kind == "exact":
                nodes.append(TermNode(self.lexicon.intern("exact", part, "=" + part), "=" + part))
            else:
                key = stem(part)
                nodes.append(TermNode(self.lexicon.intern("stem", key, part), part))
        return _make_chain(nodes, [(0, True)] * (len(nodes) - 1), self.lexicon)


def _needs(node: Node) -> frozenset[int]:
    """Term ids of which at least one must occur for `node` to match (no cost choice)."""
    if isinstance(node, TermNode):
        return frozenset((node.id,))
    if isinstance(node, AltNode):
        return node.needs
    return min(node.needs, key=len)


def _make_chain(items: list[Node], joins: list[tuple[int, bool]], lexicon: Lexicon) -> Node:
    if len(items) == 1:
        return lexicon.share(items[0])
    return lexicon.share(
        ChainNode(tuple(items), tuple(joins), tuple(_needs(item) for item in items))
    )


def _make_alt(options: list[Node], lexicon: Lexicon) -> Node:
    if len(options) == 1:
        return lexicon.share(options[0])
    terms: set[int] = set()
    others: list[ChainNode] = []
    for option in options:
        if isinstance(option, TermNode):
            terms.add(option.id)
        elif isinstance(option, AltNode):
            terms |= option.terms
            others.extend(option.options)
        else:
            others.append(option)
    needs = set(terms)
    gates: dict[int, list[int]] = {}
    for number, other in enumerate(others):
        needs |= _needs(other)
        rarest = min(other.needs, key=lambda need: _cost(need, lexicon))
        for term_id in rarest:
            gates.setdefault(term_id, []).append(number)
    return lexicon.share(
        AltNode(
            frozenset(terms),
            tuple(others),
            frozenset(needs),
            MappingProxyType({term_id: tuple(numbers) for term_id, numbers in gates.items()}),
            frozenset(gates),
        )
    )


def _gate(node: Node) -> frozenset[int]:
    """Term ids of which one must occur for `node` to match: its one-word options and
    the gate word (rarest part) of each of its other options."""
    if isinstance(node, TermNode):
        return frozenset((node.id,))
    if isinstance(node, AltNode):
        return node.terms | node.gate_terms
    return _needs(node)


def _anchors(node: Node, lexicon: Lexicon) -> frozenset[int]:
    """Term ids of which at least one must occur for `node` to match anywhere."""
    if isinstance(node, TermNode):
        return frozenset((node.id,))
    if isinstance(node, AltNode):
        found = set(node.terms)
        for option in node.options:
            found |= _anchors(option, lexicon)
        return frozenset(found)
    return min((_anchors(item, lexicon) for item in node.items), key=lambda a: _cost(a, lexicon))


def _cost(anchors: frozenset[int], lexicon: Lexicon) -> int:
    return sum(25 if lexicon.label(a).strip("=*") in _COMMON_WORDS else 1 for a in anchors)


# ---------------------------------------------------------------------------
# Compilation


class _Compiler:
    def __init__(self, source: str) -> None:
        self.errors = _Errors(source)
        self.lexicon = Lexicon()
        self.macros: dict[str, Node] = {}

    def node(self, text: str, path: str) -> Node:
        try:
            return _Parser(text, self.lexicon, self.macros).parse_single_chain()
        except _PatternError as exc:
            raise self.errors.fail(path, f"{exc} in {text!r}") from None

    def pattern(self, raw: object, path: str) -> Pattern:
        confidence = DEFAULT_PATTERN_CONFIDENCE
        if isinstance(raw, Mapping):
            entry = self.errors.mapping(raw, path)
            self.errors.keys(entry, path, required=("match",), optional=("confidence",))
            text = self.errors.string(entry["match"], f"{path}.match")
            if "confidence" in entry:
                confidence = self.errors.number(entry["confidence"], f"{path}.confidence")
                if not 0.0 < confidence <= 1.0:
                    raise self.errors.fail(
                        f"{path}.confidence", f"must be above 0 and at most 1, got {confidence}"
                    )
        elif isinstance(raw, str):
            text = self.errors.string(raw, path)
        else:
            raise self.errors.fail(
                path, f"expected a pattern string or a mapping, got {_describe(raw)}"
            )
        try:
            required, excluded = _Parser(text, self.lexicon, self.macros).parse_pattern()
        except _PatternError as exc:
            raise self.errors.fail(path, f"{exc} in {text!r}") from None
        anchors = min(
            (_anchors(clause, self.lexicon) for clause in required),
            key=lambda a: _cost(a, self.lexicon),
        )
        needs = tuple(_needs(clause) for clause in required)
        return Pattern(text, path, required, excluded, confidence, anchors, needs)

    def word_lists(self, raw: object, path: str, *, allow_empty: bool = False) -> Node | None:
        """A `{en: [...], ru: [...]}` list of words/phrases as one alternative node."""
        entry = self.errors.mapping(raw, path)
        self.errors.keys(entry, path, optional=LANGUAGES)
        nodes: list[Node] = []
        for language in LANGUAGES:
            if language in entry:
                items = self.errors.string_list(
                    entry[language], f"{path}.{language}", allow_empty=True
                )
                for index, text in enumerate(items):
                    nodes.append(self.node(text, f"{path}.{language}[{index}]"))
        if not nodes:
            if allow_empty:
                return None
            raise self.errors.fail(path, "needs at least one word in 'en' or 'ru'")
        return _make_alt(nodes, self.lexicon)

    # -- theatres -----------------------------------------------------------

    def theatres(self, raw: object) -> tuple[CompiledTheatre, ...]:
        section = self.errors.mapping(raw, "theatres")
        if not section:
            raise self.errors.fail("theatres", "at least one theatre is required")
        compiled = []
        for theatre_id, body in section.items():
            compiled.append(self.theatre(theatre_id, body, f"theatres.{theatre_id}"))
        return tuple(compiled)

    def theatre(self, theatre_id: str, raw: object, path: str) -> CompiledTheatre:
        if not _THEATRE_ID_RE.match(theatre_id):
            raise self.errors.fail(
                path, "a theatre id must be lower-case letters, digits and '-' (like 'kg-tj')"
            )
        entry = self.errors.mapping(raw, path)
        kind = entry.get("kind")
        if kind not in _KINDS:
            if "kind" not in entry:
                raise self.errors.fail(path, "missing required key 'kind'")
            raise self.errors.fail(
                f"{path}.kind", f"expected pair or alliance, got {_describe(kind)}"
            )
        if kind == "pair":
            self.errors.keys(
                entry,
                path,
                required=("name", "kind", "sides"),
                optional=("recipients", "disputed", "neighbours"),
            )
        else:
            self.errors.keys(
                entry,
                path,
                required=("name", "kind", "actors"),
                optional=("recipients", "members"),
            )
        name = self.errors.string(entry["name"], f"{path}.name")
        recipients: tuple[str, ...] = ()
        if "recipients" in entry:
            addresses = self.errors.string_list(
                entry["recipients"], f"{path}.recipients", allow_empty=True
            )
            for index, address in enumerate(addresses):
                if not _EMAIL_RE.match(address):
                    raise self.errors.fail(
                        f"{path}.recipients[{index}]", f"not an email address: {address!r}"
                    )
            recipients = tuple(addresses)
        theatre = Theatre(
            id=theatre_id,
            name=name,
            kind=cast(Literal["pair", "alliance"], kind),
            recipients=recipients,
        )
        if kind == "pair":
            sides_raw = self.errors.mapping(entry["sides"], f"{path}.sides")
            if len(sides_raw) != 2:
                raise self.errors.fail(
                    f"{path}.sides", f"a pair needs exactly 2 sides, got {len(sides_raw)}"
                )
            sides = []
            for side_name, side in sides_raw.items():
                node = self.word_lists(side, f"{path}.sides.{side_name}")
                assert node is not None
                sides.append(node)
            disputed = None
            if "disputed" in entry:
                disputed = self.word_lists(entry["disputed"], f"{path}.disputed", allow_empty=True)
            neighbours = None
            if "neighbours" in entry:
                neighbours = self.word_lists(
                    entry["neighbours"], f"{path}.neighbours", allow_empty=True
                )
            return CompiledTheatre(theatre, tuple(sides), disputed, None, neighbours)
        core = self.word_lists(entry["actors"], f"{path}.actors")
        assert core is not None
        members = None
        if "members" in entry:
            members = self.word_lists(entry["members"], f"{path}.members", allow_empty=True)
        return CompiledTheatre(theatre, (core,), None, members)

    # -- indicators ---------------------------------------------------------

    def indicators(
        self, raw: object, theatres: tuple[CompiledTheatre, ...]
    ) -> tuple[CompiledIndicator, ...]:
        section = self.errors.mapping(raw, "indicators")
        if not section:
            raise self.errors.fail("indicators", "at least one indicator is required")
        return tuple(
            self.indicator(indicator_id, body, f"indicators.{indicator_id}", theatres)
            for indicator_id, body in section.items()
        )

    def indicator(
        self,
        indicator_id: str,
        raw: object,
        path: str,
        theatres: tuple[CompiledTheatre, ...],
    ) -> CompiledIndicator:
        if not _INDICATOR_ID_RE.match(indicator_id):
            raise self.errors.fail(
                path,
                "an indicator id must be lower-case letters, digits and '_' (like 'border_clash')",
            )
        entry = self.errors.mapping(raw, path)
        self.errors.keys(
            entry,
            path,
            required=("description", "weight"),
            optional=(
                "severity",
                "half_life_hours",
                "applies_to",
                "one_side",
                "non_events",
                "exclude",
                "context",
                "deep_mentions",
                "alliance_when",
                *LANGUAGES,
            ),
        )
        description = self.errors.string(entry["description"], f"{path}.description")
        weight = self.errors.number(entry["weight"], f"{path}.weight")
        if weight == 0:
            raise self.errors.fail(f"{path}.weight", "must not be 0 (negative for de-escalation)")
        severity = entry.get("severity", "normal")
        if severity not in ("normal", "critical"):
            raise self.errors.fail(
                f"{path}.severity", f"expected normal or critical, got {_describe(severity)}"
            )
        half_life: float | None = None
        if "half_life_hours" in entry:
            half_life = self.errors.number(entry["half_life_hours"], f"{path}.half_life_hours")
            if half_life <= 0:
                raise self.errors.fail(
                    f"{path}.half_life_hours", f"must be above 0, got {half_life:g}"
                )
        indicator = Indicator(
            id=indicator_id,
            description=description,
            weight=weight,
            severity=cast(Literal["normal", "critical"], severity),
            half_life_hours=half_life,
        )
        theatre_ids = self.applies_to(entry.get("applies_to"), f"{path}.applies_to", theatres)
        one_side = False
        if "one_side" in entry:
            one_side = self.errors.boolean(entry["one_side"], f"{path}.one_side")
        non_events = frozenset(DEFAULT_NON_EVENTS)
        if "non_events" in entry:
            listed = self.errors.string_list(
                entry["non_events"], f"{path}.non_events", allow_empty=True
            )
            for index, kind in enumerate(listed):
                if kind not in NON_EVENT_KINDS:
                    raise self.errors.fail(
                        f"{path}.non_events[{index}]",
                        f"expected one of {', '.join(NON_EVENT_KINDS)}, got {kind!r}",
                    )
            non_events = frozenset(listed)
        exclude = None
        if "exclude" in entry:
            exclude = self.word_lists(entry["exclude"], f"{path}.exclude", allow_empty=True)
        contexts: tuple[Context, ...] = ()
        if "context" in entry:
            contexts = self.contexts(entry["context"], f"{path}.context")
        alliance_when = None
        if "alliance_when" in entry:
            alliance_when = self.word_lists(entry["alliance_when"], f"{path}.alliance_when")
        deep_mentions = None
        if "deep_mentions" in entry:
            deep_mentions = self.deep_mentions(entry["deep_mentions"], f"{path}.deep_mentions")
        patterns: list[Pattern] = []
        for language in LANGUAGES:
            if language not in entry:
                continue
            raw_patterns = entry[language]
            lang_path = f"{path}.{language}"
            if not isinstance(raw_patterns, list):
                raise self.errors.fail(lang_path, f"expected a list, got {_describe(raw_patterns)}")
            for index, raw_pattern in enumerate(raw_patterns):
                patterns.append(self.pattern(raw_pattern, f"{lang_path}[{index}]"))
        if not patterns:
            raise self.errors.fail(path, "needs at least one pattern under 'en' or 'ru'")
        return CompiledIndicator(
            indicator=indicator,
            theatre_ids=theatre_ids,
            one_side=one_side,
            non_events=non_events,
            patterns=tuple(patterns),
            exclude=exclude,
            contexts=contexts,
            deep_mentions=deep_mentions,
            alliance_when=alliance_when,
            alliance_gate=_gate(alliance_when) if alliance_when is not None else frozenset(),
        )

    def deep_mentions(self, raw: object, path: str) -> DeepMentions:
        entry = self.errors.mapping(raw, path)
        self.errors.keys(entry, path, required=("after_sentences", "below", "confidence"))
        after = self.errors.integer(
            entry["after_sentences"], f"{path}.after_sentences", low=0, high=MAX_WINDOW
        )
        below = self.errors.fraction(entry["below"], f"{path}.below")
        factor = self.errors.fraction(entry["confidence"], f"{path}.confidence")
        return DeepMentions(after, below, factor)

    def applies_to(
        self, raw: object, path: str, theatres: tuple[CompiledTheatre, ...]
    ) -> tuple[str, ...]:
        all_ids = [ct.theatre.id for ct in theatres]
        if raw is None:
            return tuple(all_ids)
        names = self.errors.string_list(raw, path)
        chosen: list[str] = []
        for index, name in enumerate(names):
            if name in _KINDS:
                chosen.extend(ct.theatre.id for ct in theatres if ct.theatre.kind == name)
            elif name in all_ids:
                chosen.append(name)
            else:
                raise self.errors.fail(
                    f"{path}[{index}]",
                    f"unknown theatre or kind {name!r} (theatres: {', '.join(sorted(all_ids))};"
                    f" kinds: {', '.join(_KINDS)})",
                )
        unique = tuple(dict.fromkeys(chosen))
        if not unique:
            raise self.errors.fail(path, "names no theatre that exists")
        return unique

    def contexts(self, raw: object, path: str) -> tuple[Context, ...]:
        section = self.errors.mapping(raw, path)
        contexts = []
        for name, body in section.items():
            entry_path = f"{path}.{name}"
            if not _INDICATOR_ID_RE.match(name):
                raise self.errors.fail(
                    entry_path, "a context name must be lower-case letters and '_'"
                )
            entry = self.errors.mapping(body, entry_path)
            self.errors.keys(
                entry, entry_path, optional=("before", "after", "confidence", *LANGUAGES)
            )
            before = self.errors.integer(
                entry.get("before", 0), f"{entry_path}.before", low=0, high=MAX_WINDOW
            )
            after = self.errors.integer(
                entry.get("after", 0), f"{entry_path}.after", low=0, high=MAX_WINDOW
            )
            factor = 0.1
            if "confidence" in entry:
                factor = self.errors.fraction(entry["confidence"], f"{entry_path}.confidence")
            words = {key: entry[key] for key in LANGUAGES if key in entry}
            node = self.word_lists(words, entry_path)
            assert node is not None
            contexts.append(Context(name, before, after, factor, node))
        return tuple(contexts)

    def cues(self) -> Cues:
        compiled: dict[str, Node] = {}
        for name, texts in _CUE_VOCABULARY.items():
            nodes = [self.node(text, f"<cues>.{name}") for text in texts]
            compiled[name] = _make_alt(nodes, self.lexicon)
        background = ("background_frames", "background_relative", "background_close")
        return Cues(
            **compiled,
            background_gate=frozenset().union(*(_gate(compiled[name]) for name in background)),
            reversal_gate=_gate(compiled["reversal"]),
            gates=MappingProxyType({name: _gate(node) for name, node in compiled.items()}),
            weapon_gate=_gate(compiled["weapon_types"]),
        )


def compile_ruleset(
    raw_theatres: object, raw_indicators: object, *, source: str = "indicators.yaml"
) -> RuleSet:
    """Validate and compile the `theatres:` and `indicators:` sections of a config.

    `raw_theatres` and `raw_indicators` are what a YAML loader returned for those keys.
    Raises `ConfigError` with `"{source}: {key.path}: {problem}"` on the first problem.
    """
    compiler = _Compiler(source)
    theatres = compiler.theatres(raw_theatres)
    actor_nodes: list[Node] = []
    alliance_nodes: list[Node] = []
    for ct in theatres:
        actor_nodes.extend(ct.sides)
        for extra in (ct.disputed, ct.members):
            if extra is not None:
                actor_nodes.append(extra)
        if ct.theatre.kind == "alliance":
            alliance_nodes.extend(ct.sides)
    compiler.macros["actor"] = _make_alt(actor_nodes, compiler.lexicon)
    if alliance_nodes:
        compiler.macros["alliance"] = _make_alt(alliance_nodes, compiler.lexicon)
    indicators = compiler.indicators(raw_indicators, theatres)
    cues = compiler.cues()

    anchor_lists: dict[int, list[tuple[int, int]]] = {}
    for indicator_index, ci in enumerate(indicators):
        for pattern_index, pattern in enumerate(ci.patterns):
            for term_id in pattern.anchors:
                anchor_lists.setdefault(term_id, []).append((indicator_index, pattern_index))
    anchor_index = {term_id: tuple(refs) for term_id, refs in anchor_lists.items()}

    return RuleSet(
        theatres=MappingProxyType({ct.theatre.id: ct.theatre for ct in theatres}),
        indicators=MappingProxyType({ci.indicator.id: ci.indicator for ci in indicators}),
        lexicon=compiler.lexicon,
        compiled_theatres=theatres,
        compiled_indicators=indicators,
        anchor_index=MappingProxyType(anchor_index),
        cues=cues,
        source=source,
        anchor_terms=frozenset(anchor_index),
        actor_terms=_needs(compiler.macros["actor"]),
    )
