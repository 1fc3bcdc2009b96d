"""FakeTwoChat's state rules across the Numbers API: holds, expiry, sales, counts, refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY

from twochat_async import (
    APIError,
    NotFoundError,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async.testing import FakeTwoChat

START = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
HEADERS = {"X-User-API-Key": API_KEY}


class MutableClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw aiohttp session, to see exactly what the fake answers."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def clocked() -> AsyncIterator[tuple[FakeTwoChat, MutableClock, TwoChatSession]]:
    """A fake on a hand-moved clock with 10-minute reservations, and a session on it."""
    clock = MutableClock(START)
    fake = FakeTwoChat(api_key=API_KEY, clock=clock, reservation_ttl=timedelta(minutes=10))
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url, timeout=5) as chat:
        yield fake, clock, chat


async def call(
    http: aiohttp.ClientSession,
    fake: FakeTwoChat,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    key: str | None = API_KEY,
) -> tuple[int, Any]:
    """Send one raw request to the fake; return (status, decoded JSON body)."""
    headers = {} if key is None else {"X-User-API-Key": key}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with http.request(
        method, fake.base_url + path, data=data, params=params, headers=headers
    ) as response:
        return response.status, json.loads(await response.read())


def error(message: str) -> dict[str, Any]:
    """2Chat's error envelope around ``message``."""
    return {"success": False, "error": True, "error_message": message}


async def available(chat: TwoChatSession, group_id: str) -> list[str]:
    """The numbers the fake's Available Numbers endpoint lists for a group."""
    return [n.number for n in await chat.available_numbers(group_id)]


async def test_reserved_number_leaves_available_and_cancel_returns_it(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A reserved number is gone from available_numbers() until its reservation is cancelled."""
    before = await available(chat, "abc-123")
    reservation = await chat.reserve("abc-123", "+12135551238")
    during = await available(chat, "abc-123")
    assert "+12135551238" not in during
    assert during == [n for n in before if n != "+12135551238"]
    await chat.cancel_reservation(reservation)
    assert await available(chat, "abc-123") == before
    assert fake.reservations == {}


async def test_random_reservations_skip_held_numbers(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Random reservations of one group each get a different, still-available number."""
    numbers = [(await chat.reserve("nyc-212")).number for _ in range(5)]
    assert numbers == [f"+1212555{n}" for n in range(2000, 2005)]
    assert fake.available("nyc-212") == []
    with pytest.raises(NotFoundError, match="No number available"):
        await chat.reserve("nyc-212")


async def test_cancelled_reservation_cannot_be_cancelled_again(
    fake: FakeTwoChat, chat: TwoChatSession, http: aiohttp.ClientSession
) -> None:
    """Cancel answers 2Chat's message once; the same uuid then answers 404."""
    reservation = await chat.reserve("abc-123")
    path = f"/open/numbers/reservations/{reservation.uuid}"
    assert await call(http, fake, "DELETE", path) == (
        200,
        {"success": True, "message": f"Reservation {reservation.uuid} cancelled successfully"},
    )
    assert await call(http, fake, "DELETE", path) == (
        404,
        error(f"Reservation {reservation.uuid} not found"),
    )


async def test_expiry_returns_the_number_and_drops_the_reservation(
    clocked: tuple[FakeTwoChat, MutableClock, TwoChatSession],
) -> None:
    """When the injected clock passes expires_at, the number is available and the hold is gone."""
    fake, clock, chat = clocked
    reservation = await chat.reserve("abc-123", "+12135551234")
    assert [r.uuid for r in fake.active_reservations()] == [reservation.uuid]
    assert reservation.expires_at == START + timedelta(minutes=10)
    clock.now = START + timedelta(minutes=9)
    assert "+12135551234" not in await available(chat, "abc-123")
    assert [r.uuid for r in await chat.reservations()] == [reservation.uuid]
    clock.now = START + timedelta(minutes=10)
    assert "+12135551234" in await available(chat, "abc-123")
    assert await chat.reservations() == []
    assert fake.active_reservations() == []
    with pytest.raises(NotFoundError):
        await chat.cancel_reservation(reservation)


async def test_reservations_lists_only_active_ones(
    clocked: tuple[FakeTwoChat, MutableClock, TwoChatSession],
) -> None:
    """reservations() leaves out cancelled and expired reservations, keeping the rest."""
    fake, clock, chat = clocked
    old = await chat.reserve("abc-123")
    clock.now = START + timedelta(minutes=5)
    cancelled = await chat.reserve("abc-123")
    kept = await chat.reserve("nyc-212")
    await chat.cancel_reservation(cancelled)
    clock.now = START + timedelta(minutes=12)
    listed = await chat.reservations()
    assert [(r.uuid, r.number) for r in listed] == [(kept.uuid, kept.number)]
    assert listed[0].expires_at == START + timedelta(minutes=15)
    assert old.uuid not in {r.uuid for r in fake.active_reservations()}


async def test_reservations_wire_shape(
    fake: FakeTwoChat, chat: TwoChatSession, http: aiohttp.ClientSession
) -> None:
    """List Reservations answers a success envelope whose data is a list of reservation details."""
    fake.clock = lambda: START
    reservation = await chat.reserve("abc-123", "+12135551234")
    status, body = await call(http, fake, "GET", "/open/numbers/reservations")
    assert status == 200
    assert body == {
        "success": True,
        "data": [
            {
                "uuid": reservation.uuid,
                "number": "+12135551234",
                "created_at": "2024-01-15T10:30:00Z",
                "expires_at": "2024-01-15T11:30:00Z",
            }
        ],
    }


async def test_purchased_number_is_gone_for_good(
    clocked: tuple[FakeTwoChat, MutableClock, TwoChatSession], http: aiohttp.ClientSession
) -> None:
    """A sold number is recorded in fake.sold and never available, reservable or sold again."""
    fake, clock, chat = clocked
    bought = await chat.purchase("abc-123", "+12135551239")
    assert bought.details["data"] == {"number": "+12135551239", "group_id": "abc-123"}
    assert fake.sold == {"+12135551239": "abc-123"}
    clock.now = START + timedelta(days=30)
    assert "+12135551239" not in await available(chat, "abc-123")
    with pytest.raises(UnprocessableEntityError, match="not available"):
        await chat.reserve("abc-123", "+12135551239")
    body = {"group_id": "abc-123", "number": "+12135551239"}
    assert await call(http, fake, "POST", "/open/numbers/purchase", body=body) == (
        422,
        error("Number +12135551239 is not available"),
    )
    assert fake.sold == {"+12135551239": "abc-123"}


async def test_purchase_wire_shape_and_random_pick(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """A purchase without a number answers 201 and sells the first available number."""
    status, body = await call(
        http, fake, "POST", "/open/numbers/purchase", body={"group_id": "abc-123"}
    )
    assert status == 201
    assert body == {
        "success": True,
        "message": "Number +12135551234 purchased successfully",
        "data": {"number": "+12135551234", "group_id": "abc-123"},
    }
    assert fake.sold == {"+12135551234": "abc-123"}
    assert fake.available("abc-123")[0] == "+12135551235"


async def test_purchasing_a_reserved_number_consumes_the_reservation(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Buying a number this account holds sells it and removes its reservation."""
    reservation = await chat.reserve("abc-123", "+12135551241")
    await chat.purchase("abc-123", "+12135551241")
    assert fake.sold == {"+12135551241": "abc-123"}
    assert await chat.reservations() == []
    with pytest.raises(NotFoundError):
        await chat.cancel_reservation(reservation)


async def test_random_purchase_does_not_take_a_held_number(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A random purchase skips numbers under an active reservation."""
    held = await chat.reserve("abc-123")
    bought = await chat.purchase("abc-123")
    assert held.number == "+12135551234"
    assert list(fake.sold) == ["+12135551235"]
    assert bought.details["data"]["number"] == "+12135551235"
    assert [r.uuid for r in fake.active_reservations()] == [held.uuid]


async def test_failed_purchase_keeps_the_reservation(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Buying a held number from the wrong group fails with 422 and the hold stays."""
    reservation = await chat.reserve("abc-123", "+12135551242")
    with pytest.raises(UnprocessableEntityError, match="does not belong to group nyc-212"):
        await chat.purchase("nyc-212", "+12135551242")
    assert [r.uuid for r in fake.active_reservations()] == [reservation.uuid]
    assert fake.sold == {}


async def test_info_counts_requests(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """info() reports every request so far, including itself, as api_request_count."""
    first = await chat.info()
    assert first.api_request_count == 1
    await chat.did_types()
    await chat.regions("US")
    with pytest.raises(NotFoundError):
        await chat.reserve("no-such-group")
    second = await chat.info()
    assert second.api_request_count == 5
    assert second.requests_per_minute == 80
    assert len(fake.requests) == 5


async def test_info_wire_shape(fake: FakeTwoChat, http: aiohttp.ClientSession) -> None:
    """GET /open/info answers account, limits and usage beside success, like 2Chat."""
    fake.clock = lambda: START
    status, body = await call(http, fake, "GET", "/open/info")
    assert status == 200
    assert sorted(body) == ["account", "limits", "success", "usage"]
    assert body["success"] is True
    assert body["limits"] == {"requests_per_minute": 80}
    assert body["usage"]["api_request_count"] == 1
    assert body["account"]["expires_at"] == "2025-01-14T10:30:00Z"


async def test_no_selection_group_refuses_picking_a_number(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """Group tf-800 answers 406 to Available Numbers and to reserving a chosen number."""
    message = error("Number group tf-800 does not allow number selection")
    params = {"group_id": "tf-800"}
    assert await call(http, fake, "GET", "/open/numbers/available", params=params) == (
        406,
        message,
    )
    body = {"group_id": "tf-800", "number": "+18005550100"}
    assert await call(http, fake, "POST", "/open/numbers/reservations", body=body) == (
        406,
        message,
    )
    assert fake.reservations == {}
    status, answer = await call(
        http, fake, "POST", "/open/numbers/reservations", body={"group_id": "tf-800"}
    )
    assert status == 201
    assert answer["data"]["reservation_details"]["number"] == "+18005550100"


async def test_no_selection_group_refuses_buying_a_chosen_number(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """Group tf-800 answers 406 to purchasing a specific number the account does not hold."""
    body = {"group_id": "tf-800", "number": "+18005550103"}
    assert await call(http, fake, "POST", "/open/numbers/purchase", body=body) == (
        406,
        error("Number group tf-800 does not allow number selection"),
    )
    assert fake.sold == {}


async def test_no_selection_group_sells_its_reserved_number(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A number reserved at random from tf-800 can then be bought by naming it."""
    reservation = await chat.reserve("tf-800")
    await chat.purchase("tf-800", reservation.number)
    assert fake.sold == {reservation.number: "tf-800"}


async def test_406_is_a_plain_api_error(chat: TwoChatSession) -> None:
    """Through the session, the fake's 406 surfaces as APIError with status 406."""
    with pytest.raises(APIError) as info:
        await chat.available_numbers("tf-800")
    assert type(info.value) is APIError
    assert info.value.status == 406


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/open/numbers/available", {"group_id": "nope"}, None),
        ("POST", "/open/numbers/reservations", None, {"group_id": "nope"}),
        ("POST", "/open/numbers/purchase", None, {"group_id": "nope"}),
    ],
)
async def test_unknown_group_is_404_everywhere(
    fake: FakeTwoChat,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: dict[str, Any] | None,
) -> None:
    """Available, reserve and purchase answer 404 for a group the fake does not have."""
    assert await call(http, fake, method, path, params=params, body=body) == (
        404,
        error("Number group nope not found"),
    )


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("12135551234", "Invalid number '12135551234': use E.164, e.g. +12135551234"),
        ("+1213555", "Number +1213555 does not belong to group abc-123"),
        ("+12125552000", "Number +12125552000 does not belong to group abc-123"),
    ],
)
async def test_purchase_of_a_bad_number_is_422(
    fake: FakeTwoChat, http: aiohttp.ClientSession, number: str, message: str
) -> None:
    """Purchase answers 422 for a number not in E.164 or not in the group; nothing is sold."""
    body = {"group_id": "abc-123", "number": number}
    assert await call(http, fake, "POST", "/open/numbers/purchase", body=body) == (
        422,
        error(message),
    )
    assert fake.sold == {}


@pytest.mark.parametrize(
    "path",
    [
        "/open/info",
        "/open/numbers/regions?country=US",
        "/open/numbers/groups?country=US",
        "/open/numbers/reservations",
    ],
)
async def test_every_endpoint_checks_the_key(
    fake: FakeTwoChat, http: aiohttp.ClientSession, path: str
) -> None:
    """Read endpoints answer 401 in the error envelope to a wrong key."""
    assert await call(http, fake, "GET", path, key="wrong") == (
        401,
        error("Invalid or missing API key"),
    )


async def test_catalogue_filters(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Regions, cities, groups and requirements follow their filters over the seeded catalogue."""
    assert [r.name for r in await chat.regions("US")] == ["California", "New York"]
    assert [c.name for c in await chat.cities("US", region_id=124)] == ["New York City"]
    assert [c.name for c in await chat.cities("DE")] == ["Berlin"]
    assert [g.id for g in await chat.groups("US")] == ["abc-123", "nyc-212", "tf-800"]
    assert [g.id for g in await chat.groups("US", did_type="tollfree")] == ["tf-800"]
    assert [g.id for g in await chat.groups("US", city_id=458)] == ["nyc-212"]
    assert [g.id for g in await chat.groups("de", city_name_or_prefix="+49")] == ["ber-30"]
    assert [r["id"] for r in await chat.requirements("DE", did_type=1)] == [
        "req-de-address",
        "req-de-identity",
    ]
    assert await chat.requirements("US") == []


async def test_each_fake_has_its_own_state() -> None:
    """Two fakes share nothing: a sale in one leaves the other's catalogue whole."""
    one, two = FakeTwoChat(api_key=API_KEY), FakeTwoChat(api_key=API_KEY)
    async with one as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        await chat.purchase("abc-123", "+12135551234")
    assert "+12135551234" not in one.available("abc-123")
    assert "+12135551234" in two.available("abc-123")
    assert two.sold == {}


@pytest.mark.parametrize("path", ["regions", "cities", "groups", "requirements"])
async def test_missing_country_is_a_422_envelope(fake: FakeTwoChat, path: str) -> None:
    """Every endpoint that needs ?country= answers 422 in 2Chat's envelope without it."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.base_url}/open/numbers/{path}", headers=HEADERS) as response,
    ):
        status, body = response.status, await response.json()
    assert status == 422
    assert body == {"success": False, "error": True, "error_message": "country is required"}
