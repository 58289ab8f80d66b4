"""indicators.yaml: the shipped file loads; each bad file stops with its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.config import bundled_indicators_text, load_config, parse_indicators_text
from monitor.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
REPO = Path(__file__).resolve().parent.parent
BAD_FILES = sorted(FIXTURES.glob("bad_*.yaml"))


def test_the_shipped_watch_list_is_valid_and_complete() -> None:
    config = load_config(indicators_path=REPO / "indicators.yaml", env={})
    assert {"kg-tj", "am-az", "csto"} <= set(config.rules.theatres)
    six = {
        "exercise_cancellation",
        "territorial_claim",
        "arms_delivery",
        "border_clash",
        "alliance_withdrawal",
        "de_escalation",
    }
    assert six <= set(config.rules.indicators)
    assert config.rules.indicators["de_escalation"].weight < 0
    assert len(config.feeds) >= 11
    assert all(feed.url.startswith("https://") for feed in config.feeds)


def test_built_in_default_is_the_repository_file() -> None:
    assert bundled_indicators_text() == (REPO / "indicators.yaml").read_text(encoding="utf-8")


def test_an_unreadable_built_in_list_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An editable install whose checkout this user cannot read (a private directory):
    a ConfigError that names the way out, not a traceback."""
    from monitor import config

    monkeypatch.setattr(config, "INDICATORS_FILENAME", "no-such-watch-list.yaml")
    with pytest.raises(ConfigError) as caught:
        bundled_indicators_text()
    message = str(caught.value)
    assert message.startswith("no-such-watch-list.yaml (built-in): cannot read it")
    assert "--indicators" in message and "\n" not in message


def test_good_fixture_loads() -> None:
    watch = parse_indicators_text(
        (FIXTURES / "good.yaml").read_text(encoding="utf-8"), source="indicators.yaml"
    )
    assert [f.id for f in watch.feeds] == ["wire"] and list(watch.rules.theatres) == ["kg-tj"]


def test_every_bad_file_has_its_message() -> None:
    assert len(BAD_FILES) >= 15
    for path in BAD_FILES:
        assert path.with_suffix(".err").exists(), path.name


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_file_stops_with_its_exact_one_line_message(path: Path) -> None:
    expected = path.with_suffix(".err").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(ConfigError) as caught:
        parse_indicators_text(path.read_text(encoding="utf-8"), source="indicators.yaml")
    assert str(caught.value) == expected
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


def test_each_bad_file_differs_from_the_good_one_in_one_place() -> None:
    good = (FIXTURES / "good.yaml").read_text(encoding="utf-8").splitlines()
    for path in BAD_FILES:
        bad = path.read_text(encoding="utf-8").splitlines()
        changed = [line for line in bad if line not in good] + [
            line for line in good if line not in bad
        ]
        assert 1 <= len(changed) <= 5, path.name


def test_error_names_the_file_given(tmp_path: Path) -> None:
    path = tmp_path / "watch.yaml"
    path.write_text(
        (FIXTURES / "bad_weight_not_a_number.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with pytest.raises(
        ConfigError, match=rf"^{path}: indicators.border_clash.weight: expected a number"
    ):
        load_config(indicators_path=path, env={})


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(indicators_path=tmp_path / "nope.yaml", env={})
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(indicators_path=empty, env={})


def test_environment_variable_names_the_indicators_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text((FIXTURES / "good.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(env={"MONITOR_INDICATORS": str(path)})
    assert config.indicators_path == str(path) and [f.id for f in config.feeds] == ["wire"]


def test_shipped_file_is_plain_yaml_for_other_tools() -> None:
    document = yaml.safe_load((REPO / "indicators.yaml").read_text(encoding="utf-8"))
    assert set(document) == {"version", "feeds", "scoring", "alerts", "theatres", "indicators"}


def test_the_baseline_keeps_the_desks_days_unless_scoring_sets_its_own_zone() -> None:
    good = (FIXTURES / "good.yaml").read_text(encoding="utf-8")
    inherited = parse_indicators_text(good, source="indicators.yaml")
    assert inherited.scoring.timezone == "Asia/Bishkek"  # from alerts.timezone
    own = parse_indicators_text(
        good.replace(
            "  half_life_hours: 72\n", "  half_life_hours: 72\n  timezone: Asia/Yerevan\n"
        ),
        source="indicators.yaml",
    )
    assert own.scoring.timezone == "Asia/Yerevan"
    with pytest.raises(ConfigError) as caught:
        parse_indicators_text(
            good.replace(
                "  half_life_hours: 72\n", "  half_life_hours: 72\n  timezone: Mars/Olympus\n"
            ),
            source="indicators.yaml",
        )
    assert str(caught.value).startswith("indicators.yaml: scoring.timezone: ")


# -- the YAML parser: libyaml's when present, the same results as the pure-Python one ---


def test_the_c_yaml_loader_is_used_when_pyyaml_has_it() -> None:
    from monitor import config

    if yaml.__with_libyaml__:
        assert config.YAML_LOADER is yaml.CSafeLoader
    else:  # pragma: no cover - PyYAML built without libyaml
        assert config.YAML_LOADER is yaml.SafeLoader


@pytest.mark.parametrize(
    "path",
    [REPO / "indicators.yaml", FIXTURES / "good.yaml", *BAD_FILES],
    ids=lambda p: p.name,
)
def test_both_yaml_loaders_read_the_same_document(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        python = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        python = "refused"
    try:
        fast = yaml.load(text, Loader=yaml.CSafeLoader) if yaml.__with_libyaml__ else python
    except yaml.YAMLError:
        fast = "refused"
    assert fast == python


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_each_loader_stops_a_bad_file_with_the_same_message(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor import config

    messages = []
    for loader in (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        monkeypatch.setattr(config, "YAML_LOADER", loader)
        with pytest.raises(ConfigError) as caught:
            parse_indicators_text(path.read_text(encoding="utf-8"), source="indicators.yaml")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
