"""Databases for the report tests: the demo's (one run per test session) and one full of
hostile feed text (issue 3's attacks), built through the real `db.Store` API and the
real email renderer."""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import db
from monitor.deliver.content import AlertEmail, StoryLine
from monitor.deliver.email_message import render_email
from monitor.lab.demo import run_demo
from monitor.models import AlertDecision, Contribution, Entry, Feed, Match, ScorePoint

_DEMO: dict[str, Path] = {}


def demo_database(factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo's output folder (database, mail, report) and what it printed; run once."""
    if "out" not in _DEMO:
        out = factory.mktemp("report-demo")
        lines: list[str] = []
        run_demo(out, echo=lines.append)
        _DEMO["out"] = out
        (out / "printed.txt").write_text("\n".join(lines), encoding="utf-8")
    out = _DEMO["out"]
    return out, (out / "printed.txt").read_text(encoding="utf-8").splitlines()


HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'
HOSTILE_URL = "javascript:alert(document.cookie)"
START = datetime(2022, 9, 1, tzinfo=UTC)


def build_hostile_database(path: Path) -> Path:
    """kg-tj scored from a story whose every feed field is an attack, with its alert."""
    feed = Feed(id="evil", url="https://evil.example/rss", name=f"Evil {HOSTILE}")
    with db.Store.open(path) as store:
        store.sync_feeds([feed], now=START)
        at = START + timedelta(days=2)
        with store.transaction():
            [article] = store.store_entries(
                feed,
                [
                    Entry(
                        entry_id="x1",
                        feed_id="evil",
                        url=HOSTILE_URL,
                        title=f"Border clash {HOSTILE}",
                        summary=f"Summary {HOSTILE}",
                        published_at=at,
                        language="en",
                        content_hash="h",
                    )
                ],
                now=at,
            )
            [match_id] = store.store_matches(
                article,
                [Match("border_clash", "kg-tj", 0.9, f"Guards fired {HOSTILE}", ("fire",))],
                now=at,
            )
        points = []
        for step in range(8):
            moment = at + timedelta(hours=6 * step)
            with store.transaction():
                points.append(
                    store.insert_score(
                        ScorePoint(
                            "kg-tj",
                            moment,
                            40.0,
                            60.0 - step,
                            "high",
                            "1",
                            contributions=(
                                Contribution(article.story_id, match_id, "border_clash", 20.0),
                            ),
                        )
                    )
                )
        decision = AlertDecision(
            dedup_key="kg-tj:critical:x1",
            kind="critical",
            theatre_id="kg-tj",
            created_at=at,
            urgent=True,
            level="high",
            index=60.0,
            reason=f"critical sign border_clash: Border clash {HOSTILE}",
            match_ids=(match_id,),
        )
        message = render_email(
            AlertEmail(
                decision=decision,
                theatre_name="Kyrgyzstan–Tajikistan",
                stories=(
                    StoryLine(
                        title=f"Border clash {HOSTILE}",
                        outlet=f"Evil {HOSTILE}",
                        published_at=at,
                        url=HOSTILE_URL,
                        indicator_id="border_clash",
                        evidence=f"Guards fired {HOSTILE}",
                        points=20.0,
                        match_id=match_id,
                    ),
                ),
            ),
            sender="monitor@example.org",
            recipients=["desk@example.org"],
            message_id="<alert.1@example.org>",
            now=at,
        )
        with store.transaction():
            alert_id = store.insert_alert(decision, score_id=points[0])
            assert alert_id is not None
            store.enqueue(
                alert_id,
                message_id="<alert.1@example.org>",
                recipients=["desk@example.org"],
                subject=str(message["Subject"]),
                message=message.as_bytes(policy=email.policy.SMTP),
                now=at,
            )
    return path
