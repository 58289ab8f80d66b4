"""Offline work on the real pipeline: the demo, replay, evaluation, corpora, a mail sink.

- `demo`: `monitor demo`, the bundled sample feeds through the whole pipeline on a
  simulated clock, alerts to a local SMTP sink and a Maildir (`demo_data/`).
- `replay`: a dated corpus through matching, scoring and alert rules.
- `evaluation`: precision, recall, F1 and theatre accuracy against labelled items.
- `corpus`: loading labelled JSON Lines; `mailsink`: a local SMTP server (aiosmtpd).

May import the pipeline and everything below it; never the service or the CLI.
"""
