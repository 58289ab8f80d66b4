"""Measure the matcher against a labelled corpus: precision, recall, F1, theatres.

Owns `evaluate` (run the matcher over corpus items and score it) and `render_report`
(a text table or JSON). The CLI wires these into `monitor eval`; nothing here does I/O.

Definitions:

- A label is *detected* in an item when the matcher returns at least one Match of that
  indicator with `is_event` (confidence >= 0.5), for any theatre.
- Per label: true positives, false positives and false negatives count items.
  Precision = tp / (tp + fp), recall = tp / (tp + fn), F1 their harmonic mean. With
  no detections precision counts as 1.0 when nothing was missed (0.0 otherwise), and
  recall likewise with no gold labels. A label with neither gold labels nor detections
  in a subset (e.g. no Russian item is about exercises) is "n/a": left out of that
  subset's macro average, not scored as perfect.
- Macro averages are the unweighted means over the six scored labels
  (`SCORED_LABELS`). Indicators outside them (the extras, such as `military_buildup`)
  have no gold labels: they are reported on their own, with the items they fired on,
  and never enter the averages.
- Theatre attribution accuracy: among items where at least one scored label was
  detected, the share whose detections name exactly the item's gold theatre and no
  other (an item whose gold theatre is `other`, i.e. outside every monitored theatre,
  is always wrong when something was detected). Items with no detection are not
  counted here; their misses already show in recall.
- Items outside the configured theatres: an item whose gold theatre is `other`, or any
  id the loaded rules do not define (a Kyrgyz-Uzbek clash, a Tajik-Afghan incident), is
  about ground the rules do not watch. Its gold labels are not counted (a sign the
  matcher must not report for a watched theatre is no miss); it is a negative for
  the watched theatres, so a detection on it counts as a false alarm and a wrong
  theatre, as on any irrelevant item. These items are also reported on their own
  (`EvalReport.outside`): how many, how many carry signs, what the matcher said.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from tabulate import tabulate

from monitor.detect.matcher import match_article
from monitor.detect.rules import RuleSet
from monitor.lab.corpus import CorpusItem
from monitor.models import Match

__all__ = [
    "SCORED_LABELS",
    "TARGET_LABEL_F1",
    "TARGET_MACRO_F1",
    "TARGET_THEATRE_ACCURACY",
    "Case",
    "EvalReport",
    "LabelScore",
    "OutsideItem",
    "Scores",
    "evaluate",
    "fail_under_message",
    "render_report",
]

SCORED_LABELS = (
    "exercise_cancellation",
    "territorial_claim",
    "arms_delivery",
    "border_clash",
    "alliance_withdrawal",
    "de_escalation",
)
TARGET_MACRO_F1 = 0.90
TARGET_LABEL_F1 = 0.80
TARGET_THEATRE_ACCURACY = 0.90


@dataclass(frozen=True, slots=True)
class LabelScore:
    label: str
    tp: int
    fp: int
    fn: int

    @property
    def is_scored(self) -> bool:
        return self.tp + self.fp + self.fn > 0

    @property
    def precision(self) -> float | None:
        if not self.is_scored:
            return None
        if self.tp + self.fp == 0:
            return 1.0 if self.fn == 0 else 0.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        if not self.is_scored:
            return None
        if self.tp + self.fn == 0:
            return 1.0 if self.fp == 0 else 0.0
        return self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        precision, recall = self.precision, self.recall
        if precision is None or recall is None:
            return None
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


@dataclass(frozen=True, slots=True)
class Scores:
    """Scores over one set of items (all of them, or one language)."""

    items: int
    labels: tuple[LabelScore, ...]
    theatre_correct: int
    theatre_total: int
    outside_items: int = 0  # items whose gold theatre is not configured (counted in `items`)
    outside_with_signs: int = 0  # ... of which carry gold labels (not counted as misses)

    @property
    def macro_precision(self) -> float | None:
        return _mean([score.precision for score in self.labels])

    @property
    def macro_recall(self) -> float | None:
        return _mean([score.recall for score in self.labels])

    @property
    def macro_f1(self) -> float | None:
        return _mean([score.f1 for score in self.labels])

    @property
    def theatre_accuracy(self) -> float | None:
        if self.theatre_total == 0:
            return None
        return self.theatre_correct / self.theatre_total

    def label(self, label: str) -> LabelScore:
        for score in self.labels:
            if score.label == label:
                return score
        raise KeyError(label)

    def meets_targets(self) -> bool:
        macro = self.macro_f1
        theatre = self.theatre_accuracy
        lowest = [score.f1 for score in self.labels if score.f1 is not None]
        return (
            macro is not None
            and macro >= TARGET_MACRO_F1
            and all(f1 >= TARGET_LABEL_F1 for f1 in lowest)
            and (theatre is None or theatre >= TARGET_THEATRE_ACCURACY)
        )


@dataclass(frozen=True, slots=True)
class Case:
    """One miss, false alarm or wrong theatre, with what the matcher saw."""

    item_id: str
    lang: str
    label: str
    gold_theatre: str
    detected_theatres: tuple[str, ...]
    title: str
    evidence: str  # the best evidence sentence, "" when nothing matched at all
    confidence: float | None
    qualifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OutsideItem:
    """An item whose gold theatre the rules do not watch, and what the matcher said."""

    item_id: str
    lang: str
    gold_theatre: str
    gold_labels: tuple[str, ...]  # as written; not counted in the per-label figures
    detected: tuple[tuple[str, str], ...]  # (scored label, theatre) of each detection
    title: str

    @property
    def is_flagged(self) -> bool:
        return bool(self.detected)


@dataclass(frozen=True, slots=True)
class EvalReport:
    overall: Scores
    by_language: Mapping[str, Scores]
    extras: Mapping[str, tuple[str, ...]]  # extra indicator → ids of items it fired on
    misses: tuple[Case, ...]
    false_alarms: tuple[Case, ...]
    theatre_errors: tuple[Case, ...]
    theatres: tuple[str, ...] = ()  # the configured theatres the items were scored against
    outside: tuple[OutsideItem, ...] = ()  # every item whose gold theatre is not one of them

    @property
    def outside_reported(self) -> tuple[OutsideItem, ...]:
        """The outside items worth a line: those with gold signs or a detection."""
        return tuple(item for item in self.outside if item.gold_labels or item.is_flagged)

    def meets_targets(self) -> bool:
        """The issue's targets, overall and in every language."""
        return self.overall.meets_targets() and all(
            scores.meets_targets() for scores in self.by_language.values()
        )


def _best(matches: Sequence[Match], label: str) -> Match | None:
    mine = [match for match in matches if match.indicator_id == label]
    return max(mine, key=lambda match: match.confidence) if mine else None


def _case(item: CorpusItem, label: str, matches: Sequence[Match]) -> Case:
    best = _best(matches, label)
    detected = tuple(
        sorted({m.theatre_id for m in matches if m.indicator_id == label and m.is_event})
    )
    return Case(
        item_id=item.id,
        lang=item.lang,
        label=label,
        gold_theatre=item.theatre,
        detected_theatres=detected,
        title=item.title,
        evidence=best.evidence if best else "",
        confidence=best.confidence if best else None,
        qualifiers=best.qualifiers if best else (),
    )


def _gold(item: CorpusItem, theatres: Collection[str]) -> tuple[str, ...]:
    """The item's labels as far as the configured theatres go: none when its gold theatre
    is outside them (a sign there is not one the matcher may report for a watched theatre)."""
    return item.labels if item.theatre in theatres else ()


def _scores(
    items: Sequence[CorpusItem],
    results: Mapping[str, list[Match]],
    labels: Sequence[str],
    watched: Collection[str],
) -> Scores:
    counts = {label: [0, 0, 0] for label in labels}
    theatre_correct = theatre_total = 0
    for item in items:
        matches = results[item.id]
        detected = {m.indicator_id for m in matches if m.is_event}
        gold_labels = _gold(item, watched)
        for label in labels:
            gold = label in gold_labels
            found = label in detected
            if gold and found:
                counts[label][0] += 1
            elif found:
                counts[label][1] += 1
            elif gold:
                counts[label][2] += 1
        theatres = {m.theatre_id for m in matches if m.is_event and m.indicator_id in labels}
        if theatres:
            theatre_total += 1
            if theatres == {item.theatre}:
                theatre_correct += 1
    outside = [item for item in items if item.theatre not in watched]
    return Scores(
        items=len(items),
        labels=tuple(LabelScore(label, *counts[label]) for label in labels),
        theatre_correct=theatre_correct,
        theatre_total=theatre_total,
        outside_items=len(outside),
        outside_with_signs=sum(1 for item in outside if item.labels),
    )


def evaluate(items: Sequence[CorpusItem], rules: RuleSet) -> EvalReport:
    """Run the matcher over `items` and score it against their labels."""
    labels = tuple(label for label in SCORED_LABELS if label in rules.indicators)
    theatres = tuple(rules.theatres)
    results = {item.id: match_article(item.article(), rules) for item in items}
    languages = sorted({item.lang for item in items})
    by_language = {
        language: _scores(
            [item for item in items if item.lang == language], results, labels, theatres
        )
        for language in languages
    }
    extras = {
        indicator_id: tuple(
            item.id
            for item in items
            if any(m.indicator_id == indicator_id and m.is_event for m in results[item.id])
        )
        for indicator_id in rules.indicators
        if indicator_id not in labels
    }
    misses: list[Case] = []
    false_alarms: list[Case] = []
    theatre_errors: list[Case] = []
    outside: list[OutsideItem] = []
    for item in items:
        matches = results[item.id]
        detected = {m.indicator_id for m in matches if m.is_event}
        gold_labels = _gold(item, theatres)
        if item.theatre not in theatres:
            outside.append(_outside_item(item, matches, labels))
        for label in labels:
            if label in gold_labels and label not in detected:
                misses.append(_case(item, label, matches))
            elif label in detected and label not in gold_labels:
                false_alarms.append(_case(item, label, matches))
            elif label in detected:
                case = _case(item, label, matches)
                if case.detected_theatres != (item.theatre,):
                    theatre_errors.append(case)
    return EvalReport(
        overall=_scores(items, results, labels, theatres),
        by_language=by_language,
        extras=extras,
        misses=tuple(misses),
        false_alarms=tuple(false_alarms),
        theatre_errors=tuple(theatre_errors),
        theatres=theatres,
        outside=tuple(outside),
    )


def _outside_item(item: CorpusItem, matches: Sequence[Match], labels: Sequence[str]) -> OutsideItem:
    detected = sorted(
        {(m.indicator_id, m.theatre_id) for m in matches if m.is_event and m.indicator_id in labels}
    )
    return OutsideItem(
        item_id=item.id,
        lang=item.lang,
        gold_theatre=item.theatre,
        gold_labels=item.labels,
        detected=tuple(detected),
        title=item.title,
    )


def fail_under_message(report: EvalReport, threshold: float) -> str | None:
    """One line saying which macro F1 (overall, or a language's) is below `threshold`, or
    None when none is. A set with no scored label at all has no macro F1 and fails."""
    failing = []
    for name, scores in [("overall", report.overall), *report.by_language.items()]:
        macro = scores.macro_f1
        if macro is None or macro < threshold:
            failing.append(f"{name} {_fmt(macro)}")
    if not failing:
        return None
    return f"macro F1 below --fail-under {threshold:.2f}: {', '.join(failing)}"


# ---------------------------------------------------------------------------
# Rendering


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _scores_dict(scores: Scores) -> dict[str, object]:
    return {
        "items": scores.items,
        "labels": {
            s.label: {
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
            }
            for s in scores.labels
        },
        "macro": {
            "precision": scores.macro_precision,
            "recall": scores.macro_recall,
            "f1": scores.macro_f1,
        },
        "theatre_accuracy": scores.theatre_accuracy,
        "theatre_correct": scores.theatre_correct,
        "theatre_total": scores.theatre_total,
        "meets_targets": scores.meets_targets(),
        "outside_theatres": {
            "items": scores.outside_items,
            "with_signs": scores.outside_with_signs,
        },
    }


def _outside_dict(report: EvalReport) -> dict[str, object]:
    return {
        "theatres": list(report.theatres),
        "items": len(report.outside),
        "with_signs": sum(1 for item in report.outside if item.gold_labels),
        "flagged": sum(1 for item in report.outside if item.is_flagged),
        "cases": [
            {
                "item": item.item_id,
                "lang": item.lang,
                "gold_theatre": item.gold_theatre,
                "gold_labels": list(item.gold_labels),
                "detected": [
                    {"label": label, "theatre": theatre} for label, theatre in item.detected
                ],
                "title": item.title,
            }
            for item in report.outside_reported
        ],
    }


def _outside_lines(report: EvalReport) -> list[str]:
    outside = report.outside
    watched = ", ".join(report.theatres) or "none"
    lines = [f"Outside the configured theatres ({watched}): {len(outside)} item(s)"]
    if not outside:
        return lines
    with_signs = [item for item in outside if item.gold_labels]
    by_theatre: dict[str, int] = {}
    for item in with_signs:
        by_theatre[item.gold_theatre] = by_theatre.get(item.gold_theatre, 0) + 1
    where = ", ".join(f"{theatre} {count}" for theatre, count in sorted(by_theatre.items()))
    flagged = sum(1 for item in outside if item.is_flagged)
    lines.append(
        f"  {len(with_signs)} carry signs on unwatched ground"
        + (f" ({where})" if where else "")
        + ": not counted as misses;"
        f" the matcher flagged {flagged} of the {len(outside)} (counted as false alarms above)"
    )
    for item in report.outside_reported:
        gold = ", ".join(item.gold_labels) or "no sign"
        said = ", ".join(f"{label} in {theatre}" for label, theatre in item.detected) or "nothing"
        lines.append(
            f"- {item.item_id} [{item.lang}] gold {item.gold_theatre}: {gold}; matcher: {said}"
        )
    return lines


def _case_dict(case: Case) -> dict[str, object]:
    return {
        "item": case.item_id,
        "lang": case.lang,
        "label": case.label,
        "gold_theatre": case.gold_theatre,
        "detected_theatres": list(case.detected_theatres),
        "title": case.title,
        "evidence": case.evidence,
        "confidence": case.confidence,
        "qualifiers": list(case.qualifiers),
    }


def _scores_table(scores: Scores) -> str:
    rows: list[list[object]] = [
        [s.label, _fmt(s.precision), _fmt(s.recall), _fmt(s.f1), s.tp, s.fp, s.fn]
        for s in scores.labels
    ]
    rows.append(
        [
            "macro",
            _fmt(scores.macro_precision),
            _fmt(scores.macro_recall),
            _fmt(scores.macro_f1),
            "",
            "",
            "",
        ]
    )
    table = tabulate(
        rows,
        headers=["label", "P", "R", "F1", "tp", "fp", "fn"],
        tablefmt="simple",
        disable_numparse=True,
    )
    theatre = (
        f"theatre accuracy: {_fmt(scores.theatre_accuracy)}"
        f" ({scores.theatre_correct}/{scores.theatre_total} items with a detection)"
    )
    if scores.outside_items:
        theatre += (
            f"\noutside the configured theatres: {scores.outside_items} item(s),"
            f" {scores.outside_with_signs} with signs (not counted as misses)"
        )
    verdict = "meets targets" if scores.meets_targets() else "BELOW TARGETS"
    return f"{table}\n{theatre}\n{verdict}"


def _case_lines(title: str, cases: Sequence[Case]) -> list[str]:
    lines = [f"{title} ({len(cases)})"]
    for case in cases:
        detected = ", ".join(case.detected_theatres) or "-"
        lines.append(
            f"- {case.item_id} [{case.lang}] {case.label}"
            f" (gold theatre {case.gold_theatre}; detected {detected})"
        )
        lines.append(f"    title: {case.title}")
        if case.evidence:
            qualifiers = "; ".join(case.qualifiers) or "none"
            lines.append(f"    evidence ({_fmt(case.confidence)}): {case.evidence}")
            lines.append(f"    qualifiers: {qualifiers}")
        else:
            lines.append("    evidence: no pattern matched")
    return lines


def render_report(report: EvalReport, *, fmt: str = "table", verbose: bool = False) -> str:
    """The report as a text table (`fmt="table"`) or JSON (`fmt="json"`).

    `verbose` adds every miss, false alarm and wrong theatre with its evidence.
    """
    if fmt == "json":
        payload: dict[str, object] = {
            "overall": _scores_dict(report.overall),
            "by_language": {lang: _scores_dict(s) for lang, s in report.by_language.items()},
            "extras": {key: list(ids) for key, ids in report.extras.items()},
            "outside_theatres": _outside_dict(report),
            "targets": {
                "macro_f1": TARGET_MACRO_F1,
                "label_f1": TARGET_LABEL_F1,
                "theatre_accuracy": TARGET_THEATRE_ACCURACY,
                "met": report.meets_targets(),
            },
        }
        if verbose:
            payload["misses"] = [_case_dict(case) for case in report.misses]
            payload["false_alarms"] = [_case_dict(case) for case in report.false_alarms]
            payload["theatre_errors"] = [_case_dict(case) for case in report.theatre_errors]
        return json.dumps(payload, ensure_ascii=False, indent=2)
    if fmt != "table":
        raise ValueError(f"unknown report format {fmt!r} (expected 'table' or 'json')")
    parts = [f"All items ({report.overall.items})", _scores_table(report.overall)]
    for language, scores in report.by_language.items():
        parts += ["", f"Language {language} ({scores.items} items)", _scores_table(scores)]
    parts += ["", "Extra indicators (no gold labels; not in the macro averages)"]
    if report.extras:
        for indicator_id, item_ids in report.extras.items():
            fired = ", ".join(item_ids) if item_ids else "-"
            parts.append(f"- {indicator_id}: {len(item_ids)} item(s): {fired}")
    else:
        parts.append("- none")
    parts.append("")
    parts += _outside_lines(report)
    parts.append("")
    parts.append(
        "Targets: macro F1 >= {:.2f}, every label F1 >= {:.2f}, theatre accuracy >= {:.2f}"
        " (overall and per language): {}".format(
            TARGET_MACRO_F1,
            TARGET_LABEL_F1,
            TARGET_THEATRE_ACCURACY,
            "met" if report.meets_targets() else "NOT met",
        )
    )
    if verbose:
        parts.append("")
        parts += _case_lines("Misses", report.misses)
        parts += _case_lines("False alarms", report.false_alarms)
        parts += _case_lines("Wrong theatre", report.theatre_errors)
    return "\n".join(parts)
