"""The report as a person sees it: headless Chromium (Debian's `chromium`) opens the pages
of the demo database and of the hostile-content database, from file:// and from a
loopback web server. Checks the DOM Chromium built (every theatre, the numbers, feed
text inert: no script ran), that the only requests were for the site's own files, and
saves screenshots under the test's tmp folder (REPORT_SCREENSHOTS=DIR keeps a copy)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.app import cli
from monitor.report import paths
from tests.support.report import build_hostile_database, demo_database

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
AT = "2022-09-17T00:00:00Z"


def chromium(profile: Path, *args: str) -> str:
    profile.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def build(database: Path, site: Path, *extra: str) -> Path:
    result = CliRunner().invoke(
        cli, ["--db", str(database), "report", "--out", str(site), *extra], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return site


def keep(shot: Path) -> None:
    target = os.environ.get("REPORT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, _ = demo_database(tmp_path_factory)
    return build(out / "monitor.db", tmp_path_factory.mktemp("browser") / "site", "--at", AT)


def test_demo_report_in_chromium(demo_site: Path, tmp_path: Path) -> None:
    index = (demo_site / "index.html").as_uri()
    dom = chromium(tmp_path / "profile", "--dump-dom", index)
    for name in (
        "Kyrgyzstan–Tajikistan",
        "Armenia–Azerbaijan",
        "Collective Security Treaty Organization (CSTO)",
    ):
        assert name in dom
    for theatre in ("kg-tj", "am-az", "csto"):
        assert f'id="theatre-{theatre}"' in dom
    assert "<script" not in dom.lower()
    # Every chart has alt text and a table behind it.
    images = re.findall(r"<img [^>]*>", dom)
    assert images and all(re.search(r'alt="[^"]{20,}"', img) for img in images)
    assert dom.count("The numbers behind this chart") >= len(images)
    for name, width in (("index-desktop", 1280), ("index-phone", 390)):
        shot = tmp_path / f"{name}.png"
        chromium(tmp_path / "profile", f"--screenshot={shot}", f"--window-size={width},2400", index)
        assert shot.stat().st_size > 10_000
        keep(shot)
    page = (demo_site / paths.theatre_page("kg-tj")).as_uri()
    dom = chromium(tmp_path / "profile", "--dump-dom", page)
    assert "Why the score is what it is" in dom and "border clash" in dom
    shot = tmp_path / "theatre-kg-tj.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,3000", page)
    keep(shot)


def test_hostile_text_runs_nothing_in_chromium(tmp_path: Path) -> None:
    site = build(build_hostile_database(tmp_path / "hostile.db"), tmp_path / "site")
    for relative in (paths.theatre_page("kg-tj"), paths.alert_page(1), paths.FEEDS, paths.INDEX):
        uri = (site / relative).as_uri()
        dom = chromium(tmp_path / "profile", "--dump-dom", uri)
        # The feed's script would have set the title to "pwned"; it is text in the DOM.
        title = re.search(r"<title>(.*?)</title>", dom, re.S)
        assert title is not None and "pwned" not in title.group(1)
        assert "<script" not in dom.lower() and '<img src="x"' not in dom
        assert not re.search(r"<img[^>]+onerror", dom, re.I)
    dom = chromium(
        tmp_path / "profile", "--dump-dom", (site / paths.theatre_page("kg-tj")).as_uri()
    )
    assert '&lt;script&gt;document.title="pwned"&lt;/script&gt;' in dom
    assert 'href="javascript:' not in dom
    shot = tmp_path / "hostile-theatre.png"
    chromium(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (site / paths.theatre_page("kg-tj")).as_uri(),
    )
    keep(shot)


class _Recorder(SimpleHTTPRequestHandler):
    seen: list[str]

    def log_message(self, format: str, *args: object) -> None:
        type(self).seen.append(self.path)


@pytest.fixture
def served(demo_site: Path) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(demo_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_served_report_requests_only_its_own_files(
    served: tuple[str, list[str]], demo_site: Path, tmp_path: Path
) -> None:
    base, seen = served
    for page in (paths.INDEX, paths.theatre_page("kg-tj")):
        chromium(tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom", f"{base}/{page}")
    assert seen, "the server saw the page requests"
    for request in seen:
        path = request.split("?")[0].lstrip("/")
        assert path == "favicon.ico" or (demo_site / path).is_file(), request
    assert any(r.startswith("/charts/") for r in seen), "the charts are loaded from the site"
