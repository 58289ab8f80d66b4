"""Every labelled set in one table: macro F1 (overall, en, ru), theatre accuracy, false
alarms per 100 irrelevant items (en / ru), the labels below 0.80 per language, and which
of issue 12's targets are missed (per language: macro F1 >= 0.90, every label >= 0.80,
theatre >= 0.95, at most 1 false alarm per 100 irrelevant items).

False alarms count irrelevant items (no gold label) that get any scored sign, as
`tests/fixtures/corpus/SETS.md` counts them. `--save FILE` writes each item's detected
(label, theatre) pairs, `--diff FILE` prints the items whose detections changed since a
saved run (for reading what a rule change moved). Sets are read from the corpus folder;
pass names to limit it. blind4 is scored for its totals only: never list its items.

Run: `.venv/bin/python bench/eval_sets.py [--save F] [--diff F] [SET ...]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.config import load_config  # noqa: E402
from monitor.detect.matcher import match_article  # noqa: E402
from monitor.lab.corpus import load_corpus  # noqa: E402
from monitor.lab.evaluation import SCORED_LABELS, evaluate  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
SETS = (
    "dev",
    "demo",
    "heldout",
    "unseen",
    "final",
    "blind4",
    "blind5",
    "blind6",
    "blind7",
    "blind8",
)
UNREAD = {"blind4"}  # totals only


def _path(name: str) -> Path:
    if name == "demo":
        return ROOT / "monitor" / "lab" / "demo_data" / "items.jsonl"
    return CORPUS / f"{name}.jsonl"


def _f(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=list(SETS))
    parser.add_argument("--save")
    parser.add_argument("--diff")
    args = parser.parse_args(argv)
    rules = load_config(indicators_path=ROOT / "indicators.yaml", settings_path=None, env={}).rules
    labels_of = {}
    old = json.loads(Path(args.diff).read_text()) if args.diff else {}
    rows = []
    changed: list[str] = []
    for name in args.sets:
        items = load_corpus(_path(name))
        report = evaluate(items, rules)
        fa: dict[str, list[int]] = {}
        for item in items:
            matches = match_article(item.article(), rules)
            found = sorted(
                f"{m.indicator_id}@{m.theatre_id}"
                for m in matches
                if m.is_event and m.indicator_id in SCORED_LABELS
            )
            key = f"{name}:{item.id}"
            labels_of[key] = found
            if not item.labels:
                tally = fa.setdefault(item.lang, [0, 0])
                tally[1] += 1
                tally[0] += bool(found)
            if args.diff and name not in UNREAD and key in old and old[key] != found:
                gold = ",".join(f"{lab}@{item.theatre}" for lab in item.labels) or "-"
                changed.append(f"{key}: {old[key]} -> {found}   gold {gold}")
        low = []
        for lang, scores in sorted(report.by_language.items()):
            for ls in scores.labels:
                if ls.f1 is not None and ls.f1 < 0.80:
                    low.append(f"{lang} {ls.label[:8]} {ls.f1:.2f}")
        fa_text = " / ".join(
            f"{100 * fa.get(lang, [0, 0])[0] / max(1, fa.get(lang, [0, 1])[1]):4.1f}"
            for lang in ("en", "ru")
        )
        missed = []
        for lang, scores in sorted(report.by_language.items()):
            if (scores.macro_f1 or 0.0) < 0.90:
                missed.append(f"{lang} macro")
            if (scores.theatre_accuracy or 1.0) < 0.95:
                missed.append(f"{lang} theatre")
            counted, total = fa.get(lang, [0, 0])
            if total and 100 * counted / total > 1.0:
                missed.append(f"{lang} false alarms")
        missed += [f"{entry.split()[0]} {entry.split()[1]}" for entry in low]
        targets = "met" if not missed else "not met: " + ", ".join(missed)
        rows.append(
            f"{name:8} {len(items):4} {_f(report.overall.macro_f1)} "
            f"{_f(report.by_language.get('en').macro_f1 if 'en' in report.by_language else None)} "
            f"{_f(report.by_language.get('ru').macro_f1 if 'ru' in report.by_language else None)} "
            f"{_f(report.overall.theatre_accuracy)}  {fa_text:11}  {'; '.join(low) or '-'}"
            f"  [{targets}]"
        )
    print("set      items macro    en    ru theatre FA/100 en/ru  labels < 0.80  [targets]")
    print("\n".join(rows))
    if changed:
        print("\nchanged:")
        print("\n".join(changed))
    if args.save:
        Path(args.save).write_text(json.dumps(labels_of, ensure_ascii=False, indent=0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
