"""What a real round says about itself (issue 11, sections 4 and 5).

`monitor run --once` runs as a subprocess against a real local feed server; `status`,
`feeds` and `check-config` then read what it left, through the CLI. The exit status of
a round whose every feed failed, the warning when alerts go nowhere (check-config, the
round's and the daemon's start log, status), the date a 410 feed went, a feed of empty
items, and what `monitor feeds` shows of errors and warnings.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from monitor import db
from monitor.cli.app import EXIT_ALL_FEEDS_FAILED, cli
from monitor.lab.mailsink import free_port
from tests.support.daemon import CLASH_ITEMS, DaemonProcess, Deployment, rss, write_deployment
from tests.support.http import FeedServer, RecordedRequest, Reply

RSS = (("Content-Type", "application/rss+xml"),)
RECIPIENTS_LINE = 'recipients = ["analyst@example.org"]\n'


def deploy(
    tmp_path: Path, feeds: dict[str, str], *, recipients: bool = True, hourly: bool = False
) -> Deployment:
    """A deployment whose SMTP port has nobody listening: messages wait, which is fine.
    `hourly`: feeds are polled hourly (a failed one backs off for most of an hour)."""
    deployment = write_deployment(tmp_path / "deploy", feeds=feeds, smtp_port=free_port())
    text = deployment.settings.read_text(encoding="utf-8")
    if not recipients:
        assert RECIPIENTS_LINE in text
        text = text.replace(RECIPIENTS_LINE, "")
    if hourly:
        assert "default_feed_interval_seconds = 1\n" in text
        text = text.replace(
            "default_feed_interval_seconds = 1\n", "default_feed_interval_seconds = 3600\n"
        )
    deployment.settings.write_text(text, encoding="utf-8")
    return deployment


def run_once(deployment: Deployment) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        deployment.args("run", "--once"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=deployment.folder,
    )


def invoke(deployment: Deployment, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli,
        ["--config", str(deployment.settings), "--indicators", str(deployment.indicators), *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def status(deployment: Deployment) -> tuple[int, dict[str, object], str]:
    """`monitor status` (JSON and table); the tests' short score tick would make the
    default cycle age seconds, so it is given."""
    code, out, _ = invoke(deployment, "status", "--max-age", "1h", "--format", "json")
    _, table, _ = invoke(deployment, "status", "--max-age", "1h")
    return code, json.loads(out), table


def feeds(deployment: Deployment, fmt: str = "json") -> str:
    code, out, err = invoke(deployment, "feeds", "--format", fmt)
    assert code == 0, err
    return out


# -- run --once: a distinct exit when every feed failed --------------------------------------


def test_a_round_whose_every_feed_failed_exits_75(tmp_path: Path, server: FeedServer) -> None:
    server.route("/a.xml", Reply(500, b"down"))
    server.route("/b.xml", Reply(503, b"down"))
    deployment = deploy(tmp_path, {"a": server.url("/a.xml"), "b": server.url("/b.xml")})
    result = run_once(deployment)
    assert result.returncode == EXIT_ALL_FEEDS_FAILED == 75, (result.stdout, result.stderr)
    assert "polled 2 feeds (0 new content, 0 unchanged, 2 failed)" in result.stdout
    assert "monitor: every feed polled failed (2 of 2; http_500: 1, http_503: 1)" in result.stderr
    code, report, table = status(deployment)
    assert code == 1 and report["state"] == "degraded", table
    assert "every polled feed is failing or gone (2 of 2" in table


def test_a_round_with_one_answering_feed_exits_0(tmp_path: Path, server: FeedServer) -> None:
    server.route("/a.xml", Reply(500, b"down"))
    server.route("/b.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(tmp_path, {"a": server.url("/a.xml"), "b": server.url("/b.xml")})
    result = run_once(deployment)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "every feed polled failed" not in result.stderr
    code, report, table = status(deployment)
    assert code == 0 and report["state"] == "ok", table  # one of two failing: not "more than half"


def test_a_round_where_no_feed_was_due_exits_0(tmp_path: Path, server: FeedServer) -> None:
    server.route("/a.xml", Reply(500, b"down"))
    deployment = deploy(tmp_path, {"a": server.url("/a.xml")}, hourly=True)
    assert run_once(deployment).returncode == EXIT_ALL_FEEDS_FAILED
    again = run_once(deployment)  # the failed feed backs off: nothing due, nothing failed
    assert (again.returncode, len(server.requests)) == (0, 1), again.stderr
    assert "polled 0 feeds" in again.stdout


# -- no recipient: warned loudly, and degraded --------------------------------------------


def test_no_recipient_is_warned_everywhere_and_makes_status_degraded(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/wire.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(tmp_path, {"wire": server.url("/wire.xml")}, recipients=False)
    code, out, err = invoke(deployment, "check-config")
    assert code == 0 and "configuration OK, with 1 warning" in out
    assert err.startswith("WARNING: no recipient configured: alerts are stored but never sent")
    result = run_once(deployment)
    assert result.returncode == 0, result.stderr
    assert "NO ALERT WILL BE SENT: no recipient configured" in result.stderr
    code, report, table = status(deployment)
    assert code == 1 and report["state"] == "degraded", table
    assert report["reasons"] == [
        "no recipient configured: alerts are stored but never sent "
        "(set smtp.recipients (or MONITOR_SMTP_RECIPIENTS) or maildir)"
    ]


def test_with_a_recipient_the_same_round_is_ok_and_nothing_is_warned(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/wire.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(tmp_path, {"wire": server.url("/wire.xml")})
    code, out, err = invoke(deployment, "check-config")
    assert (code, err) == (0, "") and out.endswith("configuration OK\n")
    result = run_once(deployment)
    assert result.returncode == 0 and "NO ALERT WILL BE SENT" not in result.stderr
    code, report, table = status(deployment)
    assert code == 0 and report["reasons"] == [], table


def test_the_daemon_warns_at_start_when_there_is_no_recipient(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/wire.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(tmp_path, {"wire": server.url("/wire.xml")}, recipients=False)
    daemon = DaemonProcess(deployment)
    try:
        log = daemon.wait_for_log("NO ALERT WILL BE SENT: no recipient configured", timeout=60)
        assert "WARNING monitor.service.daemon" in log
        daemon.wait_for_log("poll cycle feeds=1", timeout=60)  # it still runs and stores
    finally:
        assert daemon.stop() == 0
    with db.Store.open(deployment.db, readonly=True) as store:
        assert db.article_activity(store)["last_article_at"] is not None


# -- a 410 feed: the date it went --------------------------------------------------------


def test_status_shows_the_date_a_feed_went(tmp_path: Path, server: FeedServer) -> None:
    server.route("/gone.xml", Reply(410, b"removed"))
    server.route("/wire.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(
        tmp_path, {"gone": server.url("/gone.xml"), "wire": server.url("/wire.xml")}
    )
    before = datetime.now(UTC).replace(microsecond=0)
    assert run_once(deployment).returncode == 0
    code, report, table = status(deployment)
    assert code == 1
    [feed] = report["feeds"]["failing_feeds"]  # type: ignore[index]
    went = datetime.fromisoformat(feed["failing_since"].replace("Z", "+00:00"))
    assert before <= went <= datetime.now(UTC)
    assert f"gone since {feed['failing_since']} (HTTP 410, no longer polled)" in table
    assert "since ?" not in table and "(0 failures)" not in table
    assert f"feed gone is gone (HTTP 410 since {feed['failing_since']})" in table


# -- a feed of empty items is like a feed of no items --------------------------------------

EMPTY_ITEMS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title>'
    b"<link>https://news.example.org/</link><description>x</description>"
    b"<item/><item/><item></item></channel></rss>"
)
NO_ITEMS = EMPTY_ITEMS.replace(b"<item/><item/><item></item>", b"")


def test_a_feed_of_empty_items_is_healthy_and_not_backed_off_like_a_feed_of_none(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/empty-items.xml", Reply(200, EMPTY_ITEMS, RSS))
    server.route("/no-items.xml", Reply(200, NO_ITEMS, RSS))
    server.route("/wire.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(
        tmp_path,
        {
            "empty-items": server.url("/empty-items.xml"),
            "no-items": server.url("/no-items.xml"),
            "wire": server.url("/wire.xml"),
        },
    )
    result = run_once(deployment)
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(feeds(deployment))}
    for feed_id in ("empty-items", "no-items"):
        row = rows[feed_id]
        assert row["status"] == "warning" and row["consecutive_failures"] == 0, row
        assert row["failing_since"] is None and row["last_error"].startswith("empty_feed: ")
    assert rows["empty-items"]["last_error"].endswith("only empty items (3)")
    code, _, table = status(deployment)
    assert code == 0, table


# -- monitor feeds: the whole error in JSON, and what this poll found ----------------------


def test_feeds_json_and_csv_keep_the_whole_error_the_table_shortens_it(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/wire.xml", Reply(200, rss(CLASH_ITEMS), RSS))
    deployment = deploy(
        tmp_path, {"private": "http://10.0.0.1:9/feed.xml", "wire": server.url("/wire.xml")}
    )
    assert run_once(deployment).returncode == 0
    [row] = [r for r in json.loads(feeds(deployment)) if r["id"] == "private"]
    assert row["last_error"] == (
        "ssrf_blocked: 10.0.0.1 (private); refusing to connect "
        "(add its network to allow_private_networks to permit it)"
    )
    assert row["last_error"] in feeds(deployment, "csv")
    table = feeds(deployment, "table")
    assert row["last_error"][:59] + "…" in table and "permit it" not in table


MALFORMED = rss(CLASH_ITEMS).replace(b"</channel></rss>", b"")  # entries, but cut short


def test_after_a_304_a_feed_shows_what_this_poll_found_not_the_last_warning(
    tmp_path: Path, server: FeedServer
) -> None:
    def malformed_then_304(request: RecordedRequest) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304, b"", (("ETag", '"v1"'),))
        return Reply(200, MALFORMED, (*RSS, ("ETag", '"v1"')))

    server.route("/wire.xml", malformed_then_304)
    deployment = deploy(tmp_path, {"wire": server.url("/wire.xml")})
    assert run_once(deployment).returncode == 0
    [first] = json.loads(feeds(deployment))
    assert first["status"] == "warning"
    assert first["last_error"].startswith("malformed: malformed feed: SAXParseException")
    with db.Store.open(deployment.db) as store:
        store.make_due("wire", now=datetime.now(UTC))  # what `poll-now` would do
    assert run_once(deployment).returncode == 0
    assert server.requests[-1].headers.get("if-none-match") == '"v1"'
    [second] = json.loads(feeds(deployment))
    assert second["status"] == "not_modified" and second["last_error"] == "", second
    assert second["last_error_at"] is None
