"""Offline work: the demo, replay, evaluation, corpora and the local mail sink."""
