"""A prepared database for CLI and query tests, built through the real `db.Store` API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor import db
from monitor.models import AlertDecision, Contribution, Entry, Feed, Match, ScorePoint

START = datetime(2022, 9, 1, tzinfo=UTC)
FEED = Feed(id="wire", url="https://wire.example/rss", name="Border Wire")


def build_database(path: Path, *, days: int = 30, gap: tuple[int, int] | None = (10, 13)) -> Path:
    """30 days of 6-hourly kg-tj scores (with a gap), one clash story, two alerts."""
    with db.Store.open(path) as store:
        store.sync_feeds([FEED], now=START)
        with store.transaction():
            [article] = store.store_entries(
                FEED,
                [
                    Entry(
                        entry_id="e1",
                        feed_id="wire",
                        url="https://wire.example/clash",
                        title="Kyrgyz and Tajik guards trade fire near Batken",
                        summary="Guards exchanged fire on the border; two were wounded.",
                        published_at=START + timedelta(days=15),
                        language="en",
                        content_hash="h1",
                    )
                ],
                now=START + timedelta(days=15),
            )
            [match_id] = store.store_matches(
                article,
                [
                    Match(
                        "border_clash",
                        "kg-tj",
                        0.9,
                        "Guards exchanged fire on the border.",
                        ("fire",),
                    )
                ],
                now=START + timedelta(days=15),
            )
        for step in range(days * 4):
            at = START + timedelta(hours=6 * step)
            day = step // 4
            if gap and gap[0] <= day < gap[1]:
                continue
            score = 0.0 if day < 15 else max(0.0, 60.0 - 4 * (day - 15))
            contributions = (
                (Contribution(article.story_id, match_id, "border_clash", score / 2),)
                if score
                else ()
            )
            level = "high" if score >= 55 else "elevated" if score >= 30 else "low"
            with store.transaction():
                store.insert_score(
                    ScorePoint(
                        "kg-tj", at, score / 2, score, level, "1", contributions=contributions
                    )
                )
        with store.transaction():
            alert_id = store.insert_alert(
                AlertDecision(
                    dedup_key="kg-tj:level_up:high@x",
                    kind="level_up",
                    theatre_id="kg-tj",
                    created_at=START + timedelta(days=15),
                    urgent=True,
                    level="high",
                    previous_level="low",
                    index=60.0,
                    reason="entered HIGH at 60",
                )
            )
            assert alert_id is not None
            store.enqueue(
                alert_id,
                message_id="<a@x>",
                recipients=["a@example.org"],
                subject="[monitor] HIGH",
                message=b"Subject: x\r\n\r\nbody",
                now=START + timedelta(days=15),
            )
            store.insert_alert(
                AlertDecision(
                    dedup_key="kg-tj:level_down:elevated@y",
                    kind="level_down",
                    theatre_id="kg-tj",
                    created_at=START + timedelta(days=20),
                    urgent=False,
                    level="elevated",
                    index=40.0,
                    reason="fell to ELEVATED",
                )
            )
    return path


RU_FEED = Feed(id="ru-wire", url="https://ru-wire.example/rss", name="Пограничный вестник")

# (feed, entry id, days after START, language, title, summary, matches as
# (indicator, theatre, confidence)); e3 is a denial: kept, but below the counting threshold.
ARTICLES = (
    (FEED, "e2", 12.0, "en", "Armenia says Azerbaijani troops shelled Jermuk",
     "Yerevan accused Baku of aggression after overnight shelling.",
     (("border_clash", "am-az", 0.85), ("accusation_of_aggression", "am-az", 0.7))),
    (FEED, "e3", 16.0, "en", "Tajikistan denies border clash reports near Batken",
     "Officials in Dushanbe said no shots were fired.", (("border_clash", "kg-tj", 0.2),)),
    (RU_FEED, "r1", 15.25, "ru", "Перестрелка на кыргызско-таджикской границе",
     "Пограничники сообщили о стрельбе у границы.", (("border_clash", "kg-tj", 0.9),)),
    (RU_FEED, "r2", 20.0, "ru", "Кыргызстан отменил учения ОДКБ",
     "Учения должны были пройти в Иссык-Кульской области.",
     (("exercise_cancellation", "csto", 0.9),)),
    (FEED, "e4", 5.0, "en", "Dushanbe hosts a regional trade fair",
     "Traders from five countries came.", ()),
)  # fmt: skip


def add_articles(path: Path) -> Path:
    """Add English and Russian articles with matches (and a denial) to a prepared database."""
    with db.Store.open(path) as store:
        store.sync_feeds([FEED, RU_FEED], now=START)
        for feed, entry_id, days, language, title, summary, matches in ARTICLES:
            at = START + timedelta(days=days)
            with store.transaction():
                [article] = store.store_entries(
                    feed,
                    [
                        Entry(
                            entry_id=entry_id,
                            feed_id=feed.id,
                            url=f"https://{feed.id}.example/{entry_id}",
                            title=title,
                            summary=summary,
                            published_at=at,
                            language=language,
                            content_hash=entry_id,
                        )
                    ],
                    now=at,
                )
                store.store_matches(
                    article,
                    [Match(ind, theatre, conf, summary, ("x",)) for ind, theatre, conf in matches],
                    now=at,
                )
    return path
