"""The files `monitor init` writes: the shipped example settings (`monitor.example.toml`)
and the built-in watch list (`indicators.yaml`), as the package holds them.

Owns reading those bundled texts and writing them into a folder without ever replacing a
file that is already there. Must not interpret their content (config does that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from monitor.config import INDICATORS_FILENAME, bundled_indicators_text
from monitor.errors import ConfigError, MonitorError

EXAMPLE_SETTINGS_FILENAME = "monitor.example.toml"  # in the repository and the package
SETTINGS_FILENAME = "monitor.toml"  # what `monitor init` names its copy


class InitError(MonitorError):
    """`monitor init` cannot write its files (one is there already, or the folder is not
    writable). Exit 1: the command was right, the disk's state stops it."""


def bundled_example_settings_text() -> str:
    """`monitor.example.toml` as shipped: package data in an installed package, the file
    at the source tree's root in an editable install (as for indicators.yaml)."""
    packaged = resources.files("monitor").joinpath(EXAMPLE_SETTINGS_FILENAME)
    try:
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
        source_tree = Path(__file__).resolve().parents[2] / EXAMPLE_SETTINGS_FILENAME
        return source_tree.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{EXAMPLE_SETTINGS_FILENAME} (built-in): cannot read it ({exc.strerror or exc})"
        ) from None


@dataclass(frozen=True)
class InitResult:
    settings: Path
    indicators: Path


def init_deployment(folder: Path) -> InitResult:
    """Write `monitor.toml` and `indicators.yaml` into `folder` (created if missing).

    Refuses, before writing anything, when either file exists; each file is created with
    O_EXCL, so a file that appears meanwhile is not replaced either.
    """
    targets = {
        folder / SETTINGS_FILENAME: bundled_example_settings_text(),
        folder / INDICATORS_FILENAME: bundled_indicators_text(),
    }
    present = [str(path) for path in targets if path.exists() or path.is_symlink()]
    if present:
        raise InitError(
            f"{' and '.join(present)} already exist{'s' if len(present) == 1 else ''}; "
            f"monitor init never overwrites (move {'it' if len(present) == 1 else 'them'} "
            "away, or choose another folder)"
        )
    if folder.exists() and not folder.is_dir():
        raise InitError(f"{folder}: exists and is not a folder")
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in targets.items():
            _create_new(path, text)
            written.append(path)
    except FileExistsError as exc:
        _remove(written)
        raise InitError(f"{exc.filename}: appeared while writing; nothing was changed") from None
    except OSError as exc:
        _remove(written)
        where = exc.filename or folder
        raise InitError(f"{where}: cannot write: {exc.strerror or exc}") from None
    return InitResult(settings=folder / SETTINGS_FILENAME, indicators=folder / INDICATORS_FILENAME)


def _create_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _remove(paths: list[Path]) -> None:
    """Undo a half-done init: the files this call created, nothing else."""
    for path in paths:
        path.unlink(missing_ok=True)
