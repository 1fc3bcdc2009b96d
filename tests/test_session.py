"""TwoChatSession: its arguments, the exact request of each method, each method end to end.

Request shapes are pinned with aioresponses (no server); behaviour runs over real HTTP on
127.0.0.1 against FakeTwoChat.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import re
import socket
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import API_KEY, BridgedAioresponses, serve
from yarl import URL

from twochat_async import (
    AccountInfo,
    APITimeoutError,
    AvailableNumber,
    City,
    DidType,
    InvalidResponseError,
    Purchase,
    RateLimit,
    Region,
    Reservation,
    ServerError,
    TwoChatError,
    TwoChatSession,
)
from twochat_async.testing import FakeReservation, FakeTwoChat, ManualClock

BASE = "https://api.p.2chat.io"
ANY_URL = re.compile(r"https?://.*")
RESERVATIONS = f"{BASE}/open/numbers/reservations"
PURCHASE = f"{BASE}/open/numbers/purchase"
T0 = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
ABC_NUMBERS = ["+12135551234", *(f"+1213555{n:04d}" for n in range(1235, 1245))]

Call = Callable[[TwoChatSession], Awaitable[Any]]

#: An answer every method can decode: each list endpoint finds its key in data.
EVERYTHING = {
    "success": True,
    "data": {
        "reservation_details": {
            "uuid": "u",
            "number": "+12135551234",
            "created_at": "2024-01-15T10:30:00Z",
            "expires_at": "2024-01-15T11:30:00Z",
        },
        "regions": [],
        "cities": [],
        "did_types": [],
        "groups": [],
        "numbers": [],
        "requirements": [],
        "reservations": [],
    },
    "account": {
        "name": "n",
        "uuid": "u",
        "on_trial": False,
        "blocked": False,
        "created_at": "2022-04-21T21:55:37Z",
        "expires_at": None,
    },
    "limits": {"requests_per_minute": 80},
    "usage": {
        "api_request_count": 1,
        "max_api_request_count": 2,
        "number_check_count": 3,
        "max_number_check_count": 4,
    },
}


async def run(call: Call, **options: Any) -> Any:
    """Run ``call`` on a session made with ``options`` (and this suite's key, unless given)."""
    options.setdefault("api_key", API_KEY)
    async with TwoChatSession(**options) as chat:
        return await call(chat)


def only_request(mocked: BridgedAioresponses) -> tuple[str, URL, dict[str, Any]]:
    """Return the method, URL (query included) and keyword arguments of the one request."""
    (((method, url), calls),) = mocked.requests.items()
    assert len(calls) == 1
    return method, url, calls[0].kwargs


@pytest.fixture
def answering(mocked: BridgedAioresponses) -> BridgedAioresponses:
    """aioresponses answering EVERYTHING to every request to any URL."""
    for method in ("GET", "POST", "DELETE"):
        mocked.add(ANY_URL, method=method, payload=EVERYTHING, repeat=True)
    return mocked


# -- the arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"api_key": None}, {"api_key": ""}])
def test_no_api_key_names_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    """No key from the argument nor the environment (an empty one counts as none)."""
    with pytest.raises(ValueError, match="TWOCHAT_API_KEY"):
        TwoChatSession(**options)
    monkeypatch.setenv("TWOCHAT_API_KEY", "")
    with pytest.raises(ValueError, match="TWOCHAT_API_KEY"):
        TwoChatSession(**options)


@contextlib.asynccontextmanager
async def recording_headers(name: str) -> AsyncIterator[tuple[str, list[list[str]]]]:
    """Serve did_types() over HTTP; yield its URL and, per request, the ``name`` headers."""
    seen: list[list[str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.getall(name, []))
        return web.json_response({"success": True, "data": {"did_types": []}})

    async with serve(handler) as url:
        yield url, seen


async def test_the_key_comes_from_the_argument_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TWOCHAT_API_KEY is sent as X-User-API-Key when no api_key is given, never over it."""
    monkeypatch.setenv("TWOCHAT_API_KEY", "env-key-123")
    async with recording_headers("X-User-API-Key") as (url, sent):
        await run(lambda chat: chat.did_types(), api_key=None, base_url=url)
        await run(lambda chat: chat.did_types(), base_url=url)
    assert sent == [["env-key-123"], [API_KEY]]


@pytest.mark.parametrize(
    "key",
    [" secret-key-abc", "secret-key-abc ", "secret-key-abc\n", "secret\x00key-abc", 12345],
    ids=["leading-space", "trailing-space", "newline", "nul", "int"],
)
def test_a_malformed_api_key_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, key: Any
) -> None:
    """A key with spaces or control characters, or not a str, is refused; never shown."""
    with pytest.raises(ValueError, match=r"^api_key must be a string") as info:
        TwoChatSession(key)
    assert "secret" not in str(info.value.args)
    if isinstance(key, str) and "\x00" not in key:  # the environment cannot hold a NUL
        monkeypatch.setenv("TWOCHAT_API_KEY", key)
        with pytest.raises(ValueError, match=r"^api_key must be a string") as info:
            TwoChatSession()
        assert "secret" not in str(info.value.args)


async def test_base_url_defaults_to_2chat_then_the_environment(
    answering: BridgedAioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests go to https://api.p.2chat.io, else TWOCHAT_BASE_URL; an argument wins over both."""
    assert TwoChatSession(API_KEY).base_url == BASE
    monkeypatch.setenv("TWOCHAT_BASE_URL", "http://localhost:9000/")
    assert TwoChatSession(API_KEY, base_url="https://other.example").base_url == (
        "https://other.example"
    )
    await run(lambda chat: chat.reserve("abc-123"))
    assert [("POST", URL("http://localhost:9000/open/numbers/reservations"))] == list(
        answering.requests
    )


async def test_a_base_url_with_a_path_is_joined_without_a_double_slash(
    answering: BridgedAioresponses,
) -> None:
    """A base_url with a path and a trailing slash is kept without the slash, joined cleanly."""
    chat = TwoChatSession(API_KEY, base_url="https://proxy.example/2chat/")
    assert chat.base_url == "https://proxy.example/2chat"
    await run(lambda chat: chat.reserve("abc-123"), base_url="https://proxy.example/2chat/")
    expected = URL("https://proxy.example/2chat/open/numbers/reservations")
    assert [("POST", expected)] == list(answering.requests)


@pytest.mark.parametrize(
    "base_url",
    [
        *["ftp://api.p.2chat.io", "https://", "api.p.2chat.io", "/open/numbers"],
        *["https://user:pass@api.p.2chat.io", "https://api.p.2chat.io?x=1"],
        *["https://api.p.2chat.io#frag", 123, "http://[::1", "https://api.p.2chat.io\n"],
        *["https://api.p.2chat.io/\r\nX-Evil: 1", "https://api. p.2chat.io", "https://\ud800.x"],
    ],
    ids=repr,
)
def test_a_base_url_that_is_not_a_plain_http_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, base_url: Any
) -> None:
    """base_url must be an http(s) URL with a host, no credentials, query, fragment or spaces."""
    with pytest.raises(ValueError, match=r"^base_url must"):
        TwoChatSession(API_KEY, base_url=base_url)
    if isinstance(base_url, str) and base_url.isprintable():
        monkeypatch.setenv("TWOCHAT_BASE_URL", base_url)
        with pytest.raises(ValueError, match=r"^base_url must"):
            TwoChatSession(API_KEY)


@pytest.mark.parametrize(
    "base_url", ["http://api.p.2chat.io", "http://10.0.0.5:8080", "http://example.com/"]
)
def test_plain_http_to_another_host_needs_allow_insecure_http(base_url: str) -> None:
    """A plain-http base_url off this machine is refused: the key would travel in clear."""
    with pytest.raises(ValueError, match="allow_insecure_http") as info:
        TwoChatSession(API_KEY, base_url=base_url)
    assert API_KEY not in str(info.value)
    chat = TwoChatSession(API_KEY, base_url=base_url, allow_insecure_http=True)
    assert base_url.rstrip("/") == chat.base_url


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8080", "http://127.8.9.10", "http://localhost:1", "http://[::1]:9"],
)
def test_plain_http_to_this_machine_needs_no_opt_in(base_url: str) -> None:
    """Plain http to loopback (tests, local proxies) is allowed as is."""
    assert base_url == TwoChatSession(API_KEY, base_url=base_url).base_url


@pytest.mark.parametrize("flag", ["no", 0, None], ids=repr)
def test_allow_insecure_http_must_be_a_bool(flag: Any) -> None:
    """A non-bool allow_insecure_http is refused, even a falsy one: "no" would opt in."""
    with pytest.raises(ValueError, match=r"^allow_insecure_http must be True or False"):
        TwoChatSession(API_KEY, base_url="http://127.0.0.1:1", allow_insecure_http=flag)


@pytest.mark.parametrize(
    ("timeout", "sent"),
    [
        (7, aiohttp.ClientTimeout(total=7.05, connect=7.0, ceil_threshold=math.inf)),
        (
            aiohttp.ClientTimeout(total=12, connect=3, sock_read=5),
            aiohttp.ClientTimeout(total=12, connect=3, sock_read=5, ceil_threshold=math.inf),
        ),
        (
            aiohttp.ClientTimeout(total=2, connect=30, sock_connect=1),
            aiohttp.ClientTimeout(total=2.05, connect=2, sock_connect=1, ceil_threshold=math.inf),
        ),
    ],
    ids=["seconds", "client-timeout", "connect-longer-than-total"],
)
async def test_timeout_is_sent_as_a_client_timeout(
    answering: BridgedAioresponses, timeout: Any, sent: aiohttp.ClientTimeout
) -> None:
    """aiohttp is told, with every request (a borrowed pool too), the connect phase's
    bound (the total, or connect if shorter) and a total just after it, neither rounded."""
    async with aiohttp.ClientSession() as http:
        await run(lambda chat: chat.did_types(), timeout=timeout, http_session=http)
    assert sent == only_request(answering)[2]["timeout"]


@pytest.mark.parametrize(
    "timeout", [0.3, aiohttp.ClientTimeout(total=60, sock_read=0.3)], ids=["seconds", "sock-read"]
)
async def test_our_own_pool_keeps_to_the_timeout_given(timeout: Any) -> None:
    """Over HTTP, a server that never answers fails a call within the timeout given: the
    total in seconds, or a ClientTimeout's own field (here sock_read, not its total)."""

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response()

    loop = asyncio.get_running_loop()
    async with serve(never) as url:
        started = loop.time()
        with pytest.raises(APITimeoutError):
            await run(lambda chat: chat.did_types(), base_url=url, timeout=timeout, max_retries=0)
    assert loop.time() - started < 10


async def _stall(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


async def _gateway_page(request: web.Request) -> web.Response:
    return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")


async def _not_json(request: web.Request) -> web.Response:
    return web.Response(status=200, text="<html>OK</html>", content_type="text/html")


@pytest.mark.parametrize(
    ("handler", "error"),
    [(_stall, APITimeoutError), (_gateway_page, ServerError), (_not_json, InvalidResponseError)],
    ids=["timeout", "502-page", "not-json"],
)
async def test_a_failed_call_leaves_no_cycle_holding_the_session(
    handler: Callable[[web.Request], Awaitable[web.Response]], error: type[Exception]
) -> None:
    """Once the caller lets go of the error, a session dropped without closing it (a
    temporary one) is freed at once, with its pool, not at the cycle collector's next run:
    until then its pool is open, and the collector reports "Unclosed client session"."""
    async with serve(handler) as url:
        gc.disable()
        try:
            chat = TwoChatSession(API_KEY, base_url=url, timeout=0.3, max_retries=0)
            dropped = weakref.ref(chat)
            failed = False
            try:
                await chat.did_types()
            except error:
                failed = True
            del chat
            assert failed
            # A callback the loop already holds (Python 3.12 schedules one when the timeout
            # cancels the task) may keep the frames for one pass of the loop; a cycle never
            # lets go, however many passes run with the collector off.
            for _ in range(10):
                if dropped() is None:
                    break
                await asyncio.sleep(0)
            assert dropped() is None
        finally:
            gc.enable()


@pytest.mark.parametrize(
    "timeout",
    [0, -1, 0.0, "x", True, None, float("nan"), float("inf"), 10**400],
    ids=["0", "-1", "0.0", "x", "True", "None", "nan", "inf", "10**400"],
)
def test_a_timeout_that_is_not_finite_and_positive_is_refused(timeout: Any) -> None:
    """timeout must be a finite, positive number of seconds (not a bool): no OverflowError."""
    with pytest.raises(ValueError, match=r"^timeout must be a finite, positive number"):
        TwoChatSession(API_KEY, timeout=timeout)


@pytest.mark.parametrize(
    ("timeout", "field"),
    [
        (aiohttp.ClientTimeout(total=0), "total"),
        (aiohttp.ClientTimeout(total=float("inf")), "total"),
        (aiohttp.ClientTimeout(total=10, connect=-1), "connect"),
        (aiohttp.ClientTimeout(total=10, sock_read=float("nan")), "sock_read"),
        (aiohttp.ClientTimeout(total=10, sock_connect=10**400), "sock_connect"),
        (aiohttp.ClientTimeout(total="30"), "total"),  # type: ignore[arg-type]
        (aiohttp.ClientTimeout(), "total"),
        (aiohttp.ClientTimeout(total=None, sock_read=5, connect=5), "total"),
    ],
    ids=[
        "total-zero",
        "total-inf",
        "connect-negative",
        "sock-read-nan",
        "huge",
        "str",
        "no-total",
        "sock-read-only",
    ],
)
def test_client_timeout_fields_are_checked(timeout: aiohttp.ClientTimeout, field: str) -> None:
    """A ClientTimeout's total must be finite and positive (it bounds the whole request: a
    sock_read alone lets a trickling server hold a call for ever); each other field None or
    finite and positive. The bad one is named."""
    with pytest.raises(ValueError, match=rf"^timeout\.{field} must be a finite, positive"):
        TwoChatSession(API_KEY, timeout=timeout)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("max_connections", 0, "max_connections must be an int of at least 1"),
        ("max_connections", True, "max_connections must be an int of at least 1"),
        ("max_connections", "10", "max_connections must be an int of at least 1"),
        ("max_retries", -1, "max_retries must be an int from 0 to 100"),
        ("max_retries", 1.5, "max_retries must be an int from 0 to 100"),
        ("max_retries", None, "max_retries must be an int from 0 to 100"),
        ("max_retries", 101, "max_retries must be an int from 0 to 100"),
        ("max_retries", 10**400, "max_retries must be an int from 0 to 100"),
        ("rate_limit", 0, "per_minute must be a finite number of at least 1/60"),
        ("rate_limit", "fast", "per_minute must be a finite number of at least 1/60"),
        ("rate_limit", True, "per_minute must be a finite number of at least 1/60"),
        ("http_session", object(), "http_session must be an aiohttp.ClientSession"),
        ("http_session", aiohttp.ClientTimeout(), "http_session must be an aiohttp.ClientSession"),
        ("user_agent", "", "user_agent must be printable ASCII"),
        ("user_agent", "   ", "user_agent must be printable ASCII"),
        ("user_agent", "my-app\n", "user_agent must be printable ASCII"),
        ("user_agent", "my\x00app", "user_agent must be printable ASCII"),
        ("user_agent", "my-app/1.0\r\nX-Evil: 1", "user_agent must be printable ASCII"),
        ("user_agent", "my\x7fapp", "user_agent must be printable ASCII"),
        ("user_agent", "café/1.0", "user_agent must be printable ASCII"),
        ("user_agent", 5, "user_agent must be printable ASCII"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else "",
)
def test_each_bad_option_is_refused_by_name(option: str, value: Any, message: str) -> None:
    """A bad max_connections, max_retries, rate_limit, http_session or user_agent: ValueError."""
    with pytest.raises(ValueError, match=f"^{message}"):
        TwoChatSession(API_KEY, **{option: value})


def test_the_largest_options_are_accepted() -> None:
    """100 retries, a burst of a million and one request an hour are within range."""
    TwoChatSession(API_KEY, max_retries=100, rate_limit=RateLimit(1 / 60, burst=1_000_000))


async def test_user_agent_replaces_the_default() -> None:
    """user_agent= is sent as the one User-Agent header."""
    async with recording_headers("User-Agent") as (url, sent):
        await run(lambda chat: chat.did_types(), user_agent="my-app/2.0", base_url=url)
    assert sent == [["my-app/2.0"]]


async def test_repr_shows_the_address_and_state_never_the_key() -> None:
    """repr(session) shows base_url and open/closed, and never the API key."""
    chat = TwoChatSession(API_KEY)
    assert repr(chat) == "<TwoChatSession base_url='https://api.p.2chat.io' open>"
    await chat.close()
    assert repr(chat) == "<TwoChatSession base_url='https://api.p.2chat.io' closed>"
    assert API_KEY not in repr(chat) + str(chat)


@pytest.mark.parametrize(
    ("options", "refused", "expected"),
    [
        ({"api_key": ""}, "api_key", "<TwoChatSession base_url=None closed>"),
        ({"base_url": "ftp://x"}, "base_url", "<TwoChatSession base_url=None closed>"),
        ({"timeout": -1}, "timeout", "<TwoChatSession base_url='https://api.p.2chat.io' closed>"),
        (
            {"rate_limit": 0},
            "per_minute",
            "<TwoChatSession base_url='https://api.p.2chat.io' closed>",
        ),
    ],
    ids=["no-key", "bad-base-url", "bad-timeout", "bad-rate-limit"],
)
def test_repr_of_a_half_built_session_does_not_raise(
    options: dict[str, Any], refused: str, expected: str
) -> None:
    """repr() of a session whose __init__ raised halfway (error trackers call it) still works."""
    chat = TwoChatSession.__new__(TwoChatSession)
    with pytest.raises(ValueError, match=refused):
        TwoChatSession.__init__(chat, **{"api_key": API_KEY, **options})
    assert expected == repr(chat)
    assert API_KEY not in repr(chat)


# -- its lifecycle ------------------------------------------------------------------------


async def test_close_is_idempotent_and_later_calls_send_nothing(fake: FakeTwoChat) -> None:
    """close() twice is fine; a call afterwards raises TwoChatError saying it is closed."""
    chat = TwoChatSession(API_KEY, base_url=fake.base_url)
    await chat.reserve("abc-123")
    await chat.close()
    await chat.close()
    assert chat.closed
    with pytest.raises(TwoChatError, match="closed") as info:
        await chat.reserve("abc-123")
    assert TwoChatError is type(info.value)
    assert len(fake.requests) == 1


def test_a_session_built_outside_a_running_loop_works_later() -> None:
    """A TwoChatSession constructed with no running loop is usable inside one later."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    chat = TwoChatSession(API_KEY, base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def use() -> Reservation:
        fake = FakeTwoChat(api_key=API_KEY)
        runner = web.AppRunner(fake.app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            async with chat:
                return await chat.reserve("abc-123")
        finally:
            await runner.cleanup()

    assert asyncio.run(use()).number == "+12135551234"
    assert chat.closed


# -- the request of each method -----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "url"),
    [
        (lambda c: c.regions("us"), "/open/numbers/regions?country=US"),
        (lambda c: c.cities("us"), "/open/numbers/cities?country=US"),
        # 2Chat's query key is "region" here, not "region_id".
        (lambda c: c.cities("US", region_id=123), "/open/numbers/cities?country=US&region=123"),
        (lambda c: c.did_types(), "/open/numbers/did-types"),
        (lambda c: c.groups("uS"), "/open/numbers/groups?country=US"),
        (
            lambda c: c.groups(
                "US", region_id=0, city_id=456, city_name_or_prefix="Los", did_type="local"
            ),
            "/open/numbers/groups?city_id=456&city_name_or_prefix=Los&country=US"
            "&did_type=local&region_id=0",
        ),
        (lambda c: c.available_numbers("abc-123"), "/open/numbers/available?group_id=abc-123"),
        (
            lambda c: c.available_numbers("abc-123", number_contains="555"),
            "/open/numbers/available?group_id=abc-123&number_contains=555",
        ),
        (lambda c: c.requirements("de"), "/open/numbers/requirements?country=DE"),
        (
            lambda c: c.requirements("DE", did_type=1),
            "/open/numbers/requirements?country=DE&did_type=1",
        ),
        (lambda c: c.reservations(), "/open/numbers/reservations"),
        (lambda c: c.info(), "/open/info"),
    ],
    ids=[
        *["regions", "cities", "cities-region", "did-types", "groups", "groups-all-filters"],
        *["available", "available-contains", "requirements", "requirements-did-type"],
        *["reservations", "info"],
    ],
)
async def test_each_get_sends_its_path_and_query_only(
    answering: BridgedAioresponses, call: Call, url: str
) -> None:
    """Each GET method sends one request to its path with exactly its query, and no body."""
    await run(call)
    method, sent, kwargs = only_request(answering)
    assert ("GET", URL(BASE + url)) == (method, sent)
    assert kwargs["data"] is None


@pytest.mark.parametrize(
    ("call", "url", "body"),
    [
        (lambda c: c.reserve("abc-123"), RESERVATIONS, b'{"group_id":"abc-123"}'),
        (
            lambda c: c.reserve("abc-123", "+12135551234"),
            RESERVATIONS,
            b'{"group_id":"abc-123","number":"+12135551234"}',
        ),
        (
            lambda c: c.purchase("abc-123"),
            PURCHASE,
            b'{"group_id":"abc-123"}',
        ),
        (
            lambda c: c.purchase("abc-123", "+12135551234"),
            PURCHASE,
            b'{"group_id":"abc-123","number":"+12135551234"}',
        ),
    ],
    ids=["reserve", "reserve-number", "purchase", "purchase-number"],
)
async def test_reserve_and_purchase_post_their_compact_json(
    answering: BridgedAioresponses, call: Call, url: str, body: bytes
) -> None:
    """reserve() and purchase() POST exactly their compact JSON, typed so, with no query."""
    await run(call)
    method, sent, kwargs = only_request(answering)
    assert ("POST", URL(url), body, "application/json") == (
        method,
        sent,
        kwargs["data"],
        kwargs["headers"]["Content-Type"],
    )
    assert (kwargs.get("params"), kwargs.get("json")) == (None, None)


@pytest.mark.parametrize(
    ("uuid", "raw_path"),
    [
        ("reservation-uuid-here", "/open/numbers/reservations/reservation-uuid-here"),
        ("x?y#z", "/open/numbers/reservations/x%3Fy%23z"),
        ("50%", "/open/numbers/reservations/50%25"),
        ("...", "/open/numbers/reservations/..."),
        ("résa", "/open/numbers/reservations/r%C3%A9sa"),
    ],
    ids=["plain", "query-fragment", "percent", "three-dots", "non-ascii"],
)
async def test_cancel_deletes_the_encoded_uuid_path(
    answering: BridgedAioresponses, uuid: str, raw_path: str
) -> None:
    """cancel_reservation() DELETEs /open/numbers/reservations/<uuid>, uuid percent-encoded."""
    assert await run(lambda c: c.cancel_reservation(uuid)) is None
    method, url, kwargs = only_request(answering)
    assert ("DELETE", raw_path, "", None) == (
        method,
        url.raw_path,
        url.raw_query_string,
        kwargs["data"],
    )


# -- each method against the fake -----------------------------------------------------------


async def test_regions(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """regions() returns the country's regions as Region records."""
    assert [Region(123, "California", "US"), Region(124, "New York", "US")] == await chat.regions(
        "us"
    )


async def test_cities(chat: TwoChatSession) -> None:
    """cities() returns the country's cities, or a region's, as City records."""
    assert [City(456, "Los Angeles", "US"), City(457, "San Francisco", "US")] == await chat.cities(
        "US", region_id=123
    )


async def test_did_types(chat: TwoChatSession) -> None:
    """did_types() returns every DID type as DidType records."""
    names = ["local", "mobile", "tollfree", "national", "global", "sharedcost"]
    expected = [DidType(n, name) for n, name in enumerate(names, 1)]
    assert expected == await chat.did_types()


async def test_groups(chat: TwoChatSession) -> None:
    """groups() returns Group records, prices as exact Decimals (filters: test_fake.py)."""
    groups = await chat.groups("US", region_id=123)
    assert ("abc-123", Decimal("3.50")) == (groups[0].id, groups[0].monthly_price)
    assert str(groups[0].monthly_price) == "3.50"


async def test_query_values_round_trip_over_the_wire(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A city name with spaces, '&' and non-ASCII letters reaches the server unchanged."""
    assert await chat.groups("BR", city_name_or_prefix="São Paulo & Co") == []
    assert fake.requests[0]["query"] == {"country": "BR", "city_name_or_prefix": "São Paulo & Co"}


async def test_available_numbers(chat: TwoChatSession) -> None:
    """available_numbers() returns the group's numbers as records (filter: test_fake.py)."""
    numbers = await chat.available_numbers("abc-123")
    assert AvailableNumber("did-12135551234", "+12135551234") == numbers[0]
    assert all(isinstance(number, AvailableNumber) for number in numbers)


async def test_requirements(chat: TwoChatSession) -> None:
    """requirements() returns free-form mappings, of one DID type when its id is given."""
    every = await chat.requirements("de")
    assert [r["id"] for r in every] == ["req-de-address", "req-de-identity", "req-de-mobile"]
    assert every[0]["fields"] == ["street", "city", "postal_code"]
    local = await chat.requirements("DE", did_type=1)
    assert [r["id"] for r in local] == ["req-de-address", "req-de-identity"]


async def test_reserve(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """reserve() returns the reservation of the group asked for, in aware UTC, as the fake holds."""
    fake.clock = ManualClock(T0)
    first = await chat.reserve("abc-123")
    chosen = await chat.reserve("abc-123", "+12135551240")
    assert Reservation(first.uuid, "+12135551234", T0, T0 + timedelta(hours=1), "abc-123") == (
        first
    )
    assert timezone.utc is first.created_at.tzinfo
    held = FakeReservation(chosen.uuid, "+12135551240", "abc-123", T0, T0 + timedelta(hours=1))
    assert {first.uuid, chosen.uuid} == set(fake.reservations)
    assert held == fake.reservations[chosen.uuid]


async def test_reservations_and_cancel(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """reservations() lists the active ones; cancel_reservation() takes a Reservation or a uuid."""
    first = await chat.reserve("abc-123", "+12135551234")
    second = await chat.reserve("abc-123", "+12135551235")
    listed = await chat.reservations()
    assert [(first.uuid, None), (second.uuid, None)] == [(r.uuid, r.group_id) for r in listed]
    await chat.cancel_reservation(first)
    await chat.cancel_reservation(second.uuid)
    assert await chat.reservations() == []
    assert fake.available("abc-123") == ABC_NUMBERS


async def test_purchase(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """purchase() returns a Purchase of the group and number asked for, 2Chat's answer kept."""
    chosen = await chat.purchase("abc-123", "+12135551234")
    random = await chat.purchase("nyc-212")
    assert (
        Purchase(
            "abc-123",
            "+12135551234",
            {
                "message": "Number +12135551234 purchased successfully",
                "data": {"number": "+12135551234", "group_id": "abc-123"},
            },
        )
        == chosen
    )
    assert (random.group_id, random.number) == ("nyc-212", None)
    assert fake.sold == {"+12135551234": "abc-123", "+12125552000": "nyc-212"}


async def test_info(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """info() returns the account, its limit and the requests it made, itself included."""
    fake.clock = ManualClock(T0)
    await chat.did_types()
    expected = AccountInfo(
        name="Fake Account (ACCfake)",
        uuid="ACCfake",
        on_trial=False,
        blocked=False,
        created_at=datetime(2022, 4, 21, 21, 55, 37, tzinfo=timezone.utc),
        expires_at=T0 + timedelta(days=365),
        requests_per_minute=80,
        api_request_count=2,
        max_api_request_count=500000,
        number_check_count=0,
        max_number_check_count=500000,
    )
    assert expected == await chat.info()


# -- bad arguments are refused before anything is sent ------------------------------------

BAD_CALLS: dict[str, tuple[Call, str]] = {
    "regions-country": (lambda c: c.regions("USA"), "country"),
    "cities-country": (lambda c: c.cities(1), "country"),
    "cities-region-id": (lambda c: c.cities("US", region_id="123"), "region_id"),
    "groups-country": (lambda c: c.groups("U1"), "country"),
    "groups-region-id": (lambda c: c.groups("US", region_id=-1), "region_id"),
    "groups-city-id": (lambda c: c.groups("US", city_id=False), "city_id"),
    "groups-city-name": (lambda c: c.groups("US", city_name_or_prefix=" "), "city_name_or_prefix"),
    "groups-did-type": (lambda c: c.groups("US", did_type="toll-free"), "did_type"),
    "available-group-id": (lambda c: c.available_numbers(""), "group_id"),
    "available-contains": (
        lambda c: c.available_numbers("abc-123", number_contains="+555"),
        "number_contains",
    ),
    "requirements-country": (lambda c: c.requirements("ÜS"), "country"),
    "requirements-did-type": (lambda c: c.requirements("DE", did_type="1"), "did_type"),
    "reserve-group-id": (lambda c: c.reserve("abc-123\ud800"), "group_id"),
    "reserve-number": (lambda c: c.reserve("abc-123", "12135551234"), "number"),
    "purchase-group-id": (lambda c: c.purchase("  "), "group_id"),
    "purchase-number": (lambda c: c.purchase("abc-123", "+1 213 555 1234"), "number"),
    "cancel-uuid": (lambda c: c.cancel_reservation("../purchase"), "uuid"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_a_bad_argument_is_refused_before_anything_is_sent(
    fake: FakeTwoChat, chat: TwoChatSession, case: str
) -> None:
    """Each method checks each of its arguments: ValueError naming it, no request at all."""
    call, name = BAD_CALLS[case]
    with pytest.raises(ValueError, match=name):
        await call(chat)
    assert fake.requests == []
