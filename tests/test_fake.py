"""FakeTwoChat itself: auth, wire envelopes, state, its clock, and scripted replies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY

from twochat_async import NotFoundError, TwoChatSession, UnprocessableEntityError
from twochat_async.testing import FakeGroup, FakeTwoChat, ManualClock, Reply

RESERVATIONS = "/open/numbers/reservations"
START = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw aiohttp session, to see exactly what the fake sends."""
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, fake: FakeTwoChat, data: bytes, key: str | None = API_KEY
) -> tuple[int, Any]:
    """POST raw bytes to the fake's reservations endpoint; return (status, decoded JSON)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-User-API-Key"] = key
    async with http.post(fake.base_url + RESERVATIONS, data=data, headers=headers) as response:
        return response.status, json.loads(await response.read())


class MutableClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("key", ["wrong-key", None])
async def test_wrong_or_missing_key_gets_the_401_envelope(
    fake: FakeTwoChat, http: aiohttp.ClientSession, key: str | None
) -> None:
    """A wrong or missing key gets 401 in 2Chat's exact error envelope."""
    status, body = await post(http, fake, b'{"group_id": "abc-123"}', key=key)
    assert status == 401
    assert body == {"success": False, "error": True, "error_message": "Invalid or missing API key"}
    assert fake.reservations == {}


@pytest.mark.parametrize("data", [b"[1, 2]", b'"abc-123"', b"not json", b"{}", b'{"group_id": 7}'])
async def test_body_that_is_not_an_object_with_group_id_is_400(
    fake: FakeTwoChat, http: aiohttp.ClientSession, data: bytes
) -> None:
    """A body that is not a JSON object with a group_id string gets 400 in the envelope."""
    status, body = await post(http, fake, data)
    assert status == 400
    expected = {
        "success": False,
        "error": True,
        "error_message": "Wrong JSON structure: expected an object with a group_id string",
    }
    assert body == expected


async def test_success_has_2chats_201_shape(fake: FakeTwoChat, http: aiohttp.ClientSession) -> None:
    """A reservation answers 201 with reservation_details and Z timestamps."""
    fake.clock = lambda: START
    status, body = await post(http, fake, b'{"group_id": "abc-123", "number": "+12135551234"}')
    assert status == 201
    (uuid,) = fake.reservations
    expected = {
        "success": True,
        "data": {
            "reservation_details": {
                "uuid": uuid,
                "number": "+12135551234",
                "created_at": "2024-01-15T10:30:00Z",
                "expires_at": "2024-01-15T11:30:00Z",
            }
        },
    }
    assert body == expected


async def test_reserved_numbers_leave_available(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """A reserved number is no longer in available(); the others still are."""
    before = fake.available("abc-123")
    first = await chat.reserve("abc-123")
    chosen = await chat.reserve("abc-123", "+12135551240")
    expected = [n for n in before if n not in (first.number, chosen.number)]
    assert fake.available("abc-123") == expected
    assert len(fake.available("abc-123")) == len(before) - 2


async def test_group_with_no_number_left_is_404() -> None:
    """Reserving a random number of an exhausted group gets 404."""
    fake = FakeTwoChat(
        api_key=API_KEY, groups=[FakeGroup(id="tiny", country="US", numbers=["+13105550000"])]
    )
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        await chat.reserve("tiny")
        with pytest.raises(NotFoundError) as info:
            await chat.reserve("tiny")
    assert info.value.message == "No number available in group tiny"


async def test_expiry_follows_the_injected_clock() -> None:
    """Once the injected clock passes expires_at the number is reservable again."""
    clock = MutableClock(START)
    fake = FakeTwoChat(api_key=API_KEY, clock=clock, reservation_ttl=timedelta(minutes=10))
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        first = await chat.reserve("abc-123", "+12135551234")
        assert first.expires_at == START + timedelta(minutes=10)
        clock.now = START + timedelta(minutes=9, seconds=59)
        assert [r.uuid for r in fake.active_reservations()] == [first.uuid]
        with pytest.raises(UnprocessableEntityError):
            await chat.reserve("abc-123", "+12135551234")
        clock.now = START + timedelta(minutes=10)
        assert fake.active_reservations() == []
        assert "+12135551234" in fake.available("abc-123")
        second = await chat.reserve("abc-123", "+12135551234")
    assert second.created_at == START + timedelta(minutes=10)
    assert second.uuid != first.uuid
    assert [r.uuid for r in fake.active_reservations()] == [second.uuid]


async def test_calls_and_requests_are_recorded(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Every request is counted by method and path and logged with headers and body."""
    await chat.reserve("abc-123")
    with pytest.raises(UnprocessableEntityError):
        await chat.reserve("abc-123", "+18005550100")
    assert dict(fake.calls) == {"POST /open/numbers/reservations": 2}
    assert [json.loads(r["body"]) for r in fake.requests] == [
        {"group_id": "abc-123"},
        {"group_id": "abc-123", "number": "+18005550100"},
    ]
    assert [(r["method"], r["path"], r["query"]) for r in fake.requests] == [
        ("POST", RESERVATIONS, {}),
        ("POST", RESERVATIONS, {}),
    ]
    assert fake.requests[0]["headers"]["X-User-API-Key"] == API_KEY


async def test_requests_record_their_arrival_time(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Each recorded request carries its arrival time on time.monotonic(), in order."""
    before = time.monotonic()
    await chat.did_types()
    await chat.did_types()
    after = time.monotonic()
    first, second = (request["received"] for request in fake.requests)
    assert before <= first <= second <= after


def test_fake_starts_again_on_a_later_event_loop() -> None:
    """start() after stop() serves again on a new loop, keeping its state and hang faults."""
    fake = FakeTwoChat(API_KEY)

    async def serve_once() -> str:
        async with aiohttp.ClientSession() as http:
            async with fake as base_url:
                async with TwoChatSession(API_KEY, base_url=base_url) as chat:
                    number = (await chat.reserve("abc-123")).number
                fake.script(Reply(fault="hang"))
                # A POST: aiohttp re-sends a GET once when the server disconnects.
                hanging = asyncio.create_task(http.post(base_url + RESERVATIONS, data=b"{}"))
                await asyncio.sleep(0.2)
                assert not hanging.done()  # held until stop()
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await hanging
        return number

    assert asyncio.run(serve_once()) == "+12135551234"
    assert asyncio.run(serve_once()) == "+12135551235"
    assert len(fake.reservations) == 2


async def test_scripted_replies_are_used_in_order_then_normal_service_resumes(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """script() answers the next requests in order, then the fake answers normally."""
    fake.script(
        Reply(status=503, json={"n": 1}),
        Reply(status=429, json={"n": 2}, headers={"Retry-After": "3"}),
    )
    body = b'{"group_id": "abc-123"}'
    assert await post(http, fake, body) == (503, {"n": 1})
    async with http.post(
        fake.base_url + RESERVATIONS, data=body, headers={"X-User-API-Key": API_KEY}
    ) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "3")
        assert await response.json() == {"n": 2}
    status, answer = await post(http, fake, body)
    assert status == 201
    assert answer["data"]["reservation_details"]["number"] == "+12135551234"
    assert fake.calls["POST /open/numbers/reservations"] == 3
    assert len(fake.reservations) == 1


async def test_scripted_reply_skips_the_key_check(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """A scripted reply is given whatever key the request carries."""
    fake.script(Reply(status=201, json={"success": True}))
    assert await post(http, fake, b"{}", key=None) == (201, {"success": True})


async def test_default_catalogue_has_the_documented_group(fake: FakeTwoChat) -> None:
    """The seeded catalogue holds group abc-123 with the documented +12135551234."""
    assert fake.available("abc-123")[0] == "+12135551234"
    assert "abc-123" in fake.groups


def test_manual_clock_stands_still_until_moved() -> None:
    """ManualClock shows the time it was given until advanced or set; it refuses naive times."""
    clock = ManualClock(START)
    assert (clock(), clock()) == (START, START)
    assert START + timedelta(minutes=90) == clock.advance(timedelta(minutes=90))
    assert START + timedelta(minutes=90) == clock()
    clock.now = START
    assert clock() == START
    assert repr(clock) == "<ManualClock 2024-01-15T10:30:00+00:00>"
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2024, 1, 15))


def test_manual_clock_starts_at_the_current_time() -> None:
    """Without a start, ManualClock shows the current time, aware and in UTC."""
    before = datetime.now(timezone.utc)
    shown = ManualClock()()
    assert before <= shown <= datetime.now(timezone.utc)
    assert timezone.utc == shown.tzinfo
