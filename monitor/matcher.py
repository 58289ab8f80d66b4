"""Find indicators in one article, attribute them to theatres, and keep the evidence.

Owns `match_article`: a pure function of an `ArticleText` and a compiled `RuleSet`.
The article (title as sentence 0, then the body's sentences) is read once: each word
is looked up in the rules' lexicon (cached per distinct word), giving an inverted index
term → positions. Only patterns anchored on a term present in the article are tried,
and only in the sentences where their anchor occurs.

Every hit is then judged for non-events, which are kept with a reduced confidence and
a qualifier saying why:

- other sense: a word of the indicator's `exclude` list in the sentence (or two or more
  of them anywhere in the article: a football report stays a football report);
- the indicator's own `context` cues (e.g. "a protocol to END the fighting");
- negated: "not", "no", "не" just before or inside the match, a denial before it
  ("denied plans to cancel") or after it ("… were false", "не соответствует");
- hypothetical: a conditional earlier in the sentence ("if", "если"), a modal just
  before ("could", "may", "может", "бы"), "would" outside reported speech, a question;
- historical: a year before the article's publication year nearest to the match in
  its sentence, or a phrase like "last year", "years ago", "в прошлом году".

A hit counts for a theatre when the theatre's actors are in the article (for a pair:
both sides, or a disputed place; for an alliance: its own names); `one_side`
indicators need only one side, named in the hit's sentence or the title. When several
theatres qualify, those named in the hit's own sentence win over those named only in
the title, the lede or elsewhere. One Match per (indicator, theatre): the best hit, its
confidence nudged up a little when other sentences confirm it.

Must not: do I/O, read the clock, or compile patterns (that is `rules`).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.models import EVENT_CONFIDENCE, ArticleText, Match
from monitor.rules import AltNode, ChainNode, CompiledIndicator, Node, RuleSet, TermNode
from monitor.text import PUNCT_BREAKS, TOKEN_RE, sentence_spans

__all__ = ["match_article"]

# Confidence multipliers of the engine's non-event checks.
NEGATED_FACTOR = 0.1
HYPOTHETICAL_FACTOR = 0.4
HISTORICAL_FACTOR = 0.2
OTHER_SENSE_FACTOR = 0.0
CORROBORATION_BONUS = 0.05  # per further sentence with event-grade evidence

# Windows, in words.
PARTICLE_WINDOW = 3
DENIAL_BEFORE_WINDOW = 10
DENIAL_AFTER_WINDOW = 6
CONDITIONAL_WINDOW = 15
CONDITIONAL_AFTER_WINDOW = 6  # "would leave the bloc IF it fails to act"
MODAL_WINDOW = 4

Span = tuple[int, int, tuple[int, ...]]  # first word, one past the last, matched words

_YEAR_BEFORE = frozenset(
    ["in", "since", "of", "from", "by", "until", "till", "before", "after", "between", "during", "the", "early", "late", "mid", "summer", "autumn", "winter", "spring", "fall", "and", "to", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "в", "с", "до", "к", "от", "по", "и", "на", "за", "году", "года", "летом", "осенью", "весной", "зимой", "конце", "начале", "середине", "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября", "ноября", "декабря"]
)
_YEAR_AFTER = frozenset(["год", "года", "году", "годах", "годом", "годы", "г", "гг"])

# A wire dateline opening the lede: "BAKU, Azerbaijan, May 17 (Trend) – ", "MOSCOW (AP) – ".
# The place it names is where the story was filed, not an actor of the story.
_DATELINE_RE = re.compile(
    r"^[A-ZА-ЯЁ][A-ZА-ЯЁ'.-]{2,}(?: [A-ZА-ЯЁ][A-ZА-ЯЁ'.-]+)*(?:,| \()[^\n–—]{0,70}? [–—-]{1,2} "
)


class _Doc:
    """An article read once: words, their positions per term, sentences, clauses, years."""

    __slots__ = (
        "bounds",
        "clause_of",
        "has_title",
        "index",
        "lede",
        "sent_of",
        "sentences",
        "title_case",
        "words",
        "years",
    )

    def __init__(self, article: ArticleText, rules: RuleSet) -> None:
        sentences: list[str] = []
        title = " ".join(article.title.split())
        self.has_title = bool(title)
        if title:
            sentences.append(title)
        body = article.text
        for start, end in sentence_spans(body):
            text = body[start:end]
            if len(sentences) == int(self.has_title):
                text = _DATELINE_RE.sub("", text, count=1)
            if len(sentences) == 1 and self.has_title and " ".join(text.split()) == title:
                continue  # a summary that repeats the headline
            sentences.append(text)
        self.sentences = sentences
        self.lede = 1 if self.has_title and len(sentences) > 1 else (0 if sentences else -1)

        lexicon = rules.lexicon
        cache_get = lexicon.cache.get
        lookup = lexicon.lookup
        words: list[str] = []
        clause_of: list[int] = []
        sent_of: list[int] = []
        bounds: list[tuple[int, int]] = []
        index: dict[int, list[int]] = {}
        year_candidates: list[int] = []
        clause = 0
        for sentence_index, text in enumerate(sentences):
            low = len(words)
            clause += 1
            for token in TOKEN_RE.findall(text):
                if token in PUNCT_BREAKS:
                    clause += 1
                    continue
                ids = cache_get(token)
                if ids is None:
                    ids = lookup(token)
                position = len(words)
                words.append(token)
                clause_of.append(clause)
                if ids:
                    for term_id in ids:
                        positions = index.get(term_id)
                        if positions is None:
                            index[term_id] = [position]
                        else:
                            positions.append(position)
                if token[0] in "12" and 4 <= len(token) <= 5:
                    year_candidates.append(position)
            bounds.append((low, len(words)))
            sent_of.extend([sentence_index] * (len(words) - low))
        self.words = words
        self.clause_of = clause_of
        self.sent_of = sent_of
        self.bounds = bounds
        self.index = index
        self.years = self._find_years(year_candidates)
        self.title_case = [self._is_title_case(low, high) for low, high in bounds]

    def _find_years(self, candidates: list[int]) -> dict[int, list[tuple[int, int]]]:
        """sentence → [(position, year)] for the numbers that read as years."""
        years: dict[int, list[tuple[int, int]]] = {}
        words = self.words
        found_positions: set[int] = set()
        for position in candidates:
            token = words[position]
            digits = token[:-1] if token.endswith("s") else token
            if not (digits.isdigit() and len(digits) == 4 and digits[:2] in ("19", "20")):
                continue
            sentence = self.sent_of[position]
            low, high = self.bounds[sentence]
            if token.endswith("s"):
                is_year = True
            else:
                before = words[position - 1].lower() if position > low else ""
                after = words[position + 1].lower() if position + 1 < high else ""
                is_year = (
                    before in _YEAR_BEFORE
                    or after in _YEAR_AFTER
                    or before.isdigit()
                    or (position - 1) in found_positions
                    or position == low
                    or not after.isalpha()
                )
            if is_year:
                found_positions.add(position)
                years.setdefault(sentence, []).append((position, int(digits)))
        return years

    def _is_title_case(self, low: int, high: int) -> bool:
        letters = [w for w in self.words[low:high] if w[0].isalpha()]
        if len(letters) < 3:
            return False
        capitals = sum(1 for w in letters if w[0].isupper())
        return capitals >= 0.6 * len(letters)

    def evidence(self, sentence: int) -> str:
        return " ".join(self.sentences[sentence].split())


# ---------------------------------------------------------------------------
# Evaluating compiled nodes


def _term_spans(positions: list[int], low: int, high: int) -> list[Span]:
    out: list[Span] = []
    i = bisect_left(positions, low)
    count = len(positions)
    while i < count:
        position = positions[i]
        if position >= high:
            break
        out.append((position, position + 1, (position,)))
        i += 1
    return out


def _spans(node: Node, doc: _Doc, low: int, high: int) -> list[Span]:
    """Every occurrence of `node` within words [low, high)."""
    index = doc.index
    if type(node) is TermNode:
        positions = index.get(node.id)
        return _term_spans(positions, low, high) if positions else []
    if type(node) is AltNode:
        out: list[Span] = []
        terms = node.terms
        if len(terms) > len(index):
            for term_id, positions in index.items():
                if term_id in terms:
                    out.extend(_term_spans(positions, low, high))
        else:
            for term_id in terms:
                positions = index.get(term_id)
                if positions:
                    out.extend(_term_spans(positions, low, high))
        for option in node.options:
            out.extend(_spans(option, doc, low, high))
        return out
    assert type(node) is ChainNode
    current = _spans(node.items[0], doc, low, high)
    for item, (gap, ordered) in zip(node.items[1:], node.joins, strict=True):
        if not current:
            return current
        following = _spans(item, doc, low, high)
        joined: list[Span] = []
        for start, end, matched in current:
            for start2, end2, matched2 in following:
                if start2 >= end:
                    if start2 - end <= gap:
                        joined.append((start, end2, matched + matched2))
                elif not ordered and end2 <= start and start - end2 <= gap:
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

    def __init__(self, doc: _Doc, rules: RuleSet, published_year: int | None) -> None:
        self.doc = doc
        self.cues = rules.cues
        self.published_year = published_year
        self._cache: dict[tuple[int, int], list[Span]] = {}
        self._article_other_sense: dict[int, str | None] = {}

    def spans_in(self, node: Node, sentence: int) -> list[Span]:
        key = (id(node), sentence)
        found = self._cache.get(key)
        if found is None:
            low, high = self.doc.bounds[sentence]
            found = _spans(node, self.doc, low, high)
            self._cache[key] = found
        return found

    def text(self, span: Span) -> str:
        return " ".join(self.doc.words[span[0] : span[1]])

    def is_cue_word(self, position: int, sentence: int) -> bool:
        """A cue written with a capital inside a sentence is a name ("May", "Will")."""
        word = self.doc.words[position]
        if not word[0].isupper() or position == self.doc.bounds[sentence][0]:
            return True
        return self.doc.title_case[sentence] or word.isupper()

    def judge(
        self, ci: CompiledIndicator, sentence: int, span: Span, extra: tuple[int, ...], base: float
    ) -> tuple[float, tuple[str, ...]]:
        start, end, _ = span
        matched = set(span[2]) | set(extra)
        factor = base
        qualifiers: list[str] = []

        if ci.exclude is not None:
            other = self._other_sense(ci, sentence)
            if other is not None:
                factor *= OTHER_SENSE_FACTOR
                qualifiers.append(f"other sense: '{other}'")

        # Cues are looked for before the event words (the first clause) and before the
        # earliest matched word, which may belong to a later clause ("failed to AGREE on
        # a peace TREATY").
        starts = (start,) if min(matched) >= start else (start, min(matched))
        clause_of = self.doc.clause_of
        for context in ci.contexts:
            for cue in self.spans_in(context.node, sentence):
                position = cue[0]
                if matched.intersection(cue[2]):
                    continue
                inside = start <= position < end + context.after
                before = any(
                    anchor - context.before <= position < anchor
                    and clause_of[position] == clause_of[anchor]
                    for anchor in starts
                )
                if inside or before:
                    factor *= context.factor
                    qualifiers.append(f"{context.name}: '{self.text(cue)}'")
                    break

        if "negated" in ci.non_events:
            why = self._negation(sentence, starts, end, matched)
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
        return max(0.0, min(1.0, factor)), tuple(qualifiers)

    def _other_sense(self, ci: CompiledIndicator, sentence: int) -> str | None:
        assert ci.exclude is not None
        for span in self.spans_in(ci.exclude, sentence):
            return self.text(span)  # may overlap the match: "heart ATTACK", "drone SHOW"
        key = id(ci)
        if key not in self._article_other_sense:
            doc = self.doc
            found = _spans(ci.exclude, doc, 0, len(doc.words))
            distinct = {self.text(span).lower() for span in found}
            self._article_other_sense[key] = (
                ", ".join(sorted(distinct)[:3]) if len(distinct) >= 2 else None
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
        clause_of = self.doc.clause_of
        for cue in self.spans_in(node, sentence):
            position = cue[0]
            if not low <= position < high or matched.intersection(cue[2]):
                continue
            if same_clause_as is not None and clause_of[position] != clause_of[same_clause_as]:
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
        for low, high, clause in windows:
            for cue in self.spans_in(cues.negation_particles, sentence):
                position = cue[0]
                if not low <= position < high or position in matched or position in exceptions:
                    continue
                if clause is not None and self.doc.clause_of[position] != self.doc.clause_of[clause]:
                    continue
                if self.is_cue_word(position, sentence):
                    return self.text(cue)
        denial = self._cue_in(
            cues.denials_before, sentence, max(first, start - DENIAL_BEFORE_WINDOW), end, matched
        )
        if denial is None:
            denial = self._cue_in(
                cues.denials_after, sentence, end, min(last, end + DENIAL_AFTER_WINDOW), matched
            )
        return self.text(denial) if denial is not None else None

    def _hypothetical(self, sentence: int, start: int, end: int, matched: set[int]) -> str | None:
        cues = self.cues
        first = self.doc.bounds[sentence][0]
        if self.doc.sentences[sentence].rstrip().rstrip("\"'»”").endswith("?"):
            return "question"
        last = self.doc.bounds[sentence][1]
        found = self._cue_in(
            cues.conditionals,
            sentence,
            max(first, start - CONDITIONAL_WINDOW),
            min(last, end + CONDITIONAL_AFTER_WINDOW),
            matched,
        )
        if found is None:
            found = self._cue_in(
                cues.modals, sentence, max(first, start - MODAL_WINDOW), start, matched,
                same_clause_as=start,
            ) or self._cue_in(cues.modals, sentence, start + 1, end, matched)
        if found is None:
            would = self._cue_in(
                cues.would, sentence, max(first, start - MODAL_WINDOW), end, matched
            )
            if would is not None:
                reported = self._cue_in(cues.reporting, sentence, first, would[0], matched)
                if reported is None:
                    found = would
        if found is None:
            found = self._cue_in(cues.questions_after, sentence, end, end + 2, matched)
        return f"'{self.text(found)}'" if found is not None else None

    def _historical(self, sentence: int, start: int, end: int, matched: set[int]) -> str | None:
        first, last = self.doc.bounds[sentence]
        cue = self._cue_in(self.cues.history, sentence, first, last, matched)
        if cue is not None:
            return f"'{self.text(cue)}'"
        if self.published_year is None:
            return None
        years = self.doc.years.get(sentence)
        if not years:
            return None

        def distance(item: tuple[int, int]) -> int:
            position = item[0]
            return start - position if position < start else max(0, position - end + 1)

        position, year = min(years, key=distance)
        if year < self.published_year:
            return f"'{self.doc.words[position]}' before {self.published_year}"
        return None


# ---------------------------------------------------------------------------
# Theatres


@dataclass(slots=True)
class _Presence:
    kind: str
    article: bool  # the theatre counts for this article at all (both sides / core)
    any_side: bool  # at least one side (pairs) or the core (alliances)
    local: set[int]  # sentences naming its actors (an alliance: its own names)
    involved: set[int]  # sentences naming any actor, members of an alliance included


def _presence(doc: _Doc, rules: RuleSet) -> dict[str, _Presence]:
    total = len(doc.words)
    sent_of = doc.sent_of

    def sentences_of(node: Node | None) -> set[int]:
        if node is None:
            return set()
        return {sent_of[span[0]] for span in _spans(node, doc, 0, total)}

    presence: dict[str, _Presence] = {}
    for ct in rules.compiled_theatres:
        if ct.theatre.kind == "pair":
            side_a, side_b = (sentences_of(node) for node in ct.sides)
            disputed = sentences_of(ct.disputed)
            local = side_a | side_b | disputed
            presence[ct.theatre.id] = _Presence(
                "pair",
                bool(side_a and side_b) or bool(disputed),
                bool(local),
                local,
                local,
            )
        else:
            core = sentences_of(ct.sides[0])
            members = sentences_of(ct.members)
            presence[ct.theatre.id] = _Presence(
                "alliance", bool(core), bool(core), core, core | members
            )
    return presence


def _theatres_for(
    ci: CompiledIndicator, sentence: int, doc: _Doc, presence: dict[str, _Presence]
) -> list[str]:
    ranked: list[tuple[int, str]] = []
    for theatre_id in ci.theatre_ids:
        seen = presence[theatre_id]
        if sentence in seen.local:
            tier = 0
        elif doc.has_title and 0 in seen.local:
            tier = 1
        elif doc.lede in seen.local:
            tier = 2
        else:
            tier = 3
        if not seen.article:
            if not (ci.one_side and seen.kind == "pair" and seen.any_side and tier <= 1):
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
# The entry point


def _candidates(doc: _Doc, rules: RuleSet) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    anchor_index = rules.anchor_index
    for term_id in doc.index:
        refs = anchor_index.get(term_id)
        if refs:
            for indicator_index, pattern_index in refs:
                found.setdefault(indicator_index, set()).add(pattern_index)
    return found


def _hits(ci: CompiledIndicator, pattern_ids: Iterable[int], doc: _Doc, judge: _Judge) -> list[_Hit]:
    hits: list[_Hit] = []
    for pattern_index in sorted(pattern_ids):
        pattern = ci.patterns[pattern_index]
        sentences = sorted(
            {doc.sent_of[p] for term_id in pattern.anchors for p in doc.index.get(term_id, ())}
        )
        for sentence in sentences:
            if any(judge.spans_in(node, sentence) for node in pattern.excluded):
                continue
            first = judge.spans_in(pattern.required[0], sentence)
            if not first:
                continue
            extra: tuple[int, ...] = ()
            for clause in pattern.required[1:]:
                found = judge.spans_in(clause, sentence)
                if not found:
                    break
                extra += found[0][2]
            else:
                for span in first:
                    confidence, qualifiers = judge.judge(
                        ci, sentence, span, extra, pattern.confidence
                    )
                    hits.append(
                        _Hit(sentence, span[0], span[1], span[2] + extra, confidence, qualifiers)
                    )
    return hits


def _terms(doc: _Doc, positions: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(doc.words[p] for p in sorted(set(positions))))


def match_article(article: ArticleText, rules: RuleSet) -> list[Match]:
    """The indicators found in `article`, at most one Match per (indicator, theatre).

    Non-events are kept with a low confidence and a qualifier; `Match.is_event` tells
    the detections apart. Pure: the same article and rules always give the same list.
    """
    doc = _Doc(article, rules)
    if not doc.index:
        return []
    candidates = _candidates(doc, rules)
    if not candidates:
        return []
    published_year = article.published_at.year if article.published_at is not None else None
    judge = _Judge(doc, rules, published_year)
    presence = _presence(doc, rules)
    if not any(p.any_side for p in presence.values()):
        return []

    matches: list[Match] = []
    for indicator_index in sorted(candidates):
        ci = rules.compiled_indicators[indicator_index]
        if not any(presence[t].any_side for t in ci.theatre_ids):
            continue
        hits = _hits(ci, candidates[indicator_index], doc, judge)
        best: dict[str, _Hit] = {}
        supporting: dict[str, set[int]] = {}
        for hit in hits:
            for theatre_id in _theatres_for(ci, hit.sentence, doc, presence):
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
