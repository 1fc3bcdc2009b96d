"""Retries, the shared rate limiter and the safety rules, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import API_KEY

from twochat_async import (
    APIConnectionError,
    APITimeoutError,
    InvalidResponseError,
    RateLimit,
    RateLimitError,
    ServerError,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async._limit import RateLimiter
from twochat_async.testing import FakeGroup, FakeTwoChat, Reply

RESERVE = "POST /open/numbers/reservations"
REGIONS = "GET /open/numbers/regions"
CANCEL = "DELETE /open/numbers/reservations/{}"


def session(fake: FakeTwoChat, **options: Any) -> TwoChatSession:
    """A session pointed at ``fake`` with the test's options."""
    options.setdefault("timeout", 5)
    return TwoChatSession(API_KEY, base_url=fake.base_url, **options)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- GET and DELETE: retried on passing failures ---------------------------------------


async def test_get_recovers_from_503_503_200(fake: FakeTwoChat) -> None:
    """A GET answered 503, 503, then 200 returns the data after two retries."""
    fake.script(Reply(503), Reply(503))
    async with session(fake) as chat:
        regions = await chat.regions("US")
    assert [r.name for r in regions] == ["California", "New York"]
    assert fake.calls[REGIONS] == 3


@pytest.mark.parametrize("status", [409, 410, 429, 486, 500, 502, 503, 504])
async def test_get_retries_each_passing_status(fake: FakeTwoChat, status: int) -> None:
    """Every status 2Chat asks to retry is retried for a GET."""
    fake.script(Reply(status, headers={"Retry-After": "0"}))
    async with session(fake) as chat:
        await chat.regions("US")
    assert fake.calls[REGIONS] == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_get_does_not_retry_client_errors(fake: FakeTwoChat, status: int) -> None:
    """A 4xx that retrying cannot fix is raised after one request."""
    fake.script(Reply(status))
    async with session(fake) as chat:
        with pytest.raises(Exception, match=f"HTTP {status}"):
            await chat.regions("US")
    assert fake.calls[REGIONS] == 1


async def test_get_gives_up_after_max_retries(fake: FakeTwoChat) -> None:
    """With max_retries=2, three 503s raise ServerError after three requests."""
    fake.script(Reply(503), Reply(503), Reply(503), Reply(503))
    async with session(fake, max_retries=2) as chat:
        with pytest.raises(ServerError) as caught:
            await chat.regions("US")
    assert caught.value.status == 503
    assert fake.calls[REGIONS] == 3


async def test_max_retries_zero_turns_retries_off(fake: FakeTwoChat) -> None:
    """max_retries=0 sends a failing GET exactly once."""
    fake.script(Reply(503))
    async with session(fake, max_retries=0) as chat:
        with pytest.raises(ServerError):
            await chat.regions("US")
    assert fake.calls[REGIONS] == 1


async def test_get_retries_after_a_timeout(fake: FakeTwoChat) -> None:
    """A GET that got no answer in time is sent again and succeeds."""
    fake.script(Reply(fault="hang"))
    async with session(fake, timeout=0.3) as chat:
        regions = await chat.regions("US")
    assert len(regions) == 2
    assert fake.calls[REGIONS] == 2


async def test_get_retries_after_a_dropped_connection(fake: FakeTwoChat) -> None:
    """A GET whose connection dropped is sent again and succeeds."""
    fake.script(Reply(fault="drop"))
    async with session(fake) as chat:
        await chat.regions("US")
    assert fake.calls[REGIONS] == 2


async def test_delete_is_retried(fake: FakeTwoChat) -> None:
    """cancel_reservation (a DELETE, idempotent) recovers from a 502."""
    async with session(fake) as chat:
        reservation = await chat.reserve("abc-123")
        fake.script(Reply(502))
        await chat.cancel_reservation(reservation)
    assert fake.calls[CANCEL.format(reservation.uuid)] == 2
    assert fake.active_reservations() == []


# -- POST: re-sent only when 2Chat surely did not act ------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 409, 486])
async def test_post_is_never_resent_after_an_error_status(fake: FakeTwoChat, status: int) -> None:
    """A reserve answered with a 5xx (or another passing status) is sent once and raises."""
    fake.script(Reply(status, headers={"Retry-After": "0"}))
    async with session(fake) as chat:
        with pytest.raises(Exception, match=f"HTTP {status}"):
            await chat.reserve("abc-123")
    assert fake.calls[RESERVE] == 1


async def test_post_dropped_after_handling_is_sent_once(fake: FakeTwoChat) -> None:
    """A reserve whose connection drops after 2Chat acted is not re-sent: outcome unknown."""
    fake.script(Reply(fault="drop", handle=True))
    async with session(fake) as chat:
        with pytest.raises(APIConnectionError) as caught:
            await chat.reserve("abc-123")
        # The user is told to look: the reservation did happen.
        assert len(await chat.reservations()) == 1
    assert caught.value.request_sent is True
    assert fake.calls[RESERVE] == 1


async def test_post_timeout_is_sent_once(fake: FakeTwoChat) -> None:
    """A purchase that got no answer in time is not re-sent and says the request was sent."""
    fake.script(Reply(fault="hang"))
    async with session(fake, timeout=0.3) as chat:
        with pytest.raises(APITimeoutError) as caught:
            await chat.purchase("abc-123", "+12135551234")
    assert caught.value.request_sent is True
    assert fake.calls["POST /open/numbers/purchase"] == 1


async def test_post_truncated_answer_is_sent_once(fake: FakeTwoChat) -> None:
    """A purchase whose answer was cut short is not re-sent (it may have bought)."""
    fake.script(Reply(201, json={"success": True, "data": {"n": "x" * 100}}, fault="truncate"))
    async with session(fake) as chat:
        with pytest.raises(APIConnectionError) as caught:
            await chat.purchase("abc-123")
    assert caught.value.request_sent is True
    assert fake.calls["POST /open/numbers/purchase"] == 1


async def test_post_429_then_201_reserves_once(fake: FakeTwoChat) -> None:
    """A reserve answered 429 then 201 succeeds with exactly one reservation made."""
    fake.script(Reply(429, headers={"Retry-After": "0"}))
    async with session(fake) as chat:
        reservation = await chat.reserve("abc-123")
    assert fake.calls[RESERVE] == 2
    assert [r.uuid for r in fake.active_reservations()] == [reservation.uuid]


async def test_post_retries_a_refused_connection() -> None:
    """A reserve that cannot connect (never sent) is tried again, max_retries times."""
    attempts: list[str] = []

    async def on_connect(*_: Any) -> None:
        attempts.append("connect")

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(on_connect)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        chat = TwoChatSession(
            API_KEY, base_url=f"http://127.0.0.1:{free_port()}", http_session=http, max_retries=2
        )
        async with chat:
            with pytest.raises(APIConnectionError) as caught:
                await chat.reserve("abc-123")
    assert caught.value.request_sent is False
    assert len(attempts) == 3


async def test_post_refused_then_listening_succeeds() -> None:
    """A reserve retried after a refused connection reaches the server once it listens."""
    port = free_port()
    fake = FakeTwoChat(API_KEY, port=port)
    async with TwoChatSession(API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=8) as chat:
        call = asyncio.create_task(chat.reserve("abc-123"))
        await asyncio.sleep(0.05)  # the first attempt is refused by now
        async with fake:
            reservation = await call
    assert reservation.group_id == "abc-123"
    assert fake.calls[RESERVE] == 1


# -- Retry-After ------------------------------------------------------------------------


async def test_retry_after_is_waited(fake: FakeTwoChat) -> None:
    """A 503 with Retry-After: 1 is retried no sooner than a second later."""
    fake.script(Reply(503, headers={"Retry-After": "1"}))
    async with session(fake) as chat:
        started = time.monotonic()
        await chat.regions("US")
    assert time.monotonic() - started >= 0.9
    assert fake.calls[REGIONS] == 2


async def test_long_retry_after_is_raised_at_once(fake: FakeTwoChat) -> None:
    """A 429 asking to wait 120 s is raised at once, carrying the server's value."""
    fake.script(Reply(429, headers={"Retry-After": "120"}))
    async with session(fake) as chat:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await chat.reserve("abc-123")
    assert time.monotonic() - started < 5
    assert caught.value.retry_after == 120.0
    assert fake.calls[RESERVE] == 1


async def test_final_rate_limit_error_carries_retry_after(fake: FakeTwoChat) -> None:
    """When every try gets 429, the RateLimitError raised carries retry_after."""
    fake.script(*[Reply(429, headers={"Retry-After": "0"})] * 3)
    async with session(fake, max_retries=2) as chat:
        with pytest.raises(RateLimitError) as caught:
            await chat.reserve("abc-123")
    assert caught.value.retry_after == 0.0
    assert fake.calls[RESERVE] == 3


async def test_retries_are_logged_at_debug_without_the_key(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry is one DEBUG line on logger twochat_async, and no line holds the key."""
    caplog.set_level(logging.DEBUG)
    fake.script(
        Reply(503, json={"success": False, "error": True, "error_message": f"bad {API_KEY}"})
    )
    async with session(fake) as chat:
        await chat.regions("US")
    retries = [r for r in caplog.records if r.name == "twochat_async"]
    assert [r.levelno for r in retries] == [logging.DEBUG]
    assert "Retrying GET /open/numbers/regions" in retries[0].getMessage()
    assert API_KEY not in caplog.text


async def test_retry_after_waits_are_jittered_apart() -> None:
    """20 calls told "Retry-After: 1" together each wait at least 1 s, but not the same time."""
    first_seen: dict[str, float] = {}
    waits: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        group, now = request.query["group_id"], time.monotonic()
        if group not in first_seen:
            first_seen[group] = now
            body = {"success": False, "error": True, "error_message": "slow down"}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        waits.append(now - first_seen[group])
        return web.json_response({"success": True, "data": {"numbers": []}})

    app = web.Application()
    app.router.add_get("/open/numbers/available", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with TwoChatSession(API_KEY, base_url=base_url, max_retries=1) as chat:
            await asyncio.gather(*(chat.available_numbers(f"g{n}") for n in range(20)))
    finally:
        await runner.cleanup()
    assert len(waits) == 20
    assert min(waits) >= 0.95
    # Up to 0.2 s of jitter at 1 s: 20 draws all within 50 ms has odds below 1e-10.
    assert max(waits) - min(waits) >= 0.05


# -- The rate limiter -------------------------------------------------------------------


async def test_concurrent_reserves_within_budget_meet_no_429() -> None:
    """500 concurrent reserves at the fake's budget: no 429 at all, >= 90 % of the rate."""
    numbers = [f"+1213{n:07d}" for n in range(500)]
    fake = FakeTwoChat(API_KEY, groups=[FakeGroup(id="big", country="US", numbers=numbers)])
    per_second = 200
    fake.set_budget(per_second // 10, per=0.1)  # 200 a second, bursts of 20 at most
    async with fake, session(fake, rate_limit=per_second * 60) as chat:
        started = time.monotonic()
        results = await asyncio.gather(*(chat.reserve("big") for _ in numbers))
        elapsed = time.monotonic() - started
    assert len({r.uuid for r in results}) == 500
    assert fake.rate_limited == 0
    assert 500 / elapsed >= 0.9 * per_second


async def test_without_the_limiter_the_same_load_trips_the_budget() -> None:
    """The control for the test above: without rate_limit the fake does answer 429s."""
    numbers = [f"+1213{n:07d}" for n in range(100)]
    fake = FakeTwoChat(API_KEY, groups=[FakeGroup(id="big", country="US", numbers=numbers)])
    fake.set_budget(25, per=0.1)
    async with fake, session(fake, max_retries=0) as chat:
        results = await asyncio.gather(
            *(chat.reserve("big") for _ in numbers), return_exceptions=True
        )
    assert fake.rate_limited > 0
    assert any(isinstance(r, RateLimitError) for r in results)


async def test_rate_limit_paces_requests_evenly(fake: FakeTwoChat) -> None:
    """rate_limit=600 (one every 0.1 s): 6 calls span at least 0.5 s, in order."""
    async with session(fake, rate_limit=600) as chat:
        started = time.monotonic()
        await asyncio.gather(*(chat.did_types() for _ in range(6)))
    assert time.monotonic() - started >= 0.45


async def test_rate_limit_burst_lets_the_first_calls_out_at_once(fake: FakeTwoChat) -> None:
    """RateLimit(60, burst=5): five calls go out at once although the pace is 1/s."""
    async with session(fake, rate_limit=RateLimit(60, burst=5)) as chat:
        started = time.monotonic()
        await asyncio.gather(*(chat.did_types() for _ in range(5)))
    assert time.monotonic() - started < 0.9


async def test_account_rate_limit_reads_info_once(fake: FakeTwoChat) -> None:
    """rate_limit='account' asks GET /open/info once, then paces at its limit."""
    fake.requests_per_minute = 600
    async with session(fake, rate_limit="account") as chat:
        started = time.monotonic()
        await asyncio.gather(*(chat.did_types() for _ in range(6)))
        elapsed = time.monotonic() - started
    assert fake.calls["GET /open/info"] == 1
    assert fake.calls["GET /open/numbers/did-types"] == 6
    assert elapsed >= 0.45


async def test_waiting_for_a_slot_is_cancellable(fake: FakeTwoChat) -> None:
    """A call waiting for the limiter can be cancelled, and is never sent."""
    async with session(fake, rate_limit=1) as chat:
        await chat.did_types()  # takes the only slot of the minute
        waiting = asyncio.create_task(chat.did_types())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert fake.calls["GET /open/numbers/did-types"] == 1


async def test_waiting_for_a_slot_counts_against_no_timeout(fake: FakeTwoChat) -> None:
    """A call that waits 0.5 s for its slot still succeeds with timeout=0.3."""
    async with session(fake, rate_limit=120, timeout=0.3) as chat:
        await asyncio.gather(chat.did_types(), chat.did_types())
    assert fake.calls["GET /open/numbers/did-types"] == 2


async def test_a_429_slows_down_every_task(fake: FakeTwoChat) -> None:
    """After one task's 429 (Retry-After: 1), another task's call waits out the pause too."""
    fake.script(Reply(429, headers={"Retry-After": "1"}))
    async with session(fake, rate_limit=6000, max_retries=0) as chat:
        with pytest.raises(RateLimitError):
            await chat.did_types()
        started = time.monotonic()
        await chat.regions("US")  # another call, as from another task
    assert time.monotonic() - started >= 0.9


def test_rate_limit_arguments_are_checked() -> None:
    """Nonsense rate limits and retry counts raise ValueError at construction."""
    for bad in (0, -5, float("nan"), "fast", True):
        with pytest.raises(ValueError, match="per_minute"):
            TwoChatSession(API_KEY, rate_limit=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="burst"):
        RateLimit(60, burst=0)
    for bad_retries in (-1, 1.5, None):
        with pytest.raises(ValueError, match="max_retries"):
            TwoChatSession(API_KEY, max_retries=bad_retries)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "per_minute",
    [1e-300, 5e-324, 0.01, 10**400, -(10**400)],
    ids=["1e-300", "5e-324", "0.01", "10**400", "-10**400"],
)
def test_rate_limit_per_minute_must_be_finite_and_at_least_one_an_hour(per_minute: Any) -> None:
    """per_minute below 1/60 or past a float's range: ValueError, never OverflowError."""
    with pytest.raises(ValueError, match=r"^per_minute must be a finite number of at least 1/60"):
        RateLimit(per_minute)
    with pytest.raises(ValueError, match=r"^per_minute must be a finite number of at least 1/60"):
        TwoChatSession(API_KEY, rate_limit=per_minute)
    assert RateLimit(1 / 60).per_minute == 1 / 60


@pytest.mark.parametrize("burst", [1_000_001, 10**400], ids=["1_000_001", "10**400"])
def test_rate_limit_burst_must_be_an_int_up_to_a_million(burst: Any) -> None:
    """burst past 1,000,000 (or past a float's range) is a ValueError, never OverflowError."""
    with pytest.raises(ValueError, match=r"^burst must be an int from 1 to 1,000,000"):
        RateLimit(60, burst=burst)
    assert RateLimit(60, burst=1_000_000).burst == 1_000_000


@pytest.mark.parametrize("max_retries", [101, 10**400], ids=["101", "10**400"])
def test_max_retries_is_capped_at_100(max_retries: int) -> None:
    """More than 100 retries is refused (the backoff's 2**attempt would overflow a float)."""
    with pytest.raises(ValueError, match=r"^max_retries must be an int from 0 to 100"):
        TwoChatSession(API_KEY, max_retries=max_retries)
    TwoChatSession(API_KEY, max_retries=100)


# -- Safety -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url", ["http://api.p.2chat.io", "http://10.0.0.5:8080", "http://example.com/"]
)
def test_plain_http_to_another_host_is_refused(base_url: str) -> None:
    """A plain-http base_url off this machine is refused: the key would travel in clear."""
    with pytest.raises(ValueError, match="allow_insecure_http") as caught:
        TwoChatSession(API_KEY, base_url=base_url)
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8080", "http://127.8.9.10", "http://localhost:1", "http://[::1]:9"],
)
def test_plain_http_to_loopback_is_allowed(base_url: str) -> None:
    """Plain http to this machine (tests, local proxies) needs no opt-in."""
    assert TwoChatSession(API_KEY, base_url=base_url).base_url == base_url.rstrip("/")


@pytest.mark.parametrize("flag", ["no", 0, None], ids=repr)
def test_allow_insecure_http_must_be_a_bool(flag: Any) -> None:
    """A non-bool allow_insecure_http is refused, even a falsy one: "no" would opt in."""
    with pytest.raises(ValueError, match=r"^allow_insecure_http must be True or False"):
        TwoChatSession(API_KEY, base_url="http://127.0.0.1:1", allow_insecure_http=flag)


def test_allow_insecure_http_opts_in() -> None:
    """allow_insecure_http=True accepts plain http to another host."""
    chat = TwoChatSession(API_KEY, base_url="http://example.com", allow_insecure_http=True)
    assert chat.base_url == "http://example.com"


async def test_cancelled_calls_leak_no_connection() -> None:
    """1,000 calls cancelled mid-request leave the pool whole: the session still works."""
    fake = FakeTwoChat(API_KEY, latency=0.05)
    async with fake, session(fake, max_connections=5, timeout=3) as chat:
        for _ in range(4):
            calls = [asyncio.create_task(chat.did_types()) for _ in range(250)]
            await asyncio.sleep(0.02)  # some are on the wire, the rest wait for a connection
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            assert all(call.cancelled() for call in calls)
        # With a leaked connection, 5 parallel calls on a 5-connection pool would time out.
        results = await asyncio.gather(*(chat.did_types() for _ in range(5)))
    assert all(len(types) == 6 for types in results)


async def test_the_key_is_in_no_log_line(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures, retries and a failed hold release log nothing that holds the key."""
    caplog.set_level(logging.DEBUG)
    async with session(fake, timeout=0.3) as chat:
        fake.script(Reply(503), Reply(fault="drop"))
        await chat.regions("US")
        fake.script(Reply(fault="hang"))
        with pytest.raises(APITimeoutError):
            await chat.reserve("abc-123")
        with pytest.raises(UnprocessableEntityError):
            await chat.reserve("abc-123", number="+19999999999")
        async with chat.hold("abc-123"):
            fake.script(*[Reply(500)] * 3)
    assert "Could not cancel" in caplog.text
    assert API_KEY not in caplog.text


@pytest.fixture
async def redirect_target() -> AsyncIterator[SimpleNamespace]:
    """A second server, on another port, that records the headers it receives."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"success": True, "data": {"regions": []}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", free_port())
    await site.start()
    try:
        yield SimpleNamespace(url=site.name, seen=seen)
    finally:
        await runner.cleanup()


async def test_redirect_never_carries_the_key_elsewhere(
    fake: FakeTwoChat, redirect_target: SimpleNamespace
) -> None:
    """A 307 to another origin is an error, and that origin never sees X-User-API-Key."""
    location = f"{redirect_target.url}/open/numbers/regions?country=US"
    fake.script(Reply(307, headers={"Location": location}))
    async with session(fake) as chat:
        with pytest.raises(Exception, match="redirect") as caught:
            await chat.regions("US")
    assert getattr(caught.value, "status", None) == 307
    assert redirect_target.seen == []


async def test_a_stalled_event_loop_releases_no_burst() -> None:
    """After the loop stalls, queued callers still go out at the pace, not all at once."""
    limiter = RateLimiter(RateLimit(600))  # one every 0.1 s
    loop = asyncio.get_running_loop()
    granted: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        granted.append(loop.time())

    calls = [asyncio.create_task(take()) for _ in range(8)]
    await asyncio.sleep(0.15)  # two slots handed out by now
    time.sleep(0.5)  # noqa: ASYNC251 - the stall under test: the loop is blocked
    await asyncio.gather(*calls)
    after_stall = granted[2:]
    gaps = [b - a for a, b in itertools.pairwise(after_stall)]
    # At most one back-to-back pair (the one token of lateness kept), then the pace.
    assert sum(gap < 0.05 for gap in gaps) <= 1
    assert after_stall[-1] - after_stall[0] >= 0.4


async def test_account_rate_limit_fetch_failure_is_raised_then_retried(fake: FakeTwoChat) -> None:
    """If GET /open/info fails, calls raise its error, and the next call asks again."""
    fake.requests_per_minute = 6000
    async with session(fake, rate_limit="account", max_retries=0) as chat:
        fake.script(Reply(500))
        with pytest.raises(ServerError):
            await chat.did_types()
        assert len(await chat.did_types()) == 6
    assert fake.calls["GET /open/info"] == 2
    assert fake.calls["GET /open/numbers/did-types"] == 1


async def test_account_rate_limit_survives_a_cancelled_caller() -> None:
    """A caller cancelled while the limit is fetched does not fail the others waiting."""
    fake = FakeTwoChat(API_KEY, latency=0.2, requests_per_minute=6000)
    async with fake, session(fake, rate_limit="account") as chat:
        first = asyncio.create_task(chat.did_types())
        second = asyncio.create_task(chat.did_types())
        await asyncio.sleep(0.05)  # both wait on the one GET /open/info
        first.cancel()
        assert len(await second) == 6
        with pytest.raises(asyncio.CancelledError):
            await first
    assert fake.calls["GET /open/info"] == 1


async def test_account_rate_limit_fetch_is_retried_like_any_get(fake: FakeTwoChat) -> None:
    """A 500 from GET /open/info is retried, and reserve() then succeeds, sent once."""
    fake.requests_per_minute = 6000
    fake.script(Reply(500))
    async with session(fake, rate_limit="account", max_retries=2) as chat:
        reservation = await chat.reserve("abc-123")
    assert reservation.group_id == "abc-123"
    assert fake.calls["GET /open/info"] == 2
    assert fake.calls[RESERVE] == 1


@pytest.mark.parametrize(
    "rate",
    [1e-300, 5e-324, 0.5, 10**400],
    ids=["1e-300", "5e-324", "0.5", "10**400"],
)
async def test_account_rate_limit_below_one_or_too_large_is_an_invalid_response(
    fake: FakeTwoChat, rate: Any
) -> None:
    """requests_per_minute below 1 or past a float's range: every call raises, none hangs."""
    fake.requests_per_minute = rate
    async with session(fake, rate_limit="account") as chat:
        for _ in range(2):
            with pytest.raises(InvalidResponseError, match=r"limits\.requests_per_minute"):
                await asyncio.wait_for(chat.did_types(), timeout=5)
    assert fake.calls["GET /open/info"] == 2
    assert fake.calls["GET /open/numbers/did-types"] == 0
