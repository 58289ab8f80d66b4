"""Fetching feeds: HTTP, the address guard, politeness, parsing and the parser sandbox."""
