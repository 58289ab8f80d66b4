"""Scoring: from matches to a risk level and the alerts it calls for, as pure functions.

- `scoring`: a theatre's window of matches to one explained score point (`score_theatre`).
- `alerts`: previous alert state + a new score point to the alerts to record
  (`decide_alerts`), quiet hours, digests.
- `stories`: when two articles are the same story, within a language and across
  English and Russian (the rules behind the store's story index).

May import: `monitor.detect` (rule types), `monitor.urls` (the canonical article URL),
`monitor.models`, `monitor.errors`. No I/O and no clock of their own.
"""
