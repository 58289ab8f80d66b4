"""Scoring: score points from matches, alert decisions, and when two articles are one story."""
