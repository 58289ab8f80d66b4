"""The command line for channels (issue 13): `check-config` lists routes with secrets
masked, `test-notify [ROUTE]` reports per route, `alerts` and `status` show delivery per
route. Real receivers on 127.0.0.1, a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.app import cli
from monitor.db import Store
from monitor.pipeline import deliver_route
from tests.support.channels import route, routes_config
from tests.support.crash import INDICATORS, record_alerts
from tests.support.http import Reply, refused_port
from tests.support.receiver import Receiver

TOKEN = "ntfy-s3cret-token"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def settings_file(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"""database_path = "{tmp_path / "monitor.db"}"
[smtp]
recipients = ["duty@example.org"]

[[routes]]
name = "phone"
url_env = "MONITOR_NTFY_URL"

[[routes]]
name = "hook"
channel = "webhook"
url = "{receiver.url("/hook")}"
token_env = "MONITOR_HOOK_TOKEN"

[[routes]]
name = "broken"
channel = "webhook"
url = "{receiver.url("/broken")}"
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def invoke(tmp_path: Path, receiver: Receiver, *args: str) -> tuple[int, str, str]:
    env = {
        "MONITOR_NTFY_URL": f"ntfy://desk:{TOKEN}@127.0.0.1:{receiver.port}/desk",
        "MONITOR_HOOK_TOKEN": "hook-s3cret",
    }
    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(settings_file(tmp_path, receiver)),
            "--indicators",
            str(INDICATORS),
            *args,
        ],
        env=env,
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def test_check_config_lists_routes_with_secrets_masked(tmp_path: Path, receiver: Receiver) -> None:
    code, out, _ = invoke(tmp_path, receiver, "check-config")
    assert code == 0, out
    assert "routes (3):" in out
    assert "phone: apprise ntfy://••• (from url_env MONITOR_NTFY_URL)" in out
    assert f"hook: webhook http://127.0.0.1:{receiver.port}/••• with a bearer token •••" in out
    assert TOKEN not in out and "hook-s3cret" not in out and "/hook" not in out


def test_test_notify_reports_each_route(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script("/broken", [Reply(404, b"no such hook")])
    code, out, _ = invoke(tmp_path, receiver, "test-notify")
    assert code == 1, "one route failed"
    lines = out.splitlines()
    assert lines[0].startswith("phone (apprise ntfy://•••): delivered")
    assert lines[1].startswith("hook (webhook http://127.0.0.1:") and "delivered" in lines[1]
    assert "broken" in lines[2] and "FAILED, permanent: HTTP 404: no such hook" in lines[2]
    assert TOKEN not in out
    assert receiver.at("/")[0].json()["topic"] == "desk"
    hook = receiver.at("/hook")[0]
    assert hook.json()["kind"] == "test" and hook.headers["authorization"] == "Bearer hook-s3cret"
    assert receiver.at("/broken")

    code, out, _ = invoke(tmp_path, receiver, "test-notify", "hook")
    assert code == 0 and out.count("delivered") == 1 and len(receiver.at("/hook")) == 2
    code, _, err = invoke(tmp_path, receiver, "test-notify", "nope")
    assert code == 2 and "no route named 'nope' (routes: phone, hook, broken)" in err


def test_alerts_and_status_show_delivery_per_route(tmp_path: Path, receiver: Receiver) -> None:
    db_path = tmp_path / "monitor.db"
    at = datetime.now(UTC).replace(microsecond=0)  # `status` counts deaths of the last 7 days
    hook = route("hook", "webhook", receiver.url("/hook"))
    broken = route("broken", "webhook", receiver.url("/broken"))
    receiver.script("/broken", [Reply(400, b"bad")])
    with Store.open(db_path) as store:
        config = routes_config(db_path, hook, broken)
        record_alerts(store, config, 1, at=at)
        deliver_route(store, hook, now=at)
        deliver_route(store, broken, now=at)
    code, out, _ = invoke(tmp_path, receiver, "alerts")
    assert code == 0
    assert "channels" in out.splitlines()[0]
    assert "broken:dead, hook:sent" in out
    code, out, _ = invoke(tmp_path, receiver, "alerts", "--format", "json")
    (row,) = json.loads(out)
    assert [(d["route"], d["status"]) for d in row["channels"]] == [
        ("broken", "dead"),
        ("hook", "sent"),
    ]
    code, out, _ = invoke(tmp_path, receiver, "status")
    assert "route hook:   0 pending (0 overdue), 1 sent, 0 dead" in out
    assert "route broken: 0 pending (0 overdue), 0 sent, 1 dead; last error: HTTP 400: bad" in out
    assert "route broken: 1 message(s) died" in out


def test_test_notify_without_routes_says_how(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(f"[smtp]\nport = {refused_port()}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["--config", str(path), "--indicators", str(INDICATORS), "test-notify"]
    )
    assert result.exit_code == 2
    assert "no routes configured (add [[routes]] to monitor.toml; see README)" in result.stderr
