"""What an operator does to a deployment's files: `monitor init`, `monitor config dump`,
editing the feed list of `indicators.yaml` (`monitor feeds add/remove/import/export`) and
OPML. No click here (the CLI layer calls these), no network, and no database writes.
"""
