"""The alert email read like the report: one entry per story with its indicators and
points, indicator names instead of ids, a link to the alert's page; and the `alert_log`
view says "digest" where `monitor alerts` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import db
from monitor.deliver.content import AlertEmail, StoryLine
from monitor.deliver.email_message import render_email
from monitor.models import AlertDecision

NOW = datetime(2022, 9, 16, 12, tzinfo=UTC)


def _line(indicator: str, points: float, match_id: int, evidence: str) -> StoryLine:
    return StoryLine(
        title="Kyrgyz and Tajik border guards exchange fire",
        outlet="Border Wire",
        published_at=NOW - timedelta(hours=3),
        url="https://wire.example/clash",
        indicator_id=indicator,
        evidence=evidence,
        points=points,
        match_id=match_id,
        story_id=7,
    )


def _alert(**extra: object) -> AlertEmail:
    decision = AlertDecision(
        dedup_key="kg-tj:level_up:high@x",
        kind="level_up",
        theatre_id="kg-tj",
        created_at=NOW,
        urgent=True,
        level="high",
        previous_level="elevated",
        index=72.0,
        change_24h=18.0,
        reason="entered HIGH at 72; critical sign border_clash: guards exchange fire (Border Wire)",
    )
    stories = (
        _line("border_clash", 12.4, 1, "Guards exchanged fire near Vorukh."),
        _line("accusation_of_aggression", 5.1, 2, "Dushanbe accused Bishkek of aggression."),
        StoryLine(
            title="Troops gather near Batken",
            outlet="24.kg",
            published_at=NOW - timedelta(hours=5),
            url="https://24.kg/x",
            indicator_id="military_buildup",
            evidence="Armour moved toward the border.",
            points=3.0,
            match_id=3,
            story_id=8,
        ),
    )
    return AlertEmail(
        decision=decision,
        theatre_name="Kyrgyzstan–Tajikistan",
        stories=stories,
        indicator_ids=("border_clash", "accusation_of_aggression", "military_buildup"),
        **extra,  # type: ignore[arg-type]
    )


def _parts(alert: AlertEmail) -> tuple[str, str]:
    message = render_email(
        alert,
        sender="monitor@example.org",
        recipients=["desk@example.org"],
        message_id="<alert.x@example.org>",
        now=NOW,
    )
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def test_a_story_with_two_indicators_is_one_entry_with_both() -> None:
    text, html = _parts(_alert())
    assert html.count("Kyrgyz and Tajik border guards exchange fire") == 1
    assert html.count("<li") == 2, "two stories, two entries"
    assert "border clash · +12.4 points, accusation of aggression · +5.1 points" in text
    assert "Guards exchanged fire near Vorukh." in text
    assert "Dushanbe accused Bishkek of aggression." in text
    assert text.index("border guards exchange fire") < text.index("Troops gather near Batken")


def test_names_not_ids_in_the_why_line() -> None:
    text, html = _parts(_alert())
    assert "critical sign border clash: guards" in text
    assert "<b>Why:</b> entered HIGH at 72; critical sign border clash:" in html
    for part in (text, html):
        assert "border_clash" not in part and "accusation_of_aggression" not in part


def test_the_email_links_to_the_alerts_report_page() -> None:
    link = "https://desk.example/risk/alerts/42.html"
    text, html = _parts(_alert(report_link=link))
    assert f"In the report: {link}" in text
    assert f'<a href="{link}" rel="noopener noreferrer">See this alert in the report</a>' in html
    text, _ = _parts(_alert(report_link="javascript:alert(1)"))
    assert "In the report" not in text


def test_compose_email_links_to_the_report_when_report_url_is_set(tmp_path: Path) -> None:
    from dataclasses import replace

    from monitor.config import load_config
    from monitor.pipeline import compose_email

    base = load_config(indicators_path=None, settings_path=None, env={})
    config = replace(base, settings=replace(base.settings, report_url="https://desk.example/r/"))
    decision = _alert().decision
    with db.Store.open(tmp_path / "m.db") as store:
        content = compose_email(
            store, config, decision, point=None, matches=(), feed=None, alert_id=42
        )
    assert content.report_link == "https://desk.example/r/alerts/42.html"
    assert "border_clash" in content.indicator_ids


def test_alert_log_shows_digest_not_null(tmp_path: Path) -> None:
    with db.Store.open(tmp_path / "m.db") as store:
        with store.transaction():
            store.insert_alert(
                AlertDecision(
                    dedup_key="kg-tj:level_down:x",
                    kind="level_down",
                    theatre_id="kg-tj",
                    created_at=NOW,
                    urgent=False,
                    level="elevated",
                    index=40.0,
                    reason="fell to ELEVATED",
                )
            )
        [view] = store.query("SELECT delivery FROM alert_log")
        [cli_row] = db.alert_rows(store, theatre_id=None, since=None, status=None)
    assert view["delivery"] == cli_row["delivery"] == "digest"
