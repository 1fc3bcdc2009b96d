"""TwoChatSession end to end, over real HTTP on 127.0.0.1 against FakeTwoChat."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import API_KEY

from twochat_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidResponseError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    Reservation,
    ServerError,
    TwoChatError,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async._transport import MAX_RESPONSE_BYTES
from twochat_async.testing import FakeGroup, FakeReservation, FakeTwoChat, Reply

FIXED_NOW = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


def details(**changes: Any) -> dict[str, Any]:
    """Return a valid ``reservation_details`` object, with ``changes`` applied."""
    return {
        "uuid": "reservation-uuid-here",
        "number": "+12135551234",
        "created_at": "2024-01-15T10:30:00Z",
        "expires_at": "2024-01-15T11:30:00Z",
        **changes,
    }


def created(reservation_details: dict[str, Any], **extra: Any) -> Reply:
    """Return a 201 reply carrying ``reservation_details`` in 2Chat's success envelope."""
    body = {"success": True, "data": {"reservation_details": reservation_details}, **extra}
    return Reply(status=201, json=body)


def failure(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """Return an error reply in 2Chat's error envelope."""
    body = {"success": False, "error": True, "error_message": message}
    return Reply(status=status, json=body, headers=headers or {})


EXPECTED_DOC_RESERVATION = Reservation(
    uuid="reservation-uuid-here",
    number="+12135551234",
    created_at=datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc),
    expires_at=datetime(2024, 1, 15, 11, 30, tzinfo=timezone.utc),
    group_id="abc-123",
)


def assert_key_hidden(exc: BaseException) -> None:
    """Fail if the API key shows in the text of ``exc``."""
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc)


@asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on 127.0.0.1 and yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def free_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- reserving against the fake ----------------------------------------------------------


async def test_reserve_random_number_returns_utc_reservation_one_hour_long() -> None:
    """reserve(group) returns the fake's first available number, UTC times, group_id set."""
    fake = FakeTwoChat(api_key=API_KEY, clock=lambda: FIXED_NOW)
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        reservation = await chat.reserve("abc-123")
    expected = Reservation(
        uuid=reservation.uuid,
        number="+12135551234",
        created_at=FIXED_NOW,
        expires_at=FIXED_NOW + timedelta(hours=1),
        group_id="abc-123",
    )
    assert expected == reservation
    assert timezone.utc == reservation.created_at.tzinfo
    assert timezone.utc == reservation.expires_at.tzinfo
    assert [reservation.uuid] == list(fake.reservations)


async def test_reserve_specific_number_is_recorded_by_the_fake() -> None:
    """reserve(group, number) holds exactly that number in the fake's state."""
    fake = FakeTwoChat(api_key=API_KEY, clock=lambda: FIXED_NOW)
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        reservation = await chat.reserve("abc-123", "+12135551240")
        assert "+12135551240" not in fake.available("abc-123")
    assert reservation.number == "+12135551240"
    assert reservation.group_id == "abc-123"
    expected = FakeReservation(
        uuid=reservation.uuid,
        number="+12135551240",
        group_id="abc-123",
        created_at=FIXED_NOW,
        expires_at=FIXED_NOW + timedelta(hours=1),
    )
    assert {reservation.uuid: expected} == fake.reservations


async def test_reserve_sends_group_and_number_as_json(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """The request is a POST of a JSON body with the key in X-User-API-Key."""
    await chat.reserve("abc-123", "+12135551234")
    (request,) = fake.requests
    assert (request["method"], request["path"]) == ("POST", "/open/numbers/reservations")
    assert json.loads(request["body"]) == {"group_id": "abc-123", "number": "+12135551234"}
    assert request["headers"]["X-User-API-Key"] == API_KEY
    assert request["headers"]["Content-Type"] == "application/json"


async def test_reserving_an_already_reserved_number_is_unprocessable(
    chat: TwoChatSession,
) -> None:
    """A second reservation of the same number raises UnprocessableEntityError."""
    await chat.reserve("abc-123", "+12135551234")
    with pytest.raises(UnprocessableEntityError) as info:
        await chat.reserve("abc-123", "+12135551234")
    assert info.value.status == 422
    assert info.value.message == "Number +12135551234 is not available"
    assert_key_hidden(info.value)


async def test_unknown_group_is_not_found(chat: TwoChatSession) -> None:
    """An unknown group raises NotFoundError carrying the fake's status and message."""
    with pytest.raises(NotFoundError) as info:
        await chat.reserve("no-such-group")
    assert info.value.status == 404
    assert info.value.message == "Number group no-such-group not found"
    assert str(info.value) == (
        "HTTP 404 (POST /open/numbers/reservations): Number group no-such-group not found"
    )
    assert_key_hidden(info.value)


async def test_number_outside_the_group_is_unprocessable(chat: TwoChatSession) -> None:
    """A number that is not in the group raises UnprocessableEntityError (422)."""
    with pytest.raises(UnprocessableEntityError) as info:
        await chat.reserve("abc-123", "+18005550100")
    assert info.value.status == 422
    assert info.value.message == "Number +18005550100 does not belong to group abc-123"
    assert_key_hidden(info.value)


async def test_wrong_api_key_is_an_authentication_error(fake: FakeTwoChat) -> None:
    """A key the fake does not accept raises AuthenticationError (401)."""
    async with TwoChatSession("wrong-key", base_url=fake.base_url, timeout=5) as chat:
        with pytest.raises(AuthenticationError) as info:
            await chat.reserve("abc-123")
    assert info.value.status == 401
    assert info.value.message == "Invalid or missing API key"
    assert_key_hidden(info.value)
    assert fake.active_reservations() == []


# -- error statuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (406, APIError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
async def test_error_status_maps_to_its_class(
    fake: FakeTwoChat, chat: TwoChatSession, status: int, error: type[APIError]
) -> None:
    """Each error status raises its own APIError class with 2Chat's status and message."""
    fake.script(failure(status, f"boom {status}"))
    with pytest.raises(APIError) as info:
        await chat.reserve("abc-123")
    assert error is type(info.value)
    assert status == info.value.status
    assert f"boom {status}" == info.value.message
    assert f"HTTP {status} (POST /open/numbers/reservations): boom {status}" == str(info.value)
    assert {"success": False, "error": True, "error_message": f"boom {status}"} == info.value.body
    assert_key_hidden(info.value)


async def test_rate_limit_carries_retry_after(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """A 429 with Retry-After gives RateLimitError.retry_after in seconds."""
    fake.script(failure(429, "slow down", headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitError) as info:
        await chat.reserve("abc-123")
    assert info.value.retry_after == 7.0
    assert info.value.message == "slow down"
    assert_key_hidden(info.value)


async def test_rate_limit_without_retry_after_has_none(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A 429 without Retry-After gives retry_after None."""
    fake.script(failure(429, "slow down"))
    with pytest.raises(RateLimitError) as info:
        await chat.reserve("abc-123")
    assert info.value.retry_after is None


async def test_html_gateway_error_is_a_server_error(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A 502 with an HTML body raises ServerError quoting the start of the body."""
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    fake.script(Reply(status=502, body=html, content_type="text/html"))
    with pytest.raises(ServerError) as info:
        await chat.reserve("abc-123")
    assert info.value.status == 502
    assert html.decode() == info.value.body
    assert "502 Bad Gateway" in info.value.message
    assert_key_hidden(info.value)


# -- decoding success answers ------------------------------------------------------------


async def test_success_that_is_not_json_is_an_invalid_response(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A 201 whose body is not JSON raises InvalidResponseError with status 201."""
    fake.script(Reply(status=201, body=b"<html>created</html>", content_type="text/html"))
    with pytest.raises(InvalidResponseError) as info:
        await chat.reserve("abc-123")
    assert info.value.status == 201
    assert info.value.body == "<html>created</html>"
    assert_key_hidden(info.value)


async def test_success_missing_expires_at_is_an_invalid_response(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A 201 whose reservation_details lacks expires_at raises InvalidResponseError."""
    incomplete = details()
    del incomplete["expires_at"]
    fake.script(created(incomplete))
    with pytest.raises(InvalidResponseError) as info:
        await chat.reserve("abc-123")
    assert info.value.status == 201
    assert "expires_at" in str(info.value)
    assert_key_hidden(info.value)


async def test_unknown_extra_fields_are_ignored(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Unknown fields at every level of a success answer do not break decoding."""
    body = {
        "success": True,
        "message": "ok",
        "data": {"reservation_details": details(price="3.50", tags=["x"]), "extra": {"a": 1}},
    }
    fake.script(Reply(status=201, json=body))
    assert await chat.reserve("abc-123") == EXPECTED_DOC_RESERVATION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)),
        ("2024-01-15T10:30:00.5Z", datetime(2024, 1, 15, 10, 30, 0, 500000, timezone.utc)),
        (
            "2024-01-15T10:30:00.123456789Z",
            datetime(2024, 1, 15, 10, 30, 0, 123456, timezone.utc),
        ),
        ("2024-01-15T10:30:00+00:00", datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)),
        (
            "2024-01-15T10:30:00.250+00:00",
            datetime(2024, 1, 15, 10, 30, 0, 250000, timezone.utc),
        ),
        ("2024-01-15T12:30:00+02:00", datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)),
    ],
)
async def test_timestamp_variants_decode_to_utc(
    fake: FakeTwoChat, chat: TwoChatSession, text: str, expected: datetime
) -> None:
    """Fractional seconds and +00:00 offsets decode to aware UTC datetimes."""
    fake.script(created(details(created_at=text)))
    reservation = await chat.reserve("abc-123")
    assert expected == reservation.created_at
    assert timezone.utc == reservation.created_at.tzinfo


# -- redirects and transport failures ----------------------------------------------------


async def test_redirect_is_not_followed(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """A 302 raises APIError and the key never reaches the Location host."""
    seen: list[str] = []

    async def probe(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.json_response({"success": True}, status=201)

    async with serve(probe) as other:
        location = other + "/open/numbers/reservations"
        fake.script(Reply(status=302, headers={"Location": location}))
        with pytest.raises(APIError) as info:
            await chat.reserve("abc-123")
    assert APIError is type(info.value)
    assert info.value.status == 302
    assert location in info.value.message
    assert seen == []
    assert_key_hidden(info.value)


async def test_connection_refused_is_a_connection_error_not_sent() -> None:
    """A refused connection raises APIConnectionError with request_sent False."""
    base_url = f"http://127.0.0.1:{free_port()}"
    async with TwoChatSession(API_KEY, base_url=base_url, timeout=5) as chat:
        with pytest.raises(APIConnectionError) as info:
            await chat.reserve("abc-123")
    assert APIConnectionError is type(info.value)
    assert info.value.request_sent is False
    # Only a clean copy of the OS error is chained: aiohttp's own exceptions carry the key.
    assert ConnectionRefusedError is type(info.value.__cause__)
    assert info.value.__cause__.__traceback__ is None
    assert "ClientConnectorError" in str(info.value)
    assert_key_hidden(info.value)


@pytest.mark.parametrize("reply", [Reply(fault="hang"), Reply(delay=5.0)])
async def test_slow_server_times_out_as_sent(fake: FakeTwoChat, reply: Reply) -> None:
    """A server slower than the timeout raises APITimeoutError with request_sent True."""
    fake.script(reply)
    started = time.monotonic()
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=0.3) as chat:
        with pytest.raises(APITimeoutError) as info:
            await chat.reserve("abc-123")
    # Loose bound: the point is that the timeout, not the server, ended the call.
    assert time.monotonic() - started < 4.0
    assert info.value.request_sent is True
    assert fake.calls["POST /open/numbers/reservations"] == 1
    assert_key_hidden(info.value)


async def test_dropped_connection_is_a_connection_error_sent(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A connection closed without an answer raises APIConnectionError, request_sent True."""
    fake.script(Reply(fault="drop"))
    with pytest.raises(APIConnectionError) as info:
        await chat.reserve("abc-123")
    assert APIConnectionError is type(info.value)
    assert info.value.request_sent is True
    # A POST is never re-sent: a second reservation could be made behind the caller's back.
    assert fake.calls["POST /open/numbers/reservations"] == 1
    assert_key_hidden(info.value)


async def test_truncated_body_is_a_connection_error(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A body cut short raises APIConnectionError with request_sent True."""
    fake.script(
        Reply(
            status=201,
            json={"success": True, "data": {"reservation_details": details()}},
            fault="truncate",
        )
    )
    with pytest.raises(APIConnectionError) as info:
        await chat.reserve("abc-123")
    assert APIConnectionError is type(info.value)
    assert info.value.request_sent is True
    assert_key_hidden(info.value)


# -- the response size cap ---------------------------------------------------------------


def padded_success(size: int) -> bytes:
    """Return a valid 201 reservation body of exactly ``size`` bytes."""
    head = b'{"success": true, "padding": "'
    tail = b'", "data": ' + json.dumps({"reservation_details": details()}).encode() + b"}"
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_body_at_the_cap_is_read(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """A body of exactly MAX_RESPONSE_BYTES is read and decoded."""
    fake.script(Reply(status=201, body=padded_success(MAX_RESPONSE_BYTES)))
    assert await chat.reserve("abc-123") == EXPECTED_DOC_RESERVATION


async def test_body_over_the_cap_is_an_invalid_response(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A body with a Content-Length over the cap raises InvalidResponseError."""
    fake.script(Reply(status=201, body=padded_success(MAX_RESPONSE_BYTES + 1)))
    with pytest.raises(InvalidResponseError) as info:
        await chat.reserve("abc-123")
    assert info.value.status == 201
    assert "cap" in str(info.value)
    assert_key_hidden(info.value)


async def test_chunked_body_over_the_cap_is_an_invalid_response() -> None:
    """A chunked body without Content-Length that grows over the cap is refused."""
    body = padded_success(MAX_RESPONSE_BYTES + 64 * 1024)

    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for start in range(0, len(body), 64 * 1024):
                await response.write(body[start : start + 64 * 1024])
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading at the cap, as it should
        return response

    async with serve(chunked) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        with pytest.raises(InvalidResponseError) as info:
            await chat.reserve("abc-123")
    assert info.value.status == 201
    assert "cap" in str(info.value)
    assert_key_hidden(info.value)


async def test_chunked_body_under_the_cap_is_read() -> None:
    """A chunked body without Content-Length under the cap is read in full."""
    body = padded_success(256 * 1024)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1024):
            await response.write(body[start : start + 1024])
        await response.write_eof()
        return response

    async with serve(chunked) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        assert await chat.reserve("abc-123") == EXPECTED_DOC_RESERVATION


# -- concurrency and the connection pool -------------------------------------------------


async def test_300_concurrent_reservations_on_one_session() -> None:
    """300 concurrent reserve() calls all succeed with distinct uuids and numbers."""
    numbers = [f"+1310555{n:04d}" for n in range(300)]
    fake = FakeTwoChat(api_key=API_KEY, groups=[FakeGroup(id="big", country="US", numbers=numbers)])
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url, timeout=30) as chat:
        reservations = await asyncio.gather(*(chat.reserve("big") for _ in range(300)))
    assert len({r.uuid for r in reservations}) == 300
    assert set(numbers) == {r.number for r in reservations}
    assert {"big"} == {r.group_id for r in reservations}
    assert fake.calls["POST /open/numbers/reservations"] == 300
    assert fake.available("big") == []


async def test_borrowed_http_session_is_used_and_left_open(fake: FakeTwoChat) -> None:
    """A given http_session carries the requests and stays open after close()."""
    http = aiohttp.ClientSession(headers={"X-Borrowed": "yes"})
    try:
        async with TwoChatSession(API_KEY, base_url=fake.base_url, http_session=http) as chat:
            await chat.reserve("abc-123")
        assert chat.closed
        assert not http.closed
        assert fake.requests[0]["headers"]["X-Borrowed"] == "yes"
        async with http.post(fake.base_url + "/open/numbers/reservations") as response:
            assert response.status == 401
    finally:
        await http.close()
    assert http.closed


async def test_borrowed_session_raise_for_status_does_not_hide_the_message(
    fake: FakeTwoChat,
) -> None:
    """A borrowed session with raise_for_status still yields 2Chat's error message."""
    async with aiohttp.ClientSession(raise_for_status=True) as http:
        chat = TwoChatSession(API_KEY, base_url=fake.base_url, http_session=http)
        async with chat:
            with pytest.raises(NotFoundError) as info:
                await chat.reserve("no-such-group")
    assert info.value.message == "Number group no-such-group not found"


async def test_closed_borrowed_session_is_refused(fake: FakeTwoChat) -> None:
    """Using a TwoChatSession whose borrowed http_session was closed raises TwoChatError."""
    http = aiohttp.ClientSession()
    await http.close()
    async with TwoChatSession(API_KEY, base_url=fake.base_url, http_session=http) as chat:
        with pytest.raises(TwoChatError, match="http_session") as info:
            await chat.reserve("abc-123")
    assert len(fake.requests) == 0
    assert_key_hidden(info.value)


async def test_close_is_idempotent_and_later_calls_fail(fake: FakeTwoChat) -> None:
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
    assert_key_hidden(info.value)


def test_session_built_outside_a_running_loop_works_later() -> None:
    """A TwoChatSession constructed with no running loop is usable inside one later."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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

    reservation = asyncio.run(use())
    assert reservation.number == "+12135551234"
    assert chat.closed


# -- the key stays secret ----------------------------------------------------------------


async def test_repr_of_session_hides_the_key(chat: TwoChatSession) -> None:
    """repr(session) shows the base URL and state but never the API key."""
    assert f"<TwoChatSession base_url={chat.base_url!r} open>" == repr(chat)
    assert API_KEY not in repr(chat)
    assert API_KEY not in str(chat)
    await chat.close()
    assert f"<TwoChatSession base_url={chat.base_url!r} closed>" == repr(chat)


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
    monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], refused: str, expected: str
) -> None:
    """repr() of a session whose __init__ raised halfway (error trackers call it) still works."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)
    chat = TwoChatSession.__new__(TwoChatSession)
    with pytest.raises(ValueError, match=refused):
        TwoChatSession.__init__(chat, **{"api_key": API_KEY, **options})
    assert expected == repr(chat)
    assert API_KEY not in repr(chat)


async def test_key_echoed_in_error_message_is_redacted(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A server error_message that echoes the key is redacted in the raised error."""
    fake.script(failure(400, f"Bad key {API_KEY} in request"))
    with pytest.raises(BadRequestError) as info:
        await chat.reserve("abc-123")
    assert info.value.message == "Bad key *** in request"
    assert str(info.value) == "HTTP 400 (POST /open/numbers/reservations): Bad key *** in request"
    assert_key_hidden(info.value)


async def test_key_echoed_in_non_json_error_body_is_redacted(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A non-JSON error body that echoes the key is redacted in message and body."""
    fake.script(Reply(status=502, body=f"<p>upstream got key {API_KEY}</p>".encode()))
    with pytest.raises(ServerError) as info:
        await chat.reserve("abc-123")
    assert info.value.body == "<p>upstream got key ***</p>"
    assert_key_hidden(info.value)


async def test_key_echoed_in_json_error_body_is_redacted(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A JSON error body that echoes the key is redacted in .body too, as text bodies are."""
    fake.script(failure(400, f"Bad key {API_KEY} in request"))
    with pytest.raises(BadRequestError) as info:
        await chat.reserve("abc-123")
    assert API_KEY not in repr(info.value.body)
