"""Delivery: what an alert says, and getting it to people.

- `content`: the records an alert is made of (`AlertEmail`, `StoryLine`) and their
  wording; hostile feed text made safe (`clean_line`, `safe_url`).
- `email_message`: the MIME message (text + HTML, checked addresses, Message-ID).
- `smtp`: sending over SMTP with timeouts, retry classification and backoff, the
  bounded stop, the Maildir copy. `addresses`: the one e-mail address check.

May import: `monitor.models`, `monitor.errors`. Must not touch the database (the
pipeline hands it what to send and records the outcome) or decide what is due.
"""
