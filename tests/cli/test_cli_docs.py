"""What the README promises about the CLI as a whole: shell completion works as
documented, and one table gives every command's exit status (issue 15)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def complete(words: str, tmp_path: Path) -> list[str]:
    """What the bash completion click installs answers for the command line `words`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(
        _MONITOR_COMPLETE="bash_complete",
        COMP_WORDS=words,
        COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    )
    done = subprocess.run(
        [sys.executable, "-c", "from monitor.cli import main; main()"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_is_documented(shell: str) -> None:
    assert f"_MONITOR_COMPLETE={shell}_source monitor" in README


def test_shell_completion_completes_commands_options_and_choices(tmp_path: Path) -> None:
    assert complete("monitor hist", tmp_path) == ["history"]
    assert set(complete("monitor re", tmp_path)) == {"replay", "report"}  # lazy ones too
    assert complete("monitor history --ev", tmp_path) == ["--every"]
    assert complete("monitor history --every ", tmp_path) == ["1h", "1d", "1w"]


def test_one_table_gives_every_exit_status() -> None:
    table = README.split("Exit status, the same for every command:", 1)[1].split("\n\n")[1]
    rows = dict(re.findall(r"^\| ([\d /]+) \| (.+) \|$", table, re.M))
    assert {"0", "1", "2", "75", "0 / 1 / 2"} <= set(rows)
    assert "usage" in rows["2"] and "configuration" in rows["2"]
    assert "status" in rows["0 / 1 / 2"]
