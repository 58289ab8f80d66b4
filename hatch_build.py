"""The wheel's build hook: the matcher compiled with mypyc where it can be, else plain Python.

hatchling runs this for every wheel (`[tool.hatch.build.targets.wheel.hooks.custom]` in
pyproject.toml, whose `include` and `mypy-args` are handed on to hatch-mypyc):

- `pip install .`, `pip wheel .`, `python -m build`: hatch-mypyc compiles the modules the
  table lists. When it cannot (no C compiler, no Python headers, hatch-mypyc or mypy not
  importable, mypyc failing) the wheel is the plain Python one instead; never a failed
  install.
- `MONITOR_PURE_PYTHON=1`: the plain wheel, and no mypy is installed to build it.
- editable installs (`pip install -e .`): nothing to compile (the source runs) and no
  build dependency added, so they stay as quick as before.

Either way the build prints one line saying which matcher the wheel holds, and why when
it is not the compiled one (pip shows a build's output only with `-v`), and the wheel
carries that line in `monitor/detect/matcher-build.txt`: `monitor --version` reads it
(`monitor/detect/build_info.py`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

OPT_OUT = "MONITOR_PURE_PYTHON"
COMPILER_REQUIREMENTS = ["hatch-mypyc>=0.16", "mypy>=1.10"]
NOTE = "monitor/detect/matcher-build.txt"
PREFIX = "monitor build:"
MAX_REASON = 240


def opted_out() -> bool:
    return os.environ.get(OPT_OUT, "").strip().lower() in {"1", "true", "yes", "on"}


def building_editable() -> bool:
    """Whether the frontend asked hatchling for an editable wheel.

    A hook's `dependencies()` is not told which wheel (standard or editable) it is asked
    for, so look for the PEP 660 entry points of `hatchling.build` on the stack.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "hatchling.build" and frame.f_code.co_name in {
            "get_requires_for_build_editable",
            "build_editable",
        }:
            return True
        frame = frame.f_back
    return False


def missing_toolchain() -> str | None:
    """Why a C extension cannot be built here, before mypy spends a minute finding out."""
    command = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(command)
    if not words or shutil.which(words[0]) is None:
        return f"no C compiler ({words[0] if words else 'CC is empty'} not found)"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        return f"no Python headers (Python.h not in {include})"
    return None


def failure_reason(error: BaseException) -> str:
    """The most telling line of a failed compilation: the last one that says error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and line != lines[0]]
    reason = (errors or lines or [type(error).__name__])[-1]
    return "mypyc failed: " + reason[:MAX_REASON]


class MatcherBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mypyc: Any = None
        self._note_dir: tempfile.TemporaryDirectory[str] | None = None

    def dependencies(self) -> list[str]:
        if opted_out() or building_editable():
            return []
        # mypy reads the runtime dependencies' types, as the tested build does
        return [*COMPILER_REQUIREMENTS, *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        if opted_out():
            self._report(build_data, f"python source ({OPT_OUT}=1)")
            return
        why_not = missing_toolchain() or self._compile(version, build_data)
        if why_not is None:
            self._report(build_data, "compiled (mypyc)")
        else:
            self._report(build_data, f"python source (not compiled: {why_not})")

    def _compile(self, version: str, build_data: dict[str, Any]) -> str | None:
        """Run hatch-mypyc; None when it compiled, else why not (the build goes on pure)."""
        try:
            from hatch_mypyc.plugin import MypycBuildHook
        except ImportError as error:
            return f"hatch-mypyc or mypy is not installed in the build environment ({error})"
        config = {k: v for k, v in self.config.items() if k in {"include", "exclude", "mypy-args"}}
        self._mypyc = MypycBuildHook(
            self.root,
            config,
            self.build_config,
            self.metadata,
            self.directory,
            self.target_name,
            self.app,
        )
        try:
            # hatch-mypyc changes `build_data` only once every module has compiled
            self._mypyc.initialize(version, build_data)
        except Exception as error:
            self._mypyc.clean([version])
            return failure_reason(error)
        return None

    def _report(self, build_data: dict[str, Any], kind: str) -> None:
        line = f"matcher: {kind}"
        if kind.startswith("compiled"):
            self.app.display_info(f"{PREFIX} {line}")
        else:
            self.app.display_warning(f"{PREFIX} {line}")
        self._note_dir = tempfile.TemporaryDirectory(prefix="monitor-build-")
        note = Path(self._note_dir.name) / "matcher-build.txt"
        note.write_text(line + "\n", encoding="utf-8")
        build_data["force_include"][str(note)] = NOTE

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        # the compiled modules are in the wheel now; none stays beside the checkout's
        # sources, where it would shadow them for an editable install or the tests
        self.clean([version])
        if self._note_dir is not None:
            self._note_dir.cleanup()
            self._note_dir = None

    def clean(self, versions: list[str]) -> None:
        if self._mypyc is not None:
            self._mypyc.clean(versions)
