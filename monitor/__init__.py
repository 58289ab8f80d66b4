"""monitor: an escalation-risk early-warning daemon for news feeds."""

__version__ = "0.1.0"
