"""Strict, path-aware readers for values loaded from configuration files.

Each reader takes the raw value and its key path and either returns a typed value or
raises `ConfigError` with one line: `SOURCE: key.path: expected …, got …`. They do no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from monitor.errors import ConfigError


class Location:
    """Where a value came from: the file (or "environment") and the dotted key path."""

    __slots__ = ("path", "source")

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path

    def child(self, key: object) -> Location:
        if isinstance(key, int):
            return Location(self.source, f"{self.path}[{key}]")
        return Location(self.source, f"{self.path}.{key}" if self.path else str(key))

    def fail(self, problem: str) -> NoReturn:
        where = f"{self.source}: {self.path}" if self.path else self.source
        raise ConfigError(f"{where}: {problem}")


def describe(value: object) -> str:
    """A short rendering of a bad value for an error message."""
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def mapping(value: object, at: Location, *, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        at.fail(f"expected a mapping, got {describe(value)}")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            at.fail(f"expected text keys, got {describe(key)}")
        result[key] = item
    if allowed is not None:
        known = set(allowed)
        for key in result:
            if key not in known:
                hint = ", ".join(sorted(known))
                at.child(key).fail(f"unknown key (expected one of: {hint})")
    return result


def sequence(value: object, at: Location) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        at.fail(f"expected a list, got {describe(value)}")
    return list(value)


def text(value: object, at: Location, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        at.fail(f"expected text, got {describe(value)}")
    if not allow_empty and not value.strip():
        at.fail("expected non-empty text")
    return value


def number(value: object, at: Location, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        at.fail(f"expected a number, got {describe(value)}")
    result = float(value)
    if math.isnan(result) or math.isinf(result):
        at.fail(f"expected a finite number, got {describe(value)}")
    if minimum is not None and result < minimum:
        at.fail(f"expected a number of at least {minimum:g}, got {describe(value)}")
    return result


def integer(value: object, at: Location, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        at.fail(f"expected a whole number, got {describe(value)}")
    if minimum is not None and value < minimum:
        at.fail(f"expected a whole number of at least {minimum}, got {describe(value)}")
    return value


def boolean(value: object, at: Location) -> bool:
    if not isinstance(value, bool):
        at.fail(f"expected true or false, got {describe(value)}")
    return value


def choice(value: object, at: Location, options: Iterable[str]) -> str:
    allowed = list(options)
    if value not in allowed:
        at.fail(f"expected one of {', '.join(allowed)}, got {describe(value)}")
    return str(value)


def text_list(value: object, at: Location) -> tuple[str, ...]:
    return tuple(text(item, at.child(i)) for i, item in enumerate(sequence(value, at)))
