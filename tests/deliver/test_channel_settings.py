"""`[[routes]]` settings (issue 13): strict one-line errors with the key path, secrets from
the environment, a file or a systemd credential, never shown; and the routing rules."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import load_config, load_settings
from monitor.deliver.channels.enqueue import level_ranks
from monitor.deliver.channels.routing import is_routed
from monitor.deliver.channels.settings import describe_route, masked_url
from monitor.errors import ConfigError
from monitor.models import AlertDecision, Route
from tests.support.crash import INDICATORS, base_config

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
T0 = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)


def write(tmp_path: Path, text: str, *, mode: int = 0o600) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_routes_with_secrets_from_env_file_and_credential(tmp_path: Path) -> None:
    secret_file = tmp_path / "hook.url"
    secret_file.write_text("https://hooks.example.org/T/B/XYZ\n", encoding="utf-8")
    secret_file.chmod(0o600)
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "am-token").write_text("am-s3cret\n", encoding="utf-8")
    path = write(
        tmp_path,
        f"""
[[routes]]
name = "desk"
url_env = "MONITOR_SLACK_URL"
kinds = ["urgent", "digest"]
theatres = ["kg-tj"]
min_level = "high"
quiet_hours = ["22:00", "07:00"]

[[routes]]
name = "hook"
channel = "webhook"
url_file = "{secret_file}"

[[routes]]
name = "ops"
channel = "alertmanager"
url = "http://127.0.0.1:9093"
token_credential = "am-token"
kinds = ["urgent", "feed"]
quiet_hours = []
""",
    )
    env = {"MONITOR_SLACK_URL": SLACK, "CREDENTIALS_DIRECTORY": str(credentials)}
    desk, hook, ops = load_settings(path, env).routes
    assert (desk.channel, desk.url, desk.url_source) == (
        "apprise",
        SLACK,
        "url_env MONITOR_SLACK_URL",
    )
    assert desk.kinds == ("urgent", "digest") and desk.theatres == ("kg-tj",)
    assert desk.min_level == "high" and desk.quiet_hours == ("22:00", "07:00")
    assert hook.url == "https://hooks.example.org/T/B/XYZ" and hook.kinds == ("urgent",)
    assert hook.quiet_hours is None, "absent: the watch list's quiet hours"
    assert ops.token == "am-s3cret" and ops.quiet_hours == ()
    shown = " ".join(describe_route(r) for r in (desk, hook, ops)) + repr((desk, hook, ops))
    for secret in ("TIiajkdnlazkcOXrIdevi7FQ", "T1JJ3T3L2", "XYZ", "am-s3cret"):
        assert secret not in shown
    assert masked_url(desk) == "slack://•••"
    assert masked_url(hook) == "https://hooks.example.org/•••"
    assert "from url_env MONITOR_SLACK_URL" in describe_route(desk)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[[routes]]\nurl_env = "X"', {"X": SLACK}, "routes[0].name: every route needs a name"),
        (
            '[[routes]]\nname = "a"\nurl_env = "MISSING"',
            {},
            "routes[0].url_env: environment variable MISSING is not set (or empty)",
        ),
        (
            '[[routes]]\nname = "a"\nchannel = "sms"\nurl_env = "X"',
            {"X": SLACK},
            "routes[0].channel: expected one of apprise, webhook, alertmanager, got 'sms'",
        ),
        (
            '[[routes]]\nname = "a"\nurl_env = "X"\nkinds = ["urgent", "everything"]',
            {"X": SLACK},
            "routes[0].kinds[1]: expected one of urgent, digest, feed, got 'everything'",
        ),
        (
            '[[routes]]\nname = "a"\nurl_env = "X"\nquiet_hours = ["22:00"]',
            {"X": SLACK},
            'routes[0].quiet_hours: expected ["HH:MM", "HH:MM"] (start, end; [] for none), got [\'22:00\']',
        ),
        (
            '[[routes]]\nname = "a"\nurl_env = "X"\ncolour = "red"',
            {"X": SLACK},
            "routes[0].colour: unknown key",
        ),
        (
            '[[routes]]\nname = "a"\nurl_env = "X"\n[[routes]]\nname = "a"\nurl_env = "X"',
            {"X": SLACK},
            "routes[1].name: route name 'a' is used twice",
        ),
        (
            '[[routes]]\nname = "a"\nurl_env = "X"',
            {"X": "notaservice://whatever"},
            "routes[0].url_env: Apprise does not understand this notaservice:// URL",
        ),
        (
            '[[routes]]\nname = "a"\nchannel = "webhook"\nurl_env = "X"',
            {"X": "ftp://example.org/x"},
            "routes[0].url_env: a webhook route needs an http:// or https:// URL",
        ),
        (
            '[[routes]]\nname = "a"\nurl_env = "X"\nurl = "json://localhost"',
            {"X": SLACK},
            "routes[0].url_env: give only one of url, url_env",
        ),
        (
            '[[routes]]\nname = "a"\nurl_credential = "slack"',
            {},
            "routes[0].url_credential: no CREDENTIALS_DIRECTORY",
        ),
    ],
    ids=[
        "no-name",
        "env-unset",
        "bad-channel",
        "bad-kind",
        "bad-quiet-hours",
        "unknown-key",
        "duplicate",
        "apprise-unknown-scheme",
        "webhook-scheme",
        "two-sources",
        "no-credentials-dir",
    ],
)
def test_bad_routes_fail_with_one_line(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env)
    error = str(caught.value)
    assert "\n" not in error
    assert error.startswith(f"{path}: {message}"), error
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in error, "no secret in an error"


def test_a_secret_url_in_a_world_readable_file_is_refused(tmp_path: Path) -> None:
    text = f'[[routes]]\nname = "desk"\nurl = "{SLACK}"\n'
    with pytest.raises(ConfigError, match=r"routes\[0\].url: .* is readable by everyone"):
        load_settings(write(tmp_path, text, mode=0o644), {})
    assert load_settings(write(tmp_path, text, mode=0o640), {}).routes[0].url == SLACK
    # An Alertmanager address with no secret in it may sit in a readable file.
    plain = '[[routes]]\nname = "ops"\nchannel = "alertmanager"\nurl = "http://127.0.0.1:9093"\n'
    assert load_settings(write(tmp_path, plain, mode=0o644), {}).routes[0].name == "ops"


def test_a_world_readable_secret_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "slack.url"
    secret.write_text(SLACK, encoding="utf-8")
    secret.chmod(0o644)
    path = write(tmp_path, f'[[routes]]\nname = "desk"\nurl_file = "{secret}"\n')
    with pytest.raises(ConfigError, match=r"everyone may read it \(chmod o-r"):
        load_settings(path, {})


def test_apprise_missing_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if not installed: import fails
    path = write(tmp_path, '[[routes]]\nname = "desk"\nurl_env = "X"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"X": SLACK})
    assert str(caught.value) == (
        f"{path}: routes[0].channel: an apprise route needs the Apprise library: "
        "pip install 'monitor[apprise]' (or pip install apprise)"
    )
    hook = '[[routes]]\nname = "h"\nchannel = "webhook"\nurl = "http://127.0.0.1:1/x"\n'
    assert load_settings(write(tmp_path, hook), {}).routes[0].channel == "webhook"


def test_routes_name_theatres_and_levels_of_the_watch_list(tmp_path: Path) -> None:
    for key, value, message in (
        ("theatres", '["atlantis"]', "routes[0].theatres[0]: unknown theatre 'atlantis'"),
        ("min_level", '"extreme"', "routes[0].min_level: unknown level 'extreme'"),
    ):
        path = write(tmp_path, f'[[routes]]\nname = "d"\nurl_env = "X"\n{key} = {value}\n')
        with pytest.raises(ConfigError) as caught:
            load_config(indicators_path=INDICATORS, settings_path=path, env={"X": SLACK})
        assert str(caught.value).startswith(f"{path}: {message}"), caught.value


def test_no_routes_keeps_email_alone(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), {}).routes == ()


def _decision(kind: str, level: str | None, previous: str | None, **extra: object) -> AlertDecision:
    return AlertDecision(
        dedup_key=f"k:{kind}",
        kind=kind,  # type: ignore[arg-type]
        theatre_id=extra.pop("theatre", "kg-tj"),  # type: ignore[arg-type]
        created_at=T0,
        urgent=extra.pop("urgent", True),  # type: ignore[arg-type]
        level=level,
        previous_level=previous,
    )


@pytest.mark.parametrize(
    ("route_options", "decision", "routed"),
    [
        ({}, _decision("level_up", "elevated", "low"), True),
        ({"min_level": "high"}, _decision("level_up", "elevated", "low"), False),
        ({"min_level": "high"}, _decision("level_up", "high", "elevated"), True),
        ({"min_level": "high"}, _decision("resolved", "low", "high"), True),
        ({"min_level": "high"}, _decision("critical", "low", None), True),
        ({"theatres": ("am-az",)}, _decision("surge", "high", "high"), False),
        ({}, _decision("level_down", "elevated", "high", urgent=False), False),
        ({}, _decision("feed_down", None, None, theatre=None, urgent=False), False),
        (
            {"kinds": ("feed",)},
            _decision("feed_down", None, None, theatre=None, urgent=False),
            True,
        ),
        ({"kinds": ("feed",)}, _decision("level_up", "high", "low"), False),
        ({}, _decision("digest", None, None, theatre=None), False),
        ({"kinds": ("digest",)}, _decision("digest", None, None, theatre=None), True),
        ({"kinds": ("digest",)}, _decision("test", None, None, theatre=None), True),
    ],
    ids=[
        "urgent-default",
        "below-min-level",
        "at-min-level",
        "resolved-from-min-level",
        "critical-passes-min-level",
        "other-theatre",
        "level-down-waits-for-digest",
        "feed-not-asked-for",
        "feed-asked-for",
        "feed-only-route",
        "digest-not-asked-for",
        "digest-asked-for",
        "test-goes-everywhere",
    ],
)
def test_routing_table(route_options: dict, decision: AlertDecision, routed: bool) -> None:
    ranks = level_ranks(base_config().scoring.levels)
    rule = Route(name="r", channel="webhook", url="http://127.0.0.1/x", **route_options)
    assert is_routed(rule, decision, level_ranks=ranks) is routed


def test_the_readmes_route_examples_load_as_written(tmp_path: Path) -> None:
    """The copy-paste examples (Slack, Telegram, ntfy, webhook, Alertmanager) are valid."""
    import re

    from tests.support.crash import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[[routes]]" in b)
    env = dict(re.findall(r"export (\w+)='([^']+)'", block))
    assert set(env) == {"MONITOR_SLACK_URL", "MONITOR_TELEGRAM_URL", "MONITOR_NTFY_URL"}
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "hook-token").write_text("t0ken\n", encoding="utf-8")
    env["CREDENTIALS_DIRECTORY"] = str(credentials)
    path = write(tmp_path, block)
    config = load_config(indicators_path=INDICATORS, settings_path=path, env=env)
    routes = {r.name: r for r in config.settings.routes}
    assert list(routes) == ["slack", "telegram", "phones", "newsroom-hook", "ops"]
    assert [routes[n].channel for n in routes] == [
        "apprise",
        "apprise",
        "apprise",
        "webhook",
        "alertmanager",
    ]
    assert routes["newsroom-hook"].token == "t0ken"


def test_config_dump_lists_routes_masked(tmp_path: Path) -> None:
    from monitor.ops.dump import dump_json, dump_toml

    path = write(tmp_path, '[[routes]]\nname = "desk"\nurl_env = "X"\n')
    settings = load_settings(path, {"X": SLACK})
    for text in (dump_toml(settings, sources={}), dump_json(settings, sources={})):
        assert "desk: apprise slack://•••" in text
        assert "TIiajkdnlazkcOXrIdevi7FQ" not in text and "T1JJ3T3L2" not in text
