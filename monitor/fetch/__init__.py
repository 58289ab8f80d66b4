"""Fetching: from a feed's URL to cleaned entries.

- `fetcher`: HTTP with httpx (conditional GET, size and time limits, decoding); the only
  module that talks HTTP to feeds. `netguard`: which URLs and addresses may be fetched
  (no private, loopback or odd-form addresses). `politeness`: when to poll a feed next
  (backoff, Retry-After, the server's caching headers).
- `parser`: feed bytes to `Entry` records with stable ids; the only user of feedparser.
  `parse_sandbox`: runs the parser (and the matcher) in worker processes bounded in
  time and memory, because feed bytes are hostile.

May import: `monitor.detect` (matching in the workers), `monitor.score.stories` (the
story facts made in the workers), `monitor.urls`, `monitor.models`, `monitor.errors`.
Must not import the database, delivery or anything above them.
"""
