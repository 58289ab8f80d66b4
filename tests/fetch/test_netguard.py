"""The URL scheme check and the address rule (pure; the network side is in test_fetcher)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from monitor.config import parse_indicators_text
from monitor.errors import ConfigError
from monitor.fetch.netguard import (
    AddressSpellingError,
    host_spelling_problem,
    is_address_allowed,
    parse_allowed_networks,
    parse_ip_literal,
    validate_feed_url,
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("file:///etc/passwd", "scheme 'file' is not allowed", id="file"),
        pytest.param("ftp://example.org/feed", "scheme 'ftp' is not allowed", id="ftp"),
        pytest.param("gopher://example.org:70/", "scheme 'gopher' is not allowed", id="gopher"),
        pytest.param("data:text/xml,<rss/>", "scheme 'data' is not allowed", id="data"),
        pytest.param("javascript:alert(1)", "scheme 'javascript' is not allowed", id="javascript"),
        pytest.param("example.org/feed", "has no scheme", id="no-scheme"),
        pytest.param("http:///feed", "has no host", id="no-host"),
        pytest.param("", "empty", id="empty"),
        pytest.param("http://exa mple.org/", "spaces or control", id="space"),
        pytest.param("http://example.org/\r\nX: y", "spaces or control", id="crlf"),
        pytest.param("http://example.org:99999/", "cannot be parsed", id="bad-port"),
        pytest.param("http://example.org/" + "a" * 3000, "longer than", id="too-long"),
    ],
)
def test_validate_feed_url_rejects_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_feed_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://eurasianet.org/rss",
        "HTTP://Example.ORG:8080/feed.xml?x=1",
        "  https://24.kg/rss/  ",
        "http://[2001:db8::1]/feed",
    ],
)
def test_validate_feed_url_accepts_http_and_https(url: str) -> None:
    assert validate_feed_url(url) == url.strip()


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("169.16689662", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_parse_ip_literal_reads_what_the_c_resolver_reads(spelling: str, address: str) -> None:
    assert parse_ip_literal(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "name", ["localhost", "example.org", "1.2.3.4.5", "256.1.1.1", "0x", "12a", "", "1..2"]
)
def test_parse_ip_literal_leaves_names_alone(name: str) -> None:
    # "0x" is inet_aton's zero; everything else here is a name (or invalid) for the resolver.
    result = parse_ip_literal(name)
    if name == "0x":
        assert result == ipaddress.ip_address("0.0.0.0")
    else:
        assert result is None


FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback-range"),
    ("::1", "ipv6-loopback"),
    ("::ffff:127.0.0.1", "mapped-loopback"),
    ("169.254.169.254", "metadata"),
    ("::ffff:a9fe:a9fe", "mapped-metadata"),
    ("fe80::1", "ipv6-link-local"),
    ("10.0.0.1", "rfc1918-10"),
    ("172.16.5.4", "rfc1918-172"),
    ("192.168.1.1", "rfc1918-192"),
    ("100.64.0.1", "cgnat"),
    ("100.100.100.200", "alibaba-metadata-cgnat"),
    ("0.0.0.0", "unspecified"),
    ("::", "ipv6-unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "ipv6-multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "test-net"),
    ("198.18.0.1", "benchmarking"),
    ("fc00::1", "ipv6-unique-local"),
    ("fd00:ec2::254", "aws-ipv6-metadata"),
    ("2002:7f00:1::", "6to4-loopback"),
    ("64:ff9b::a9fe:a9fe", "nat64-metadata"),
    ("::7f00:1", "ipv4-compatible-loopback"),
    ("2001:db8::1", "ipv6-documentation"),
    ("fec0::1", "ipv6-site-local"),
]


@pytest.mark.parametrize(("address", "label"), FORBIDDEN, ids=[label for _, label in FORBIDDEN])
def test_non_global_addresses_are_refused(address: str, label: str) -> None:
    assert not is_address_allowed(address, ())


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "1.1.1.1"]
)
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    assert is_address_allowed(address, ())


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        pytest.param("127.0.0.1", ("127.0.0.0/8",), True, id="loopback-allowed"),
        pytest.param("::ffff:127.0.0.1", ("127.0.0.0/8",), True, id="mapped-loopback-allowed"),
        pytest.param("10.1.2.3", ("10.1.0.0/16",), True, id="private-in-range"),
        pytest.param("10.2.0.1", ("10.1.0.0/16",), False, id="private-outside-range"),
        pytest.param("169.254.169.254", ("127.0.0.0/8",), False, id="other-class-still-refused"),
        pytest.param("fd00::5", ("fd00::/8",), True, id="ipv6-ula-allowed"),
        pytest.param("::1", ("127.0.0.0/8",), False, id="v4-range-does-not-allow-v6"),
    ],
)
def test_the_allow_list_opens_only_the_named_networks(
    address: str, allowed: tuple[str, ...], expected: bool
) -> None:
    assert is_address_allowed(address, allowed) is expected


def test_a_name_is_never_an_allowed_address() -> None:
    assert not is_address_allowed("localhost", ("127.0.0.0/8",))
    assert not is_address_allowed("example.org", ())


@pytest.mark.parametrize("bad", ["127.0.0.0/33", "not-a-network", "10.0.0.0/8/8"])
def test_parse_allowed_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="not a network in CIDR notation"):
        parse_allowed_networks(["10.0.0.0/8", bad])


# -- spellings refused whatever the allow-list says (issue 11, section 5) ----------------

REFUSED_SPELLINGS = [
    pytest.param("2130706433", "127.0.0.1", id="decimal"),
    pytest.param("0x7f000001", "127.0.0.1", id="hex"),
    pytest.param("0X7F000001", "127.0.0.1", id="hex-upper"),
    pytest.param("127.1", "127.0.0.1", id="short"),
    pytest.param("127.0.1", "127.0.0.1", id="short-3"),
    pytest.param("0177.0.0.1", "127.0.0.1", id="octal-part"),
    pytest.param("017700000001", "127.0.0.1", id="octal"),
    pytest.param("127.000.0.1", "127.0.0.1", id="leading-zeros"),
    pytest.param("0x7f.1", "127.0.0.1", id="hex-short"),
    pytest.param("169.16689662", "169.254.169.254", id="metadata-short"),
    pytest.param("134744072", "8.8.8.8", id="public-decimal"),
    pytest.param("0", "0.0.0.0", id="zero"),
    pytest.param("[::ffff:127.0.0.1]", "127.0.0.1", id="mapped"),
    pytest.param("[::FFFF:127.0.0.1]", "127.0.0.1", id="mapped-upper"),
    pytest.param("[::ffff:7f00:1]", "127.0.0.1", id="mapped-hex"),
    pytest.param("[0:0:0:0:0:ffff:7f00:1]", "127.0.0.1", id="mapped-long"),
    pytest.param("[::ffff:8.8.8.8]", "8.8.8.8", id="mapped-public"),
    pytest.param("[::ffff:a9fe:a9fe]", "169.254.169.254", id="mapped-metadata"),
    pytest.param("[::127.0.0.1]", "127.0.0.1", id="ipv4-compatible"),
]


@pytest.mark.parametrize(("host", "meant"), REFUSED_SPELLINGS)
def test_non_canonical_and_ipv4_carrying_spellings_are_refused(host: str, meant: str) -> None:
    problem = host_spelling_problem(host)
    assert problem is not None and f"write {meant} if you mean it" in problem
    assert "refused whatever allow_private_networks says" in problem
    with pytest.raises(AddressSpellingError, match="refused whatever allow_private_networks"):
        validate_feed_url(f"http://{host}:8080/feed")
    with pytest.raises(AddressSpellingError):
        validate_feed_url(f"https://{host}/feed")  # without a port too


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "8.8.8.8", "[::1]", "[2001:db8::1]", "[64:ff9b::808:808]", "[fe80::1%eth0]",
     "example.org", "localhost", "1.2.3.4.5", "256.1.1.1", "xn--80ak6aa92e.com"],
)  # fmt: skip
def test_canonical_addresses_and_names_are_left_to_the_address_rule(host: str) -> None:
    assert host_spelling_problem(host) is None


@pytest.mark.parametrize(("host", "meant"), REFUSED_SPELLINGS)
def test_config_refuses_the_spellings_with_one_line(host: str, meant: str) -> None:
    good = (Path(__file__).parent.parent / "fixtures" / "config" / "good.yaml").read_text("utf-8")
    text = good.replace("url: https://wire.example.org/rss", f'url: "http://{host}/rss"')
    assert text != good
    with pytest.raises(ConfigError) as caught:
        parse_indicators_text(text, source="indicators.yaml")
    message = str(caught.value)
    assert message.startswith("indicators.yaml: feeds[0].url: '"), message
    assert f"(write {meant} if you mean it)" in message and "\n" not in message
