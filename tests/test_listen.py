"""monitor.listen: HOST:PORT parsing, loopback only unless explicitly allowed."""

from __future__ import annotations

import pytest

from monitor.errors import ConfigError
from monitor.listen import parse_listen_address
from tests.support.http import NON_LOOPBACK


@pytest.mark.parametrize(
    "listen",
    NON_LOOPBACK,
)
def test_non_loopback_is_refused_unless_allowed(listen: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        parse_listen_address(listen)
    _, port = parse_listen_address(listen, allow_non_loopback=True)
    assert port == 9464


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        pytest.param("127.0.0.1:9464", ("127.0.0.1", 9464), id="v4"),
        pytest.param("127.0.0.2:9464", ("127.0.0.2", 9464), id="v4-loopback-net"),
        pytest.param("localhost:9464", ("127.0.0.1", 9464), id="localhost"),
        pytest.param("[::1]:9464", ("::1", 9464), id="v6"),
        pytest.param("[::ffff:127.0.0.1]:9464", ("::ffff:7f00:1", 9464), id="v4-mapped-loopback"),
    ],
)
def test_loopback_addresses_are_accepted(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(listen) == expected


@pytest.mark.parametrize(
    "listen",
    [
        pytest.param("9464", id="port-only"),
        pytest.param("127.0.0.1", id="no-port"),
        pytest.param("127.0.0.1:http", id="named-port"),
        pytest.param("127.0.0.1:70000", id="port-range"),
        pytest.param("::1:9464", id="v6-without-brackets"),
        pytest.param("metrics.internal:9464", id="hostname"),
        pytest.param(":9464", id="empty-host"),
    ],
)
def test_malformed_listen_is_a_config_error(listen: str) -> None:
    with pytest.raises(ConfigError, match="metrics_listen"):
        parse_listen_address(listen)


def test_the_parser_sits_below_the_service_layer() -> None:
    """config imports it, and config sits below service: it must not live there."""
    import monitor.listen

    assert monitor.listen.__name__.count(".") == 1
