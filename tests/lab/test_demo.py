"""`monitor demo` end to end: real HTTP on loopback, real SMTP (aiosmtpd), real SQLite.

One demo run is shared by the tests of this module (it takes a few seconds); a second
run into the same folder must send nothing new.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from monitor import db
from monitor.lab.demo import POLL_DELAY, DemoResult, clock_steps, load_demo_items, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoResult, list[str]]:
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = run_demo(out, echo=lines.append)
    return out, result, lines


def test_demo_stores_the_story_and_scores_rise_and_fall(
    demo_run: tuple[Path, DemoResult, list[str]],
) -> None:
    _, result, _ = demo_run
    assert result.new_articles == len(load_demo_items())
    with db.Store.open(result.db_path, readonly=True) as store:
        series = store.query("SELECT at, score FROM scores WHERE theatre_id = 'kg-tj' ORDER BY at")
        scores = [row["score"] for row in series]
        peak = max(scores)
        peak_at = series[scores.index(peak)]["at"]
        assert peak >= 55, "the September 2022 fighting should take kg-tj to a high level"
        assert peak_at.startswith("2022-09")
        assert scores[-1] < peak / 2, "the score fades after the border treaty"
        assert store.integrity_check() == "ok"


def test_demo_reports_of_one_event_in_two_languages_are_one_story(
    demo_run: tuple[Path, DemoResult, list[str]],
) -> None:
    """demo_data/README.md lists eight events carried in English and in Russian (the
    water clash, the TB2 order, the fighting of 16 Sep 2022, the ceasefire protocol, the
    drill called off, Tashiev's demand, Armenia's CSTO freeze, the border treaty): each
    is one story whose sources count the outlets of both languages."""
    _, result, _ = demo_run
    with db.Store.open(result.db_path, readonly=True) as store:
        bilingual = store.query(
            "SELECT st.id, st.sources, count(DISTINCT a.language) AS languages, "
            "min(a.published_at) AS first FROM stories st JOIN articles a ON a.story_id = st.id "
            "GROUP BY st.id HAVING languages > 1 ORDER BY first"
        )
    assert [row["first"][:10] for row in bilingual] == [
        "2021-04-29",
        "2021-10-21",
        "2022-09-16",
        "2022-09-19",
        "2022-10-09",
        "2023-09-15",
        "2024-02-22",
        "2025-03-13",
    ]
    assert all(row["sources"] >= 2 for row in bilingual)


def test_demo_alert_emails_arrive_at_the_local_smtp_server(
    demo_run: tuple[Path, DemoResult, list[str]],
) -> None:
    _, result, _ = demo_run
    emls = sorted((result.mail_dir / "eml").glob("*.eml"))
    assert result.emails_sent >= 3
    assert len(emls) == result.emails_sent
    subjects = []
    for path in emls:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        subjects.append(str(message["Subject"]))
        assert message["Message-ID"] and message["Auto-Submitted"] == "auto-generated"
    assert any("Kyrgyzstan" in s and "HIGH" in s.upper() for s in subjects), subjects
    with db.Store.open(result.db_path, readonly=True) as store:
        assert store.outbox_counts().get("sent") == result.emails_sent


def test_demo_run_twice_sends_nothing_new(demo_run: tuple[Path, DemoResult, list[str]]) -> None:
    out, first, _ = demo_run
    lines: list[str] = []
    second = run_demo(out, echo=lines.append)
    assert second.resumed and second.new_articles == 0 and second.emails_sent == 0
    assert len(list((first.mail_dir / "eml").glob("*.eml"))) == first.emails_sent
    assert any("nothing was sent twice" in line for line in lines)


def test_demo_prints_history_and_where_things_are(
    demo_run: tuple[Path, DemoResult, list[str]],
) -> None:
    _, result, lines = demo_run
    text = "\n".join(lines)
    assert "Score history" in text and "kg-tj" in text
    assert str(result.db_path) in text and "eml" in text


def test_clock_steps_cover_every_item_in_order() -> None:
    items = load_demo_items()
    steps = clock_steps(items)
    assert steps == sorted(steps)
    for item in items:
        # every item is polled soon after it is published, not merely at some later time
        assert any(item.published_at < step <= item.published_at + POLL_DELAY for step in steps)


def _cli_lines(lines: list[str], prefix: str) -> list[list[str]]:
    """The monitor command lines among `lines` (after `prefix`), split as a shell would."""
    import shlex

    found = []
    for line in lines:
        text = line.strip()
        if text.startswith("Try:"):
            text = text[len("Try:") :].strip()
        if text.startswith(prefix):
            found.append(shlex.split(text[len(prefix) :]))
    return found


def test_demo_closing_lines_name_what_is_there(
    demo_run: tuple[Path, DemoResult, list[str]],
) -> None:
    """The folders the demo names exist as named (its Maildir is `maildir`, issue 15), and
    each command it suggests runs and finds something."""
    from click.testing import CliRunner

    from monitor.cli.app import cli

    out, result, lines = demo_run
    [emails] = [line for line in lines if line.startswith("Emails:")]
    named = [Path(word) for word in emails.split() if word.startswith(str(out))]
    assert named == [result.mail_dir / "eml", result.mail_dir / "maildir"]
    assert all(path.is_dir() for path in named)
    suggested = _cli_lines([line for line in lines if f" --db {result.db_path} " in line], "")
    commands = [args[args.index("--db") + 2 :] for args in suggested]
    assert [c[0] for c in commands] == ["history", "explain", "articles", "alerts"]
    for args in commands:
        run = CliRunner().invoke(cli, ["--db", str(result.db_path), *args])
        assert run.exit_code == 0 and run.stderr == "", (args, run.stderr)
        assert "(no " not in run.stdout and len(run.stdout.splitlines()) >= 3, args


def test_readme_examples_find_something_on_the_demo_database(
    demo_run: tuple[Path, DemoResult, list[str]],
) -> None:
    """Every `monitor --db demo-output/monitor.db …` line of the README (the stemmed
    search among them: "Batken clash" finds "clashes") answers with rows."""
    from click.testing import CliRunner

    from monitor.cli.app import cli

    _, result, _ = demo_run
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    commands = _cli_lines(readme.splitlines(), ".venv/bin/monitor --db demo-output/monitor.db ")
    assert any(args[:2] == ["articles", "--search"] for args in commands)
    for args in commands:
        run = CliRunner().invoke(cli, ["--db", str(result.db_path), *args])
        assert run.exit_code == 0 and run.stderr == "", (args, run.stderr)
        assert "(no " not in run.stdout and len(run.stdout.splitlines()) >= 3, args
