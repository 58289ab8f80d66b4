"""Helpers the tests share: real servers on loopback, daemons, fixtures builders."""
