"""Which matcher this installation runs: the mypyc-compiled modules or the Python source.

Cheap to ask (for `monitor --version`): it imports no matcher, only asks Python's import
system where `monitor.detect.matcher` would load from, and reads the line the wheel's
build left beside it (`hatch_build.py`) to say why a wheel holds the source.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

COMPILED = "compiled (mypyc)"
SOURCE = "python source"
NOTE = Path(__file__).with_name("matcher-build.txt")


def matcher_is_compiled() -> bool:
    spec = importlib.util.find_spec("monitor.detect.matcher")
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def matcher_build() -> str:
    """ "compiled (mypyc)", else "python source", with the build's reason when it left one."""
    if matcher_is_compiled():
        return COMPILED
    try:
        note = NOTE.read_text(encoding="utf-8").strip().removeprefix("matcher:").strip()
    except OSError:
        return SOURCE  # an editable install or a checkout: no wheel was built
    return note if note.startswith(SOURCE) else SOURCE
