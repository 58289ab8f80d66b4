"""Human-friendly time arguments: `7d`, `12h`, `30m`, `2w`, `2024-09-14`, ISO timestamps.

Pure: the caller passes `now`. Results are aware UTC datetimes; a bare date means the
start of that day in UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w|y)\s*$", re.IGNORECASE)
# 2024-09-14, 2024-09-14T08:30, 2024-09-14T08:30:15, each with Z or ±hh:mm or nothing
_PLAIN_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?)?$", re.ASCII
)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


class TimeArgumentError(ValueError):
    """A time argument that is neither a duration like `7d` nor a date or timestamp."""


def parse_duration(text: str) -> timedelta:
    match = _RELATIVE.match(text)
    if not match:
        raise TimeArgumentError(f"not a duration: {text!r} (use e.g. 30m, 12h, 7d, 2w)")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
    except OverflowError:
        raise TimeArgumentError(f"duration out of range: {text!r}") from None


def parse_time(text: str, *, now: datetime) -> datetime:
    """`7d` means 7 days before `now`; dates and timestamps are taken as written (UTC if
    they carry no zone)."""
    from monitor.models import utc  # imported here: `--help` needs no models

    if _RELATIVE.match(text):
        try:
            return utc(now) - parse_duration(text)
        except OverflowError:
            raise TimeArgumentError(
                f"time out of range: {text!r} reaches before the year 1"
            ) from None
    if text.strip().lower() == "now":
        return utc(now)
    if _PLAIN_ISO.match(text.strip()):
        # the usual forms, read by the standard library as dateutil reads them (dateutil
        # costs 25-45 ms to import; it reads every other ISO 8601 form)
        try:
            return utc(datetime.fromisoformat(text.strip()))
        except (ValueError, OverflowError):
            pass  # e.g. a 31st of June: dateutil words the error
    from dateutil import parser as date_parser  # only unusual dates and timestamps need it

    try:
        return utc(date_parser.isoparse(text.strip()))
    except (ValueError, OverflowError):
        raise TimeArgumentError(
            f"not a time: {text!r} (use 7d, 2024-09-14 or 2024-09-14T08:30Z)"
        ) from None
