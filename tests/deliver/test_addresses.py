"""Email addresses: what configuration accepts is exactly what renders, and one bad address
never stops a message to the others."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import bundled_indicators_text, load_settings, parse_indicators_text
from monitor.deliver.addresses import parse_address
from monitor.deliver.content import AlertEmail
from monitor.deliver.email_message import message_id_for, render_email
from monitor.deliver.smtp import send_email
from monitor.errors import ConfigError, DeliveryError
from monitor.lab.mailsink import MailSink
from monitor.models import AlertDecision, SmtpSettings

NOW = datetime(2022, 9, 16, 6, 0, tzinfo=UTC)

# Each passed the old load-time check and then made every urgent message dead at render
# time, or (the ";" list) loaded and delivered to the first address only.
UNSENDABLE = [
    pytest.param("desk@mail_relay.example.org", "not a host name", id="underscore-in-domain"),
    pytest.param("andré@example.org", "non-ASCII local part", id="non-ascii-local-part"),
    pytest.param("desk@example.org.", "ends with a dot", id="trailing-dot"),
    pytest.param("a@x.org;b@x.org", "more than one address", id="semicolon-list"),
    pytest.param("desk@example..org", "not a host name", id="empty-label"),
    pytest.param("desk@bücher.example", "xn--bcher-kva.example", id="non-ascii-domain"),
    pytest.param("Desk, Ops <desk@example.org>", "double quotes", id="unquoted-comma-name"),
]

SENDABLE = [
    "desk@example.org",
    "<desk@example.org>",
    "Duty Desk <duty@example.org>",
    '"Desk, Ops" <desk@example.org>',
    "monitor@localhost",
    "first.last+alerts@mail-relay.example.org",
]


def decision() -> AlertDecision:
    return AlertDecision(
        dedup_key="kg-tj/level_up/1",
        kind="level_up",
        theatre_id="kg-tj",
        created_at=NOW,
        urgent=True,
        level="high",
        previous_level="elevated",
        index=61.0,
        reason="index 61 ≥ 55",
    )


def render(recipients: tuple[str, ...], sender: str = "monitor@localhost"):  # type: ignore[no-untyped-def]
    return render_email(
        AlertEmail(decision=decision(), theatre_name="Kyrgyzstan–Tajikistan"),
        sender=sender,
        recipients=recipients,
        message_id=message_id_for("kg-tj/level_up/1", domain="localhost"),
        now=NOW,
    )


def settings_file(tmp_path: Path, recipients: list[str]) -> Path:
    path = tmp_path / "monitor.toml"
    listed = ", ".join(f"'{address}'" for address in recipients)
    path.write_text(f"[smtp]\nrecipients = [{listed}]\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("address", "problem"), UNSENDABLE)
def test_an_address_that_cannot_be_sent_stops_loading_with_one_line(
    tmp_path: Path, address: str, problem: str
) -> None:
    path = settings_file(tmp_path, ["analyst@example.org", address])
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    message = str(caught.value)
    assert message.startswith(f"{path}: smtp.recipients[1]: {address!r}"), message
    assert problem in message and "\n" not in message


@pytest.mark.parametrize(
    ("address", "problem"),
    [case for case in UNSENDABLE if "," not in case.values[0]],  # the variable splits at ","
)
def test_the_environment_variable_is_named_when_it_holds_the_bad_address(
    address: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"MONITOR_SMTP_RECIPIENTS": f"analyst@example.org, {address}"})
    assert str(caught.value).startswith(f"environment: MONITOR_SMTP_RECIPIENTS[1]: {address!r}")


def test_a_bad_sender_stops_loading(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text("[smtp]\nsender = 'monitor@relay_1.example.org'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"smtp\.sender: 'monitor@relay_1"):
        load_settings(path, {})


def test_a_theatre_recipient_that_cannot_be_sent_stops_loading() -> None:
    document = yaml.safe_load(bundled_indicators_text())
    document["theatres"]["kg-tj"]["recipients"] = ["desk@example.org", "desk@bishkek_office.kg"]
    with pytest.raises(ConfigError) as caught:
        parse_indicators_text(yaml.safe_dump(document, allow_unicode=True), source="w.yaml")
    assert str(caught.value).startswith(
        "w.yaml: theatres.kg-tj.recipients[1]: 'desk@bishkek_office.kg' has a domain"
    )


@pytest.mark.parametrize("address", SENDABLE)
def test_what_loads_renders(tmp_path: Path, address: str) -> None:
    settings_ = load_settings(settings_file(tmp_path, [address]), {})
    message = render(settings_.smtp.recipients)
    assert parse_address(address).addr_spec in str(message["To"])


ADDRESS_CHARS = st.sampled_from(list('ab.-_@;,<> "éA1+'))


@settings(max_examples=300, deadline=None)
@given(st.text(ADDRESS_CHARS, min_size=1, max_size=24))
def test_load_accepts_exactly_what_renders(address: str) -> None:
    """The same check at load and at render: an address loads if and only if a message
    to it alone renders."""
    try:
        load_settings(None, {"MONITOR_SMTP_SENDER": address})
        loads = True
    except ConfigError:
        loads = False
    try:
        render(("analyst@example.org",), sender=address)
        renders = True
    except DeliveryError:
        renders = False
    assert loads == renders, address


def test_one_bad_recipient_is_left_out_and_the_others_get_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A theatre's address recorded before addresses were checked at load must not make
    the message dead for everyone."""
    with caplog.at_level(logging.WARNING, logger="monitor.deliver.email_message"):
        message = render(("analyst@example.org", "desk@bishkek_office.kg"))
    assert str(message["To"]) == "analyst@example.org"
    assert "desk@bishkek_office.kg" in caplog.text


def test_only_bad_recipients_is_still_a_permanent_render_error() -> None:
    with pytest.raises(DeliveryError) as caught:
        render(("desk@bishkek_office.kg",))
    assert caught.value.retryable is False and "bishkek_office" in str(caught.value)


def test_a_stored_message_with_one_bad_address_reaches_the_others(tmp_path: Path) -> None:
    """An old outbox row whose To header holds an address that cannot be sent: delivered
    to the rest, not marked dead."""
    message = render(("analyst@example.org",))
    del message["To"]
    message["To"] = "analyst@example.org, desk@bishkek_office.kg"
    with MailSink(tmp_path / "mail") as sink:
        send_email(
            message,
            SmtpSettings(host="127.0.0.1", port=sink.port, timeout_seconds=10.0),
        )
        [received] = sink.wait_for(1, timeout=30)
    assert received.rcpt_tos == ("analyst@example.org",)
