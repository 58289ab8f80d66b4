"""Progress on long work (`replay`, `eval`, `prune`, `backup`, `feeds import`): a bar on a
terminal, nothing when piped.

One helper for every command, so they all look and behave alike:

    with progress_bar(len(items), label="replaying") as advance:
        for item in items:
            ...
            advance(1)

The bar goes to stderr (stdout stays the command's output, fit for a pipe or a file) and
only when stderr is a terminal; otherwise `advance` does nothing and nothing is printed,
not even the label (click's own bar prints its label when it is not on a terminal).
`MONITOR_NO_PROGRESS=1` turns it off on a terminal too.

Must not: print anything to stdout, or anything at all when not on a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

__all__ = ["progress_bar", "shows_progress"]


def shows_progress(stream: TextIO) -> bool:
    """Whether a bar would be drawn on `stream`: a terminal, and not turned off."""
    if os.environ.get("MONITOR_NO_PROGRESS", "").strip() not in ("", "0"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _ignore(steps: int = 1) -> None:
    return None


@contextmanager
def progress_bar(
    total: int, *, label: str, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """A context manager yielding `advance(steps=1)`: moves a bar of `total` steps on
    stderr (or `stream`) when it is a terminal; a no-op otherwise. The bar is finished
    and its line ended when the block exits, also on an error."""
    target = stream if stream is not None else sys.stderr
    if total <= 0 or not shows_progress(target):
        yield _ignore
        return
    with click.progressbar(length=total, label=label, file=target, show_pos=True) as bar:

        def advance(steps: int = 1) -> None:
            bar.update(steps)

        yield advance
