"""The fetcher against real local servers (reliability.md tests 11-23).

Only the public internet is stood in for (`ScriptedResolver`, `FakeInternet`); every
connection a test cares about is a real TCP connection on 127.0.0.1 or ::1, and "no
connection" is asserted on a real listener and on the interpreter's socket.connect audit
events. Time-bound tests use deadlines of about a second; nothing sleeps to wait.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import resource
import shutil
import ssl
import zlib
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpcore
import pytest

from monitor import __version__
from monitor.fetch import politeness
from monitor.fetch.fetcher import Fetcher, parse_retry_after
from monitor.fetch.transport import Resolver, system_resolver
from monitor.models import FeedState, FetchResult, HttpSettings, ScheduleSettings
from tests.support.http import (
    PUBLIC_IP,
    AuditLog,
    Blackhole,
    FakeInternet,
    FeedServer,
    RecordedRequest,
    Reply,
    ScriptedResolver,
    Sentinel,
    Silent,
    brotli_bomb,
    compressed_body,
    drip,
    gzip_bomb,
    hang,
    huge_body,
    refused_port,
    self_signed_certificate,
)
from tests.support.parsing import good_rss

NOW = datetime(2024, 9, 14, 8, 0, tzinfo=UTC)
FEED = good_rss(3)
LOCAL = ("127.0.0.0/8",)


def settings(**overrides: Any) -> HttpSettings:
    """Short timeouts and loopback allowed: the normal case for tests."""
    base: dict[str, Any] = {
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "total_deadline_seconds": 3.0,
        "per_host_min_interval_seconds": 0.0,
        "allow_private_networks": LOCAL,
    }
    base.update(overrides)
    return HttpSettings(**base)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def fetch(
    url: str,
    *,
    http: HttpSettings | None = None,
    state: FeedState | None = None,
    resolver: Resolver | None = None,
    backend: httpcore.AsyncNetworkBackend | None = None,
) -> FetchResult:
    async with Fetcher(http or settings(), resolver=resolver, network_backend=backend) as f:
        return await f.fetch(state or FeedState("feed", url), now=NOW)


def fetch_sync(url: str, **kwargs: Any) -> FetchResult:
    return run(fetch(url, **kwargs))


@pytest.fixture
def sentinel() -> Iterator[Sentinel]:
    with Sentinel() as listener:
        yield listener


# ---------------------------------------------------------------------------
# Plain fetching, headers, conditional GET (test 20)


def test_a_200_returns_the_body_validators_and_lower_case_headers(server: FeedServer) -> None:
    server.route(
        "/feed.xml",
        Reply(
            200,
            FEED,
            (
                ("Content-Type", "application/rss+xml; charset=utf-8"),
                ("ETag", '"v1"'),
                ("Last-Modified", "Fri, 13 Sep 2024 10:00:00 GMT"),
                ("Cache-Control", "max-age=600"),
                ("X-Multi", "a"),
                ("X-Multi", "b"),
            ),
        ),
    )
    result = fetch_sync(server.url("/feed.xml"))
    assert (result.outcome, result.http_status, result.body) == ("ok", 200, FEED)
    assert (result.etag, result.last_modified) == ('"v1"', "Fri, 13 Sep 2024 10:00:00 GMT")
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["cache-control"] == "max-age=600"
    assert result.headers["x-multi"] == "a, b"
    assert result.headers["content-location"] == server.url("/feed.xml")
    assert result.fetched_at == NOW
    assert all(name == name.lower() for name in result.headers)
    (request,) = server.requests
    contact = HttpSettings().contact_url
    assert request.headers["user-agent"] == f"monitor/{__version__} (+{contact})"
    assert {"gzip", "deflate"} <= {c.strip() for c in request.headers["accept-encoding"].split(",")}
    assert "if-none-match" not in request.headers


def test_conditional_get_round_trip_sends_the_exact_stored_validators(server: FeedServer) -> None:
    current = {"etag": '"v1"', "modified": "Fri, 13 Sep 2024 10:00:00 GMT"}

    def conditional(request: RecordedRequest) -> Reply:
        headers = (("ETag", current["etag"]), ("Last-Modified", current["modified"]))
        if request.headers.get("if-none-match") == current["etag"]:
            return Reply(304, b"", headers)
        return Reply(200, FEED, headers)

    server.route("/feed", conditional)
    schedule = ScheduleSettings()

    async def poll_three_times() -> list[tuple[FetchResult, FeedState]]:
        state = FeedState("feed", server.url("/feed"))
        seen = []
        async with Fetcher(settings()) as fetcher:
            for step in range(3):
                if step == 2:
                    current["etag"] = '"v2"'  # same body, new validator
                result = await fetcher.fetch(state, now=NOW)
                state = politeness.next_state(
                    state,
                    result,
                    now=NOW,
                    schedule=schedule,
                    feed_interval_seconds=None,
                    feed_ttl_seconds=None,
                    rng=__import__("random").Random(step),
                )
                seen.append((result, state))
        return seen

    (first, s1), (second, s2), (third, s3) = run(poll_three_times())
    assert first.outcome == "ok" and s1.etag == '"v1"'
    second_request = server.requests[1].headers
    assert second_request["if-none-match"] == '"v1"'
    assert second_request["if-modified-since"] == "Fri, 13 Sep 2024 10:00:00 GMT"
    assert (second.outcome, second.http_status, second.body) == ("not_modified", 304, None)
    assert (s2.etag, s2.last_modified) == (s1.etag, s1.last_modified)
    assert third.outcome == "ok" and third.body == FEED
    assert s3.etag == '"v2"'


def test_a_non_ascii_etag_goes_back_byte_for_byte(server: FeedServer) -> None:
    # The server sends UTF-8 bytes (and a Latin-1 byte in Last-Modified); http.server
    # writes header strings as Latin-1, so these strings stand for those exact bytes.
    etag = '"caf\xc3\xa9-\xe2\x80\x94-v1"'  # "café-—-v1" in UTF-8
    modified = "Fri, 13 Sep 2024 10:00:00 GMT \xe9"

    def conditional(request: RecordedRequest) -> Reply:
        headers = (("ETag", etag), ("Last-Modified", modified))
        if request.headers.get("if-none-match") == etag:
            return Reply(304, b"", headers)
        return Reply(200, FEED, headers)

    server.route("/feed", conditional)
    first = fetch_sync(server.url("/feed"), state=FeedState("feed", server.url("/feed")))
    assert first.outcome == "ok"
    assert first.etag == etag and first.last_modified == modified
    state = FeedState("feed", server.url("/feed"), etag=first.etag, last_modified=modified)
    second = fetch_sync(server.url("/feed"), state=state)
    assert second.outcome == "not_modified"
    assert server.requests[1].headers["if-none-match"] == etag
    assert server.requests[1].headers["if-modified-since"] == modified


def test_validators_with_control_characters_are_not_sent(server: FeedServer) -> None:
    server.route("/feed", Reply(200, FEED))
    state = FeedState("feed", server.url("/feed"), etag='"x"\r\nX-Evil: 1', last_modified="ok")
    result = fetch_sync(server.url("/feed"), state=state)
    assert result.outcome == "ok"
    (request,) = server.requests
    assert "if-none-match" not in request.headers and "x-evil" not in request.headers
    assert request.headers["if-modified-since"] == "ok"


def test_cookies_are_neither_kept_nor_sent(server: FeedServer) -> None:
    server.route("/a", Reply(200, FEED, (("Set-Cookie", "session=secret; Path=/"),)))
    server.route("/b", Reply(200, FEED))

    async def both() -> None:
        async with Fetcher(settings()) as fetcher:
            await fetcher.fetch(FeedState("a", server.url("/a")), now=NOW)
            await fetcher.fetch(FeedState("b", server.url("/b")), now=NOW)

    run(both())
    assert "cookie" not in server.hits("/b")[0].headers


# ---------------------------------------------------------------------------
# Status codes, Retry-After, backoff (tests 21, 22)


@pytest.mark.parametrize(
    ("status", "outcome", "kind"),
    [
        (410, "gone", "http_410"),
        (404, "error", "http_404"),
        (500, "error", "http_500"),
        (503, "error", "http_503"),
        (429, "error", "http_429"),
        (403, "error", "http_403"),
    ],
)
def test_status_codes_become_outcomes(
    server: FeedServer, status: int, outcome: str, kind: str
) -> None:
    server.route("/feed", Reply(status, b"nope"))
    result = fetch_sync(server.url("/feed"))
    assert (result.outcome, result.error_kind, result.http_status) == (outcome, kind, status)
    assert result.body is None


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        pytest.param(429, "120", 120.0, id="429-seconds"),
        pytest.param(503, "120", 120.0, id="503-seconds"),
        pytest.param(
            429, format_datetime(NOW + timedelta(seconds=300), usegmt=True), 300.0, id="429-date"
        ),
        pytest.param(503, "99999999", 48 * 3600.0, id="capped-at-48h"),
        pytest.param(429, "soon", None, id="garbage-ignored"),
    ],
)
def test_retry_after_is_parsed_capped_and_honoured(
    server: FeedServer, status: int, retry_after: str, expected: float | None
) -> None:
    server.route("/feed", Reply(status, b"", (("Retry-After", retry_after),)))
    result = fetch_sync(server.url("/feed"))
    assert result.retry_after_seconds == expected
    state = politeness.next_state(
        FeedState("feed", server.url("/feed")),
        result,
        now=NOW,
        schedule=ScheduleSettings(),
        feed_interval_seconds=None,
        feed_ttl_seconds=None,
        rng=__import__("random").Random(1),
    )
    assert state.next_check_at is not None
    assert state.next_check_at >= NOW + timedelta(seconds=expected or 0)
    assert state.next_check_at <= NOW + timedelta(hours=48)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("  60 ", 60.0),
        ("Sat, 14 Sep 2024 07:00:00 GMT", 0.0),  # in the past
        ("Sat, 14 Sep 2024 08:01:00 GMT", 60.0),
        ("-5", None),
        ("", None),
        (None, None),
        ("1" * 200, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_a_feed_that_stays_down_backs_off_never_stops_and_recovers(server: FeedServer) -> None:
    down = {"polls": 4}

    def flaky(request: RecordedRequest) -> Reply:
        if down["polls"] > 0:
            down["polls"] -= 1
            return Reply(503, b"")
        return Reply(200, FEED)

    server.route("/feed", flaky)
    refused = refused_port()
    schedule = ScheduleSettings()

    async def poll(url: str, polls: int) -> list[FeedState]:
        state = FeedState("feed", url)
        states = []
        now = NOW
        async with Fetcher(settings()) as fetcher:
            for step in range(polls):
                result = await fetcher.fetch(state, now=now)
                state = politeness.next_state(
                    state,
                    result,
                    now=now,
                    schedule=schedule,
                    feed_interval_seconds=None,
                    feed_ttl_seconds=None,
                    rng=__import__("random").Random(step),
                )
                states.append(state)
                assert state.next_check_at is not None
                now = state.next_check_at
        return states

    flaky_states: list[FeedState] = run(poll(server.url("/feed"), 5))
    assert [s.consecutive_failures for s in flaky_states] == [1, 2, 3, 4, 0]
    checks = [s.next_check_at for s in flaky_states if s.next_check_at is not None]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(checks)]
    assert gaps[0] < gaps[1] < gaps[2]
    assert flaky_states[-1].failing_since is None
    refused_states = run(poll(f"http://127.0.0.1:{refused}/feed", 3))
    assert [s.consecutive_failures for s in refused_states] == [1, 2, 3]
    assert not any(s.disabled for s in refused_states)


def test_connection_refused_is_a_connect_error() -> None:
    result = fetch_sync(f"http://127.0.0.1:{refused_port()}/feed")
    assert (result.outcome, result.error_kind) == ("error", "connect_error")


def test_an_invalid_stored_url_is_an_error_not_an_exception() -> None:
    result = fetch_sync("ftp://example.org/feed")
    assert (result.outcome, result.error_kind) == ("error", "invalid_url")


# ---------------------------------------------------------------------------
# Redirects (tests 12, 19 and 301/308 vs 302/307)


@pytest.mark.parametrize(
    ("chain", "permanent"),
    [
        pytest.param([301], "/final", id="301"),
        pytest.param([308], "/final", id="308"),
        pytest.param([302], None, id="302"),
        pytest.param([307], None, id="307"),
        pytest.param([303], None, id="303"),
        pytest.param([301, 308], "/final", id="301-308"),
        pytest.param([301, 302], "/r1", id="301-then-302-keeps-the-permanent-part"),
        pytest.param([302, 301], None, id="302-then-301"),
    ],
)
def test_redirects_record_only_permanent_moves(
    server: FeedServer, chain: list[int], permanent: str | None
) -> None:
    for index, status in enumerate(chain):
        target = "/final" if index == len(chain) - 1 else f"/r{index + 1}"
        server.route(f"/r{index}", Reply(status, b"", (("Location", target),)))
    server.route("/final", Reply(200, FEED))
    result = fetch_sync(server.url("/r0"))
    assert result.outcome == "ok" and result.body == FEED
    assert result.permanent_url == (server.url(permanent) if permanent else None)


@pytest.mark.parametrize("hops", [5, 6, 30])
def test_redirect_limit(server: FeedServer, hops: int) -> None:
    for index in range(hops):
        server.route(f"/c{index}", Reply(302, b"", (("Location", f"/c{index + 1}"),)))
    server.route(f"/c{hops}", Reply(200, FEED))
    result = fetch_sync(server.url("/c0"), http=settings(max_redirects=5))
    if hops <= 5:
        assert result.outcome == "ok"
    else:
        assert result.error_kind == "too_many_redirects"
        assert len(server.requests) == 6  # the first request and five followed hops


def test_a_redirect_loop_stops_at_the_limit(server: FeedServer) -> None:
    server.route("/loop", Reply(301, b"", (("Location", "/loop"),)))
    result = fetch_sync(server.url("/loop"))
    assert (result.error_kind, result.permanent_url) == ("too_many_redirects", None)


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "gopher://example.org/", "data:text/xml,<rss/>", ""]
)
def test_a_redirect_to_a_non_http_url_is_refused(server: FeedServer, location: str) -> None:
    server.route("/feed", Reply(302, b"", (("Location", location),)))
    result = fetch_sync(server.url("/feed"))
    assert result.error_kind == "bad_redirect"


# ---------------------------------------------------------------------------
# Address checks (tests 11, 12, 14, 15)


def ssrf_targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://2130706433:{port}/",
        f"http://0x7f000001:{port}/",
        f"http://127.1:{port}/",
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://169.254.169.254:{port}/latest/meta-data/",
        f"http://[::ffff:a9fe:a9fe]:{port}/",
        f"http://10.0.0.1:{port}/",
        f"http://100.64.0.1:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://internal.example.org:{port}/",
    ]


SSRF_IDS = [
    "loopback",
    "localhost",
    "decimal",
    "hex",
    "short",
    "ipv6-loopback",
    "mapped-loopback",
    "metadata",
    "mapped-metadata",
    "private",
    "cgnat",
    "unspecified",
    "name-to-loopback",
]


class PublicAndInternalNames:
    """DNS for the tests: some names stand for the internet, the rest ask the system."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.scripted = ScriptedResolver(answers)
        self.known = set(answers)

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        if host.lower().rstrip(".") in self.known:
            return await self.scripted(host, port)
        return await system_resolver(host, port)


def internet(server: FeedServer) -> tuple[PublicAndInternalNames, FakeInternet]:
    names = PublicAndInternalNames(
        {"feeds.example.org": [PUBLIC_IP], "internal.example.org": ["127.0.0.1"]}
    )
    return names, FakeInternet({PUBLIC_IP: ("127.0.0.1", server.port)})


def blocked_ips(url: str) -> set[str]:
    return {"169.254.169.254", "10.0.0.1", "100.64.0.1"} & {url.split("//")[1].split(":")[0]}


@pytest.mark.parametrize("index", range(13), ids=SSRF_IDS)
def test_ssrf_targets_are_blocked_before_any_connection(
    index: int, sentinel: Sentinel, server: FeedServer
) -> None:
    url = ssrf_targets(sentinel.port)[index]
    names, _fake = internet(server)
    audit = AuditLog()
    with audit.watching():
        result = fetch_sync(url, http=settings(allow_private_networks=()), resolver=names)
    assert (result.outcome, result.error_kind) == ("error", "ssrf_blocked"), result.error_message
    assert "refusing to connect" in (result.error_message or "")
    assert sentinel.connections == 0
    assert audit.connects_to_port(sentinel.port) == []
    assert not [a for a in audit.connects if isinstance(a, tuple) and a[0] in blocked_ips(url)]


@pytest.mark.parametrize("status", [301, 302])
@pytest.mark.parametrize("index", range(13), ids=SSRF_IDS)
def test_a_redirect_to_a_forbidden_address_is_blocked_at_the_hop(
    index: int, status: int, sentinel: Sentinel, server: FeedServer
) -> None:
    target = ssrf_targets(sentinel.port)[index]
    server.route("/feed", Reply(status, b"", (("Location", target),)))
    names, fake = internet(server)
    public_url = f"http://feeds.example.org:{server.port}/feed"
    result = fetch_sync(
        public_url, http=settings(allow_private_networks=()), resolver=names, backend=fake
    )
    assert result.error_kind == "ssrf_blocked", result.error_message
    assert result.permanent_url is None
    assert sentinel.connections == 0
    (request,) = server.requests  # the public hop really happened, by name
    assert request.headers["host"] == f"feeds.example.org:{server.port}"
    assert (PUBLIC_IP, server.port) in fake.dialled


# Spellings of an allowed address that are refused whatever the allow-list says: other
# spellings of 127.0.0.1 while 127.0.0.0/8 is allowed (issue 11, section 5).
LOOPBACK_SPELLINGS = [
    pytest.param("2130706433", id="decimal"),
    pytest.param("0x7f000001", id="hex"),
    pytest.param("0X7F000001", id="hex-upper"),
    pytest.param("127.1", id="short"),
    pytest.param("127.0.1", id="short-3"),
    pytest.param("0x7f.0.0.1", id="hex-part"),
    pytest.param("017700000001", id="octal"),
    pytest.param("0177.0.0.1", id="octal-parts"),
    pytest.param("[::ffff:127.0.0.1]", id="mapped"),
    pytest.param("[::ffff:7f00:1]", id="mapped-hex"),
    pytest.param("[::127.0.0.1]", id="ipv4-compatible"),
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_other_spellings_of_an_allowed_address_are_refused(
    server: FeedServer, spelling: str
) -> None:
    server.route("/feed", Reply(200, FEED))
    audit = AuditLog()
    with audit.watching():
        result = fetch_sync(f"http://{spelling}:{server.port}/feed", http=settings())
    assert (result.outcome, result.error_kind) == ("error", "ssrf_blocked"), result.error_message
    assert "refused whatever allow_private_networks says" in (result.error_message or "")
    assert "refusing to connect" in (result.error_message or "")
    assert server.requests == [] and server.connections == 0
    assert audit.connects_to_port(server.port) == []
    canonical = fetch_sync(server.url("/feed"), http=settings())  # the control: still allowed
    assert canonical.outcome == "ok" and len(server.requests) == 1


@pytest.mark.parametrize("status", [301, 302])
@pytest.mark.parametrize("spelling", [p for p in LOOPBACK_SPELLINGS if p.id != "octal-parts"])
def test_a_redirect_to_another_spelling_of_an_allowed_address_is_refused_at_the_hop(
    server: FeedServer, spelling: str, status: int
) -> None:
    server.route("/feed", Reply(status, b"", (("Location", f"http://{spelling}:{server.port}/x"),)))
    server.route("/x", Reply(200, FEED))
    result = fetch_sync(server.url("/feed"), http=settings())
    assert result.error_kind == "ssrf_blocked", result.error_message
    assert result.permanent_url is None
    assert "refused whatever allow_private_networks says" in (result.error_message or "")
    assert [r.path for r in server.requests] == ["/feed"]  # the hop was never requested


def test_a_redirect_to_an_octal_dotted_quad_is_refused_by_httpx_itself(server: FeedServer) -> None:
    """httpx cannot parse `0177.0.0.1` in a Location and fails the response before our
    check sees it: refused all the same (as a protocol error), the hop never requested."""
    server.route("/feed", Reply(302, b"", (("Location", f"http://0177.0.0.1:{server.port}/x"),)))
    server.route("/x", Reply(200, FEED))
    result = fetch_sync(server.url("/feed"), http=settings())
    assert (result.outcome, result.error_kind) == ("error", "protocol_error"), result.error_message
    assert [r.path for r in server.requests] == ["/feed"]


@pytest.mark.parametrize("host", ["2130706433", "127.1", "::ffff:127.0.0.1", "::127.0.0.1"])
def test_the_connect_time_guard_refuses_the_spellings_too(sentinel: Sentinel, host: str) -> None:
    """The second line: even a host that reached the network backend is refused there."""
    from monitor.errors import FetchError
    from monitor.fetch.transport import AsyncioDialer, GuardedNetworkBackend

    backend = GuardedNetworkBackend(
        allow_private_networks=LOCAL, resolver=system_resolver, dialer=AsyncioDialer()
    )
    with pytest.raises(FetchError) as caught:
        run(backend.connect_tcp(host, sentinel.port, timeout=1.0))
    assert caught.value.kind == "ssrf_blocked"
    assert sentinel.connections == 0


def test_a_public_host_is_reached_at_the_checked_ip_with_its_name(server: FeedServer) -> None:
    server.route("/feed", Reply(200, FEED))
    names, fake = internet(server)
    result = fetch_sync(
        f"http://feeds.example.org:{server.port}/feed",
        http=settings(allow_private_networks=()),
        resolver=names,
        backend=fake,
    )
    assert result.outcome == "ok"
    assert fake.dialled == [(PUBLIC_IP, server.port)]  # the literal, never the name
    assert server.requests[0].headers["host"] == f"feeds.example.org:{server.port}"


def test_dns_rebinding_cannot_reach_loopback(server: FeedServer, sentinel: Sentinel) -> None:
    """First lookup public, every later one 127.0.0.1: each connection goes to the address
    that was checked for it; the rebound answer is refused."""
    resolver = ScriptedResolver({"rebind.example.org": [[PUBLIC_IP], ["127.0.0.1"]]})
    fake = FakeInternet({PUBLIC_IP: ("127.0.0.1", server.port)})
    server.route("/feed", Reply(200, FEED))
    # The same name on another port needs a new connection, so a second lookup.
    server.route(
        "/hop", Reply(302, b"", (("Location", f"http://rebind.example.org:{sentinel.port}/"),))
    )
    http = settings(allow_private_networks=())
    url = f"http://rebind.example.org:{sentinel.port}/feed"

    async def scenario() -> tuple[FetchResult, FetchResult, FetchResult]:
        async with Fetcher(http, resolver=resolver, network_backend=fake) as fetcher:
            first = await fetcher.fetch(FeedState("a", url), now=NOW)
            hop = await fetcher.fetch(
                FeedState("b", f"http://rebind.example.org:{server.port + 0}/hop"), now=NOW
            )
        async with Fetcher(http, resolver=resolver, network_backend=fake) as fresh:
            again = await fresh.fetch(FeedState("a", url), now=NOW)
        return first, hop, again

    first, hop, again = run(scenario())
    assert first.outcome == "ok" and first.body == FEED
    assert hop.error_kind == "ssrf_blocked"
    assert again.error_kind == "ssrf_blocked"
    assert sentinel.connections == 0
    assert all(host == PUBLIC_IP for host, _ in fake.dialled)


def test_a_name_with_one_forbidden_answer_is_refused_entirely(sentinel: Sentinel) -> None:
    resolver = ScriptedResolver({"mixed.example.org": [PUBLIC_IP, "127.0.0.1"]})
    fake = FakeInternet({})
    result = fetch_sync(
        f"http://mixed.example.org:{sentinel.port}/",
        http=settings(allow_private_networks=()),
        resolver=resolver,
        backend=fake,
    )
    assert result.error_kind == "ssrf_blocked"
    assert fake.dialled == [] and sentinel.connections == 0


def test_proxy_environment_is_ignored_and_the_guard_still_applies(
    monkeypatch: pytest.MonkeyPatch, server: FeedServer, sentinel: Sentinel
) -> None:
    proxy = f"http://127.0.0.1:{sentinel.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server.route("/feed", Reply(200, FEED))
    direct = fetch_sync(server.url("/feed"))
    blocked = fetch_sync("http://169.254.169.254/latest/", http=settings(allow_private_networks=()))
    assert direct.outcome == "ok" and len(server.requests) == 1
    assert blocked.error_kind == "ssrf_blocked"
    assert sentinel.connections == 0


# ---------------------------------------------------------------------------
# Timeouts, deadline, body caps (tests 16, 17, 18)


def test_a_slow_drip_is_cut_at_the_total_deadline(server: FeedServer) -> None:
    server.script("/drip", drip(0.1, total_bytes=600))  # would take 60 s
    http = settings(read_timeout=5.0, total_deadline_seconds=1.0)
    result = fetch_sync(server.url("/drip"), http=http)
    assert result.error_kind == "deadline_exceeded"
    assert 0.9 <= result.elapsed_seconds < 2.0


def test_a_silent_server_trips_the_read_timeout(server: FeedServer) -> None:
    server.script("/hang", hang)
    result = fetch_sync(server.url("/hang"), http=settings(read_timeout=0.5))
    assert result.error_kind == "timeout"
    assert "read" in (result.error_message or "")


def test_a_blackholed_connect_times_out_without_delaying_other_feeds(server: FeedServer) -> None:
    """One feed hangs in connect; with two slots, the other six feeds all finish before it."""
    server.route("/feed", Reply(200, FEED))
    http = settings(connect_timeout=1.0, global_concurrency=2)

    async def round_() -> list[FetchResult]:
        with Blackhole() as hole:
            states = [FeedState("stuck", f"http://127.0.0.1:{hole.port}/feed")]
            states += [FeedState(f"ok{n}", server.url("/feed")) for n in range(6)]
            async with Fetcher(http) as fetcher:
                return [result async for result in fetcher.iter_fetches(states, now=NOW)]

    *others, stuck = run(round_())
    assert stuck.feed_id == "stuck"
    assert stuck.error_kind == "timeout"
    assert "connect" in (stuck.error_message or "")
    assert [r.outcome for r in others] == ["ok"] * 6


def test_a_stalled_tls_handshake_hits_the_connect_timeout() -> None:
    with Silent() as silent:
        result = fetch_sync(
            f"https://127.0.0.1:{silent.port}/feed", http=settings(connect_timeout=0.5)
        )
    assert result.error_kind == "timeout"


def test_tls_to_a_plain_http_server_is_a_tls_error(server: FeedServer) -> None:
    result = fetch_sync(f"https://127.0.0.1:{server.port}/feed")
    assert result.error_kind == "tls_error"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return self_signed_certificate(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def tls_server(certificate: tuple[str, str]) -> Iterator[FeedServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with FeedServer(tls=context) as feed_server:
        feed_server.route("/feed", Reply(200, FEED))
        yield feed_server


def test_https_with_a_trusted_certificate(
    tls_server: FeedServer, certificate: tuple[str, str]
) -> None:
    trusted = ssl.create_default_context(cafile=certificate[0])

    async def fetch_tls() -> FetchResult:
        async with Fetcher(settings(), ssl_context=trusted) as fetcher:
            state = FeedState("feed", f"https://localhost:{tls_server.port}/feed")
            return await fetcher.fetch(state, now=NOW)

    result = run(fetch_tls())
    assert (result.outcome, result.body) == ("ok", FEED)
    assert tls_server.requests[0].headers["host"] == f"localhost:{tls_server.port}"


def test_https_with_an_untrusted_certificate_is_a_tls_error(tls_server: FeedServer) -> None:
    result = fetch_sync(f"https://localhost:{tls_server.port}/feed")
    assert result.error_kind == "tls_error"
    assert "certificate verify failed" in (result.error_message or "")


def test_https_checks_the_name_not_the_address(
    tls_server: FeedServer, certificate: tuple[str, str]
) -> None:
    trusted = ssl.create_default_context(cafile=certificate[0])

    async def fetch_by_ip() -> FetchResult:
        async with Fetcher(settings(), ssl_context=trusted) as fetcher:
            state = FeedState("feed", f"https://127.0.0.1:{tls_server.port}/feed")
            return await fetcher.fetch(state, now=NOW)

    result = run(fetch_by_ip())
    assert result.error_kind == "tls_error"
    assert tls_server.requests == []


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_compression_bomb_stops_at_the_decoded_cap(server: FeedServer, encoding: str) -> None:
    bomb = gzip_bomb() if encoding == "gzip" else brotli_bomb()
    server.script("/bomb", compressed_body(encoding, bomb))
    cap = 10 * 1024 * 1024
    before = _peak_rss_mib()
    result = fetch_sync(server.url("/bomb"), http=settings(max_body_bytes=cap))
    growth = _peak_rss_mib() - before
    assert result.error_kind == "body_too_large"
    decoded = int((result.error_message or "").split("stopped at ")[1].split()[0])
    assert cap < decoded <= cap + 256 * 1024  # within one decode step of the cap
    assert growth < 100


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_plain_body_is_refused(server: FeedServer, chunked: bool) -> None:
    server.script("/huge", huge_body(3 * 1024 * 1024, chunked=chunked))
    result = fetch_sync(server.url("/huge"), http=settings(max_body_bytes=1024 * 1024))
    assert result.error_kind == "body_too_large"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
        ("gzip", lambda data: gzip.compress(data[:100]) + gzip.compress(data[100:])),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "gzip-multi-member"],
)
def test_compressed_bodies_are_decoded(server: FeedServer, encoding: str, encode: Any) -> None:
    server.script("/feed", compressed_body(encoding, encode(FEED)))
    result = fetch_sync(server.url("/feed"))
    assert result.outcome == "ok" and result.body == FEED


@pytest.mark.parametrize(
    ("encoding", "body", "kind"),
    [
        ("compress", b"xx", "unsupported_encoding"),
        ("gzip", b"\x1f\x8bnot really gzip", "decode_error"),
    ],
)
def test_undecodable_bodies_are_errors(
    server: FeedServer, encoding: str, body: bytes, kind: str
) -> None:
    server.script("/feed", compressed_body(encoding, body))
    assert fetch_sync(server.url("/feed")).error_kind == kind


# ---------------------------------------------------------------------------
# Politeness: global and per-host limits (test 23)


SPACING = 0.25  # seconds between two requests to one host (per_host_min_interval_seconds)


def test_one_host_gets_at_most_k_concurrent_requests_with_minimum_spacing() -> None:
    with FeedServer(latency=2.5 * SPACING) as server:  # two requests overlap
        server.route("/*", Reply(200, FEED))
        http = settings(
            per_host_concurrency=2,
            per_host_min_interval_seconds=SPACING,
            # not what is tested: generous, so a slow answer on a loaded machine is no error
            connect_timeout=10.0,
            read_timeout=10.0,
            total_deadline_seconds=60.0,
        )
        states = [FeedState(f"f{n}", server.url(f"/feed/{n}")) for n in range(20)]

        async def round_() -> list[FetchResult]:
            async with Fetcher(http) as fetcher:
                return await fetcher.fetch_many(states, now=NOW)

        results = run(round_())
        starts = sorted(r.started_at for r in server.requests)
    assert [r.feed_id for r in results] == [s.feed_id for s in states]
    assert all(r.outcome == "ok" for r in results)
    assert server.max_in_flight == 2
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Spacing is enforced when requests leave the client; the server records them after its
    # own scheduling delay, which on a loaded machine reaches tens of milliseconds. So the
    # spacing is long beside that jitter and each gap and the span get half a spacing of
    # tolerance: without spacing, two requests would leave together (a gap of 0).
    assert min(gaps) >= SPACING / 2
    assert starts[-1] - starts[0] >= 19 * SPACING - SPACING / 2


@pytest.mark.parametrize(
    ("limit", "hosts"), [(4, 12), (32, 80)], ids=["one-pool", "pools-sharded-by-host"]
)
def test_the_global_limit_caps_concurrency_across_hosts(limit: int, hosts: int) -> None:
    names = {f"h{n}.example.org": ["127.0.0.1"] for n in range(hosts)}
    with FeedServer(latency=0.2) as server:
        server.route("/*", Reply(200, FEED))
        http = settings(global_concurrency=limit, per_host_concurrency=2)
        states = [
            FeedState(f"f{n}", f"http://h{n}.example.org:{server.port}/") for n in range(hosts)
        ]

        async def round_() -> list[FetchResult]:
            async with Fetcher(http, resolver=ScriptedResolver(names)) as fetcher:
                return [r async for r in fetcher.iter_fetches(states, now=NOW)]

        results = run(round_())
    assert sorted(r.feed_id for r in results) == sorted(s.feed_id for s in states)
    assert all(r.outcome == "ok" for r in results)
    assert limit // 2 < server.max_in_flight <= limit


def test_fetch_never_raises_for_a_broken_state() -> None:
    odd = replace(FeedState("x", "http://[::1"), etag="\x00")
    assert fetch_sync(odd.url, state=odd).outcome == "error"


def test_iter_fetches_holds_at_most_max_pending_results_the_caller_has_not_taken() -> None:
    """Issue 17: a caller that takes results slowly (its parsers are busy) holds memory
    bounded by `max_pending`, not by the number of feeds: no more requests are started
    than results taken plus `max_pending`."""
    hosts, pending = 12, 3
    names = {f"h{n}.example.org": ["127.0.0.1"] for n in range(hosts)}
    with FeedServer() as server:
        server.route("/*", Reply(200, FEED))
        http = settings(global_concurrency=hosts, per_host_concurrency=2)
        states = [
            FeedState(f"f{n}", f"http://h{n}.example.org:{server.port}/") for n in range(hosts)
        ]

        async def slow_caller() -> list[tuple[int, int]]:
            seen: list[tuple[int, int]] = []
            async with Fetcher(http, resolver=ScriptedResolver(names)) as fetcher:
                taken = 0
                async for _result in fetcher.iter_fetches(states, now=NOW, max_pending=pending):
                    taken += 1
                    # Busy with this result until the fetcher has used all the room it has.
                    expected = min(hosts, taken + pending)
                    for _ in range(3000):
                        if len(server.requests) >= expected:
                            break
                        await asyncio.sleep(0.01)
                    seen.append((taken, len(server.requests)))
            return seen

        seen = run(slow_caller())
    assert len(seen) == hosts
    assert all(requests <= taken + pending for taken, requests in seen), seen
    assert seen[0] == (1, 1 + pending)  # the room is used, not left idle
