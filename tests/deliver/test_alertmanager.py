"""Alerts through a real Prometheus Alertmanager (Debian's prometheus-alertmanager),
started by the test on 127.0.0.1 with a temporary configuration and storage path.

Skipped, with the reason, only where the binary is not installed (.ci/run installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.db import Store
from monitor.models import from_iso
from monitor.pipeline import deliver_route
from tests.support.channels import channel_rows, level_alert, record, route, routes_config
from tests.support.http import refused_port

WAIT = 30.0
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="Prometheus Alertmanager is not installed (apt-get install prometheus-alertmanager; "
    ".ci/run installs it)",
)

CONFIG = """
route:
  receiver: nobody
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nobody
"""


class Alertmanager:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alertmanager.yml").write_text(CONFIG, encoding="utf-8")
        self.port = refused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "alertmanager.log"
        assert BINARY is not None
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={folder / 'alertmanager.yml'}",
                    f"--storage.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # no gossip port: a single local instance
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"Alertmanager did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)  # polling a real process for readiness, bounded by WAIT

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5)
        response.raise_for_status()
        return list(response.json())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=WAIT)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    running = Alertmanager(tmp_path / "am")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "monitor.db") as opened:
        yield opened


def test_alerts_fire_with_labels_and_resolved_ends_them(
    store: Store, alertmanager: Alertmanager
) -> None:
    # Real time: Alertmanager compares endsAt with its own clock.
    now = datetime.now(UTC).replace(microsecond=0)
    am = route("ops", "alertmanager", alertmanager.url, timeout_seconds=WAIT)
    config = routes_config(Path(store.path), am)
    up = level_alert("level_up", now, level="high", previous="elevated")
    record(store, config, up)
    assert deliver_route(store, am, now=now).as_dict() == {"sent": 1, "retried": 0, "dead": 0}
    (alert,) = alertmanager.alerts()
    labels = alert["labels"]
    assert labels == {
        "alertname": "MonitorEscalation",
        "theatre": "kg-tj",
        "kind": "level_up",
        "level": "high",
    }
    assert alert["annotations"]["description"] == up.reason
    assert alert["annotations"]["key"] == up.dedup_key
    assert alert["status"]["state"] == "active"
    held = from_iso(alert["endsAt"].replace(".000Z", "Z")) - from_iso(
        alert["startsAt"].replace(".000Z", "Z")
    )
    assert held == timedelta(hours=24), "sent once: it ends by itself after hold_hours"

    calm = level_alert("resolved", now + timedelta(seconds=1), level="low", previous="high")
    record(store, config, calm)
    assert deliver_route(store, am, now=now + timedelta(seconds=1)).sent == 1
    assert [r["status"] for r in channel_rows(store)] == ["sent", "sent"]
    deadline = time.monotonic() + WAIT
    while alertmanager.alerts(active="true"):
        assert time.monotonic() < deadline, "the resolved alert did not end the firing one"
        time.sleep(0.1)  # Alertmanager marks it resolved asynchronously; bounded poll


def test_a_bad_alert_is_refused_and_dead(store: Store, alertmanager: Alertmanager) -> None:
    """An Alertmanager answer other than 2xx/408/429/5xx (a 404 at a wrong path) is dead."""
    now = datetime.now(UTC).replace(microsecond=0)
    am = route("ops", "alertmanager", alertmanager.url, timeout_seconds=WAIT)
    config = routes_config(Path(store.path), am)
    up = level_alert("level_up", now, level="high", previous="elevated")
    record(store, config, up)
    # A wrong path on the same server: Alertmanager answers 404, a permanent failure.
    wrong = route("ops", "alertmanager", alertmanager.url + "/nothing-here")
    assert deliver_route(store, wrong, now=now).as_dict() == {"sent": 0, "retried": 0, "dead": 1}
    assert "HTTP 404" in channel_rows(store)[0]["last_error"]
    assert alertmanager.alerts() == []


def test_feed_down_fires_and_feed_recovered_ends_it(
    store: Store, alertmanager: Alertmanager
) -> None:
    from monitor.models import AlertDecision, Feed, to_iso

    now = datetime.now(UTC).replace(microsecond=0)
    feed = Feed(id="wire", url="https://wire.example/rss", name="Border Wire")
    store.sync_feeds([feed], now=now)
    am = route("ops", "alertmanager", alertmanager.url, kinds=("feed",), timeout_seconds=WAIT)
    config = routes_config(Path(store.path), am)
    down = AlertDecision(
        dedup_key=f"feed:wire:down@{to_iso(now)}",
        kind="feed_down",
        theatre_id=None,
        created_at=now,
        urgent=False,
        reason="feed Border Wire has failed for 24 h",
    )
    record(store, config, down, feed=feed)
    assert deliver_route(store, am, now=now).sent == 1
    (alert,) = alertmanager.alerts()
    assert alert["labels"] == {"alertname": "MonitorFeedDown", "kind": "feed_down", "feed": "wire"}
    # The recovery is stamped 30 s ahead of Alertmanager's clock (hosts' clocks differ): an
    # end in Alertmanager's future would not shorten the 24 h endsAt of the firing alert.
    later = now + timedelta(seconds=30)
    back = AlertDecision(
        dedup_key=f"feed:wire:recovered@{to_iso(later)}",
        kind="feed_recovered",
        theatre_id=None,
        created_at=later,
        urgent=False,
        reason="feed Border Wire works again",
    )
    record(store, config, back, feed=feed)
    assert deliver_route(store, am, now=later).sent == 1
    deadline = time.monotonic() + WAIT
    while alertmanager.alerts(active="true"):
        assert time.monotonic() < deadline, "feed_recovered did not end feed_down"
        time.sleep(0.1)  # Alertmanager resolves asynchronously; bounded poll
