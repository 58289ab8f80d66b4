"""Running the real daemon in tests: a deployment written to disk, and the process.

`write_deployment` writes a settings file and an indicators file (the repository's
watch list with its feeds replaced by local ones) into a folder; `DaemonProcess` runs
`python -m monitor … run` as a subprocess with its log in a file, and waits for log
lines with a bounded poll (never a fixed sleep).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Deployment:
    folder: Path
    settings: Path
    indicators: Path
    db: Path

    def args(self, *command: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(self.settings),
            "--indicators",
            str(self.indicators),
            *command,
        ]


def write_deployment(
    folder: Path,
    *,
    feeds: dict[str, str],
    smtp_port: int,
    poll_tick_seconds: int = 1,
    score_tick_seconds: int = 2,
    outbox_tick_seconds: int = 1,
    metrics_port: int | None = None,
    fetch_deadline_seconds: float = 10.0,
) -> Deployment:
    """Settings + indicators for a daemon that polls `feeds` (id -> URL) and mails to a sink.
    `fetch_deadline_seconds`: how long one fetch may last (a test whose hanging feed must
    outlast a slow machine's work on the others gives it minutes)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "monitor.db"
    settings = folder / "monitor.toml"
    settings.write_text(
        f"""
database_path = "{db}"
{f'metrics_listen = "127.0.0.1:{metrics_port}"' if metrics_port else ""}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "monitor@test.localhost"
recipients = ["analyst@example.org"]
timeout_seconds = 5.0

[http]
allow_private_networks = ["127.0.0.0/8"]
per_host_min_interval_seconds = 0.0
total_deadline_seconds = {fetch_deadline_seconds}
read_timeout = {max(20.0, fetch_deadline_seconds)}

[schedule]
poll_tick_seconds = {poll_tick_seconds}
score_tick_seconds = {score_tick_seconds}
outbox_tick_seconds = {outbox_tick_seconds}
min_feed_interval_seconds = 1
default_feed_interval_seconds = 1
""",
        encoding="utf-8",
    )
    indicators = folder / "indicators.yaml"
    write_indicators(indicators, feeds)
    return Deployment(folder=folder, settings=settings, indicators=indicators, db=db)


def write_indicators(path: Path, feeds: dict[str, str], *, broken: bool = False) -> None:
    document = yaml.safe_load((REPO / "indicators.yaml").read_text(encoding="utf-8"))
    document["feeds"] = [
        {"id": feed_id, "name": feed_id.title(), "url": url} for feed_id, url in feeds.items()
    ]
    if broken:
        document["indicators"]["border_clash"]["weight"] = "high"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")


# Headlines of distinct clashes: each is a critical event for kg-tj, and no two are
# near-duplicates, so each is a story of its own.
CLASH_HEADLINES = (
    "Kyrgyz and Tajik border guards exchange fire near Vorukh, two killed",
    "Tajik troops fire mortars on Ak-Sai village in Batken",
    "Gunfight erupts on the Dostuk section of the Kyrgyz-Tajik frontier",
    "Kyrgyz border post near Samarkandek comes under Tajik drone attack",
    "Four dead after Tajik and Kyrgyz servicemen clash over water intake in Chorku",
    "Tajik soldier killed in skirmish with Kyrgyz guards at Tortkul reservoir",
    "Ovchi-Kalacha residents flee as Kyrgyz and Tajik forces trade gunfire",
    "Clashes between Tajik and Kyrgyz border troops near Jany-Jer kill five",
)


CLASH_ITEMS = (
    (
        "Kyrgyz and Tajik border guards trade fire near Batken",
        "Border guards of Kyrgyzstan and Tajikistan exchanged gunfire near the village of "
        "Kok-Tash on Tuesday; two Kyrgyz servicemen were wounded, the border service said.",
    ),
    (
        "Shelling reported along Kyrgyz-Tajik border, villagers flee",
        "Tajik troops shelled Kyrgyz positions in Batken region overnight, Kyrgyz officials "
        "said, and residents of several border villages were evacuated.",
    ),
)


def rss(
    items: tuple[tuple[str, str], ...],
    *,
    now: datetime | None = None,
    base: str = "https://news.example.org",
) -> bytes:
    """An RSS 2.0 document (a synthetic wrapper written for the tests)."""
    moment = now or datetime.now(UTC)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Test wire</title>'
    ]
    for index, (title, body) in enumerate(items):
        link = f"{base}/story-{index}"
        published = format_datetime(moment - timedelta(minutes=30 + index))
        parts.append(
            f"<item><title>{escape(title)}</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>{published}</pubDate><description>{escape(body)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


class DaemonProcess:
    """`monitor run` as a subprocess; its stderr goes to a file the test can read."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = ("run",),
    ):
        self.deployment = deployment
        self.log_path = deployment.folder / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        environment = dict(env if env is not None else os.environ)
        environment.setdefault("MONITOR_LOG_LEVEL", "INFO")
        self.process = subprocess.Popen(
            deployment.args(*command),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=deployment.folder,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, *, timeout: float = 30.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log[after:]:
                return log
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.process.returncode}) before {text!r}:\n{log}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the daemon log within {timeout} s:\n{self.log()}")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, *, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()
