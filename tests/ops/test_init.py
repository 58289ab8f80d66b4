"""`monitor init`: the commented settings file and the watch list, never overwriting."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from monitor.config import bundled_indicators_text, load_settings
from monitor.models import HealthSettings, HttpSettings, ScheduleSettings, Settings, SmtpSettings
from monitor.ops.files import EXAMPLE_SETTINGS_FILENAME, bundled_example_settings_text
from tests.ops.support import REPO, monitor, one_error_line

SHIPPED_EXAMPLE = REPO / EXAMPLE_SETTINGS_FILENAME


def test_init_writes_the_shipped_example_and_the_builtin_watch_list(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    ran = monitor("init", str(target))
    assert ran.code == 0, ran.err
    assert sorted(p.name for p in target.iterdir()) == ["indicators.yaml", "monitor.toml"]
    written = (target / "monitor.toml").read_bytes()
    assert written == SHIPPED_EXAMPLE.read_bytes()
    assert written.decode("utf-8") == bundled_example_settings_text()
    assert (target / "indicators.yaml").read_bytes() == (REPO / "indicators.yaml").read_bytes()
    assert (target / "indicators.yaml").read_text(encoding="utf-8") == bundled_indicators_text()
    assert f"{target / 'monitor.toml'}" in ran.out and "check-config" in ran.out


def test_the_written_files_pass_check_config(tmp_path: Path) -> None:
    assert monitor("init", str(tmp_path)).code == 0
    ran = monitor(
        "--config",
        str(tmp_path / "monitor.toml"),
        "--indicators",
        str(tmp_path / "indicators.yaml"),
        "check-config",
    )
    assert ran.code == 0, ran.err
    assert "configuration OK" in ran.out
    # the one warning a fresh deployment deserves: nobody would hear of an alert yet
    assert ran.err.strip().startswith("WARNING: no recipient configured")


@pytest.mark.parametrize("existing", ["monitor.toml", "indicators.yaml"])
def test_init_never_overwrites_and_writes_nothing_when_refused(
    tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).write_text("# mine, keep it\n", encoding="utf-8")
    ran = monitor("init", str(tmp_path))
    assert ran.code == 1
    line = one_error_line(ran)
    assert existing in line and "never overwrites" in line
    assert (tmp_path / existing).read_text(encoding="utf-8") == "# mine, keep it\n"
    assert [p.name for p in tmp_path.iterdir()] == [existing]  # the other was not written


def test_init_into_a_path_below_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    ran = monitor("init", str(tmp_path / "plain" / "deploy"))
    assert ran.code == 1
    assert "cannot write" in one_error_line(ran)


def test_init_refuses_a_dangling_symlink_in_place_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "monitor.toml").symlink_to(tmp_path / "elsewhere.toml")
    ran = monitor("init", str(tmp_path))
    assert ran.code == 1 and "never overwrites" in one_error_line(ran)
    assert not (tmp_path / "elsewhere.toml").exists()


# -- the example documents every setting, with its true default -------------------------

# Settings that are off (None) by default or have no default worth uncommenting: the
# example shows a sample value for them instead.
SAMPLE_VALUES = {
    "maildir",
    "metrics_listen",
    "report_dir",
    "report_url",
    "username",
    "password_file",
    "ca_file",
    "recipients",
}
COMMENTED_SETTING = re.compile(r"^#([a-z_]+) = ")


def uncommented_defaults(text: str) -> str:
    """The example with every commented-out setting switched on, sample values aside."""
    lines = []
    for line in text.splitlines():
        match = COMMENTED_SETTING.match(line)
        if match and match.group(1) not in SAMPLE_VALUES:
            line = line[1:]
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_every_commented_setting_in_the_example_is_the_default() -> None:
    text = SHIPPED_EXAMPLE.read_text(encoding="utf-8")
    switched_on = uncommented_defaults(text)
    assert switched_on != text
    parsed = tomllib.loads(switched_on)
    assert len(parsed["http"]) == len(fields(HttpSettings))  # all of [http] switched on
    path = Path("example-switched-on.toml")
    settings = load_settings_from_text(switched_on, path)
    assert settings == Settings()


def load_settings_from_text(text: str, name: Path) -> Settings:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8")
        return load_settings(path, env={})


def test_the_example_names_every_setting() -> None:
    text = SHIPPED_EXAMPLE.read_text(encoding="utf-8")
    names = {"database_path"} | {f.name for f in fields(Settings)} - {"db_path"}
    for record in (SmtpSettings, HttpSettings, ScheduleSettings, HealthSettings):
        names |= {f.name for f in fields(record)}
    missing = sorted(name for name in names if not re.search(rf"\b{name}\b", text))
    assert missing == []


def test_the_package_ships_the_example() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert included[EXAMPLE_SETTINGS_FILENAME] == f"monitor/{EXAMPLE_SETTINGS_FILENAME}"
