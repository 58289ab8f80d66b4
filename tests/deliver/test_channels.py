"""Chat, push, webhook and Alertmanager channels (issue 13) against real receivers on
127.0.0.1 and a real SQLite file. Alerts are recorded with `pipeline.record_alert`, as
scoring records them; rows are delivered with `pipeline.deliver_route` / `deliver_channels`. The
clock is passed in: a retry is reached by moving `now` past the row's `next_attempt_at`.

Faults (issue 13): receiver down for K attempts then up, 429 with Retry-After, 500 then
200, 400 (dead, the other routes still delivered), a receiver that hangs (bounded by the
timeout, other routes not delayed). The kill -9 window and the daemon's stop are in
tests/service/test_channel_crash.py; the real Alertmanager in test_alertmanager.py.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor import pipeline
from monitor.db import Store
from monitor.models import ScoredMatch, from_iso
from monitor.pipeline import deliver_channels, deliver_route
from tests.support.channels import channel_rows, level_alert, record, route, routes_config
from tests.support.crash import alert_decision, outbox_rows, record_alerts
from tests.support.http import Reply
from tests.support.receiver import HANG, Receiver

T0 = datetime(2024, 9, 14, 8, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "monitor.db") as opened:
        yield opened


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def keys(requests: list) -> list[str]:
    return [r.json()["key"] for r in requests]


# ---------------------------------------------------------------------------
# The JSON webhook


def test_webhook_posts_the_documented_payload_once_per_alert(
    store: Store, receiver: Receiver
) -> None:
    hook = route("hook", "webhook", receiver.url("/hook"), token="s3cret-token")
    config = routes_config(Path(store.path), hook, report_url="https://reports.example.org/")
    decisions = record_alerts(store, config, 2, at=T0)
    summary = deliver_route(store, hook, now=T0)
    assert summary.as_dict() == {"sent": 2, "retried": 0, "dead": 0}
    received = receiver.wait_for(2, path="/hook")
    assert keys(received) == [d.dedup_key for d in decisions]
    first = received[0]
    assert first.headers["content-type"] == "application/json"
    assert first.headers["idempotency-key"] == decisions[0].dedup_key
    assert first.headers["x-monitor-payload-version"] == "1"
    assert first.headers["authorization"] == "Bearer s3cret-token"
    payload = first.json()
    assert payload["version"] == 1
    assert payload["kind"] == "critical" and payload["urgent"] is True
    assert payload["theatre"] == {"id": "kg-tj", "name": payload["theatre"]["name"]}
    assert payload["level"] == "high" and payload["index"] == 60.0
    assert "border" in payload["reason"].lower()
    assert payload["explain"].startswith("monitor explain kg-tj --at ")
    assert payload["report_url"].startswith("https://reports.example.org/")
    assert payload["title"] and payload["text"].startswith(payload["text"].splitlines()[0])
    assert isinstance(payload["stories"], list) and payload["resolves"] == []
    # Sent rows are never sent again.
    assert deliver_route(store, hook, now=T0 + timedelta(days=1)).as_dict() == {
        "sent": 0,
        "retried": 0,
        "dead": 0,
    }
    assert len(receiver.at("/hook")) == 2
    assert [(r["status"], r["attempts"]) for r in channel_rows(store)] == [("sent", 1)] * 2


def test_payload_stories_carry_evidence_and_links_cleaned(store: Store, receiver: Receiver) -> None:
    """A critical alert's story: evidence sentence and link; feed text cleaned as for email."""
    hook = route("hook", "webhook", receiver.url("/hook"))
    config = routes_config(Path(store.path), hook)
    good = ScoredMatch(
        match_id=7,
        story_id=3,
        article_id=1,
        indicator_id="border_clash",
        theatre_id="kg-tj",
        weight=3.0,
        confidence=0.9,
        source_weight=1.0,
        sources=2,
        occurred_at=T0,
        half_life_hours=None,
        title="Clash at the border\r\nBcc: victim@example.org",
        outlet="Example News",
        url="https://news.example.org/a",
        evidence="Troops exchanged fire at the border near Batken.",
    )
    hostile = replace(good, match_id=8, story_id=4, url="javascript:alert(1)", title="Other")
    decision = replace(alert_decision(1, T0), match_ids=(7, 8))
    record(store, config, decision, matches=[good, hostile])
    deliver_route(store, hook, now=T0)
    stories = receiver.wait_for(1)[0].json()["stories"]
    by_title = {s["title"]: s for s in stories}
    first = by_title["Clash at the border Bcc: victim@example.org"]
    assert first["evidence"] == ["Troops exchanged fire at the border near Batken."]
    assert first["url"] == "https://news.example.org/a"
    assert first["outlet"] == "Example News" and first["indicators"] == ["border_clash"]
    assert first["critical"] is True
    assert by_title["Other"]["url"] is None, "only http(s) links are passed on"


def test_rows_are_written_in_the_alerts_transaction(store: Store, receiver: Receiver) -> None:
    """No alert, no row: a rolled-back transaction leaves neither; a repeat adds nothing."""
    hook = route("hook", "webhook", receiver.url("/hook"))
    config = routes_config(Path(store.path), hook)
    decision = alert_decision(1, T0)
    with pytest.raises(RuntimeError), store.transaction():
        pipeline.record_alert(store, config, decision, now=T0)
        assert len(channel_rows(store)) == 1
        raise RuntimeError("the scoring transaction fails after the alert")
    assert channel_rows(store) == [] and outbox_rows(store) == []
    record(store, config, decision)
    with store.transaction():
        assert pipeline.record_alert(store, config, decision, now=T0) is None
    assert len(channel_rows(store)) == 1 and len(outbox_rows(store)) == 1


# ---------------------------------------------------------------------------
# Apprise: form and JSON webhooks, ntfy and Gotify reached on a custom host


@pytest.mark.parametrize(
    ("scheme", "path", "check"),
    [
        ("form", "/form", lambda r: b"title=" in r.body and b"message=" in r.body),
        (
            "json",
            "/json",
            lambda r: r.json()["title"] and "critical" in r.json()["message"].lower(),
        ),
        ("ntfy", "/", lambda r: r.json()["topic"] == "desk" and r.json()["message"]),
        ("gotify", "/message", lambda r: r.json()["title"] and r.json()["message"]),
    ],
    ids=["form", "json", "ntfy", "gotify"],
)
def test_apprise_reaches_a_local_service(
    store: Store, receiver: Receiver, scheme: str, path: str, check: object
) -> None:
    target = {
        "form": f"form://127.0.0.1:{receiver.port}/form",
        "json": f"json://127.0.0.1:{receiver.port}/json",
        "ntfy": f"ntfy://127.0.0.1:{receiver.port}/desk",
        "gotify": f"gotify://127.0.0.1:{receiver.port}/AbCdEfGhIjKlMn",
    }[scheme]
    chat = route("chat", "apprise", target)
    config = routes_config(Path(store.path), chat)
    record_alerts(store, config, 1, at=T0)
    assert deliver_route(store, chat, now=T0).as_dict() == {"sent": 1, "retried": 0, "dead": 0}
    received = receiver.wait_for(1, path=path)
    assert len(received) == 1 and check(received[0])  # type: ignore[operator]
    assert channel_rows(store)[0]["status"] == "sent"


# ---------------------------------------------------------------------------
# Faults


def test_receiver_down_for_k_attempts_then_up_is_delivered_once(
    store: Store, receiver: Receiver
) -> None:
    hook = route("hook", "webhook", receiver.url("/hook"), timeout_seconds=2.0)
    config = routes_config(Path(store.path), hook)
    (decision,) = record_alerts(store, config, 1, at=T0)
    receiver.stop()  # connection refused
    now, delays = T0, []
    for attempt in range(1, 4):
        summary = deliver_route(store, hook, now=now, rng=random.Random(attempt))
        assert summary.as_dict() == {"sent": 0, "retried": 1, "dead": 0}
        (row,) = channel_rows(store)
        assert row["attempts"] == attempt and "connection" in row["last_error"]
        due = from_iso(row["next_attempt_at"])
        delays.append((due - now).total_seconds())
        assert deliver_route(store, hook, now=due - timedelta(seconds=1)).retried == 0
        now = due
    assert delays == sorted(delays) and delays[0] > 0, "backoff grows"
    receiver.start()
    assert deliver_route(store, hook, now=now).sent == 1
    assert keys(receiver.wait_for(1)) == [decision.dedup_key]
    (row,) = channel_rows(store)
    assert (row["status"], row["attempts"]) == ("sent", 4)
    assert deliver_route(store, hook, now=now + timedelta(days=1)).sent == 0
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_honours_retry_after(store: Store, receiver: Receiver, form: str) -> None:
    hook = route("hook", "webhook", receiver.url("/hook"))
    config = routes_config(Path(store.path), hook)
    record_alerts(store, config, 1, at=T0)
    # The HTTP date is computed from the real clock the channel reads for it.
    value = (
        "120"
        if form == "seconds"
        else format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    )
    receiver.script("/hook", [Reply(429, b"slow down", (("Retry-After", value),)), Reply(200)])
    assert deliver_route(store, hook, now=T0).retried == 1
    (row,) = channel_rows(store)
    wait = (from_iso(row["next_attempt_at"]) - T0).total_seconds()
    assert 100 <= wait <= 120, wait
    assert "HTTP 429" in row["last_error"]
    assert deliver_route(store, hook, now=T0 + timedelta(seconds=wait - 1)).sent == 0
    assert deliver_route(store, hook, now=T0 + timedelta(seconds=wait)).sent == 1
    assert len(receiver.at("/hook")) == 2
    assert channel_rows(store)[0]["attempts"] == 2


def test_500_then_200_is_delivered_once(store: Store, receiver: Receiver) -> None:
    hook = route("hook", "webhook", receiver.url("/hook"))
    config = routes_config(Path(store.path), hook)
    (decision,) = record_alerts(store, config, 1, at=T0)
    receiver.script("/hook", [Reply(500, b"oops"), Reply(200)])
    assert deliver_route(store, hook, now=T0, rng=random.Random(1)).retried == 1
    (row,) = channel_rows(store)
    assert deliver_route(store, hook, now=from_iso(row["next_attempt_at"])).sent == 1
    assert keys(receiver.at("/hook")) == [decision.dedup_key] * 2  # one 500, one 200
    assert (channel_rows(store)[0]["status"], channel_rows(store)[0]["attempts"]) == ("sent", 2)


def test_400_is_dead_with_one_log_line_and_other_routes_deliver(
    store: Store, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    bad = route("bad", "webhook", receiver.url("/bad"))
    bad_form = route("bad-form", "apprise", f"form://127.0.0.1:{receiver.port}/bad-form")
    good = route("good", "webhook", receiver.url("/good"))
    config = routes_config(Path(store.path), bad, bad_form, good)
    receiver.script("/bad", [Reply(400, b"unknown field")])
    receiver.script("/bad-form", [Reply(400, b"")])
    decisions = record_alerts(store, config, 2, at=T0)
    with caplog.at_level(logging.ERROR, logger="monitor.deliver.channels.dispatch"):
        results = deliver_channels(store, config, now=T0)
    assert results["good"].as_dict() == {"sent": 2, "retried": 0, "dead": 0}
    assert results["bad"].as_dict() == {"sent": 0, "retried": 0, "dead": 2}
    assert results["bad-form"].as_dict() == {"sent": 0, "retried": 0, "dead": 2}
    assert keys(receiver.at("/good")) == [d.dedup_key for d in decisions]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 4, "one line per dead row"
    assert all("route=bad" in r.getMessage() for r in errors)
    dead = channel_rows(store, "bad")
    assert [(r["status"], r["attempts"]) for r in dead] == [("dead", 1)] * 2
    assert "HTTP 400" in dead[0]["last_error"]
    assert "error=400" in channel_rows(store, "bad-form")[0]["last_error"]
    # Dead rows are not tried again.
    assert deliver_route(store, bad, now=T0 + timedelta(days=1)).as_dict()["dead"] == 0
    assert len(receiver.at("/bad")) == 2


def test_a_hanging_receiver_is_bounded_and_does_not_delay_other_routes(
    store: Store, receiver: Receiver
) -> None:
    fast = Receiver()
    fast.start()
    try:
        slow = route("slow", "webhook", receiver.url("/slow"), timeout_seconds=3.0)
        quick = route("quick", "webhook", fast.url("/quick"))
        config = routes_config(Path(store.path), slow, quick)
        receiver.script("/slow", [HANG])
        decisions = record_alerts(store, config, 2, at=T0)
        done = threading.Event()
        results: dict = {}

        def run() -> None:
            results.update(deliver_channels(store, config, now=T0))
            done.set()

        threading.Thread(target=run, daemon=True).start()
        # The quick route is delivered while the slow one still hangs.
        assert keys(fast.wait_for(2)) == [d.dedup_key for d in decisions]
        receiver.wait_for(1, path="/slow")
        assert done.wait(30), "the hang is bounded by the route's timeout"
        assert results["quick"].sent == 2
        assert results["slow"].as_dict() == {"sent": 0, "retried": 1, "dead": 0}
        assert len(receiver.at("/slow")) == 1, "a receiver that times out costs one attempt a round"
        first = channel_rows(store, "slow")[0]
        assert first["status"] == "pending" and "timeout" in first["last_error"]
    finally:
        fast.stop()


# ---------------------------------------------------------------------------
# Routing: theatre, kind, minimum level, digest and quiet hours per route


def test_routes_filter_by_theatre_kind_and_level(store: Store, receiver: Receiver) -> None:
    everything = route("all", "webhook", receiver.url("/all"), kinds=("urgent", "digest", "feed"))
    high_only = route("high", "webhook", receiver.url("/high"), min_level="high")
    other = route("other", "webhook", receiver.url("/other"), theatres=("am-az",))
    config = routes_config(Path(store.path), everything, high_only, other)
    up_elevated = level_alert("level_up", T0, level="elevated", previous="low")
    up_high = level_alert("level_up", T0 + timedelta(hours=1), level="high", previous="elevated")
    resolved = level_alert("resolved", T0 + timedelta(hours=9), level="low", previous="high")
    for decision in (up_elevated, up_high, resolved):
        record(store, config, decision)
    assert [r["dedup_key"] for r in channel_rows(store, "all")] == [
        up_elevated.dedup_key,
        up_high.dedup_key,
        resolved.dedup_key,
    ]
    # min_level high: the high level_up, and the resolved that ends it.
    assert [r["dedup_key"] for r in channel_rows(store, "high")] == [
        up_high.dedup_key,
        resolved.dedup_key,
    ]
    assert channel_rows(store, "other") == []
    deliver_route(store, high_only, now=T0 + timedelta(hours=9))
    resolved_payload = receiver.wait_for(2, path="/high")[1].json()
    assert [r["key"] for r in resolved_payload["resolves"]] == [up_high.dedup_key]


def test_quiet_hours_per_route(store: Store, receiver: Receiver) -> None:
    night = datetime(2024, 9, 14, 23, 0, tzinfo=UTC)
    quiet = route("quiet", "webhook", receiver.url("/quiet"), quiet_hours=("22:00", "07:00"))
    loud = route("loud", "webhook", receiver.url("/loud"), quiet_hours=())
    config = routes_config(Path(store.path), quiet, loud)
    record(store, config, level_alert("level_up", night, level="high", previous="elevated"))
    (held,) = channel_rows(store, "quiet")
    assert held["not_before"] == "2024-09-15T07:00:00Z"
    assert channel_rows(store, "loud")[0]["not_before"] is None
    assert deliver_route(store, quiet, now=night).sent == 0
    assert deliver_route(store, loud, now=night).sent == 1
    assert deliver_route(store, quiet, now=from_iso(held["not_before"])).sent == 1


def test_digest_per_route_keeps_the_routes_theatres(store: Store, receiver: Receiver) -> None:
    kg = route("kg", "webhook", receiver.url("/kg"), kinds=("digest",), theatres=("kg-tj",))
    none = route("none", "webhook", receiver.url("/none"), kinds=("urgent",))
    config = routes_config(Path(store.path), kg, none)
    down = level_alert("level_down", T0, level="elevated", previous="high")
    record(store, config, replace(down, urgent=False))
    other = replace(
        level_alert("level_down", T0, level="elevated", previous="high", theatre="am-az"),
        urgent=False,
    )
    record(store, config, other)
    assert channel_rows(store) == [], "a non-urgent alert waits for the digest"
    digest_at = datetime(2024, 9, 15, 8, 0, tzinfo=UTC)
    assert pipeline.run_digest(store, config, now=digest_at) is not None
    (row,) = channel_rows(store)
    assert row["route"] == "kg"
    deliver_route(store, kg, now=digest_at)
    items = receiver.wait_for(1, path="/kg")[0].json()["items"]
    assert len(items) == 1 and "kg-tj" in items[0]
