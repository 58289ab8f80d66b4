"""Detection: what an article says, as signs attributed to theatres.

- `rules`: the pattern language of `indicators.yaml` and its compiler (`RuleSet`).
- `matcher`: `match_article(text, rules)`, a pure function: the signs in one article,
  their theatres, confidence and the evidence sentence behind each.
- `text`: normalising, words with offsets, sentences, stems (English and Russian).
  `language`: telling English from Russian.

May import: `monitor.models`, `monitor.errors`, `monitor.validate`. Pure: no I/O, no
clock (callers pass `now`), and nothing from fetch, delivery or the database.
"""
