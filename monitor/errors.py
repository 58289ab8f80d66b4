"""The exception tree of `monitor`.

Every error a user can cause or meet names the object and, where there is one, a fix.
The CLI turns any `MonitorError` into one line on stderr; nothing here prints.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of every error `monitor` raises on purpose."""

    exit_code: int = 1


class ConfigError(MonitorError):
    """A configuration file or setting is wrong.

    The message is one line: `FILE: key.path: what is wrong`, e.g.
    `indicators.yaml: indicators.territorial_claim.weight: expected a number, got 'high'`.
    """

    exit_code = 2


class DatabaseError(MonitorError):
    """The state database cannot be opened, migrated or written."""


class AlreadyRunningError(MonitorError):
    """Another `monitor run` already holds the lock on this database."""


class StoppedBySignal(MonitorError):
    """`monitor run --once` was told to stop (SIGTERM) mid-cycle; what it recorded stays."""

    exit_code = 143  # 128 + SIGTERM, what a shell and systemd expect of a stopped process


class FetchError(MonitorError):
    """A feed could not be fetched; `kind` is a stable short code such as `ssrf_blocked`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.detail = message


class DeliveryError(MonitorError):
    """An email could not be delivered. `retryable` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
