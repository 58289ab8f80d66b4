"""Delivery: rendering alerts and sending them."""
