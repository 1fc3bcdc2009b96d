"""twochat_async.testing: FakeTwoChat's wire, state and faults, its catalogue, ManualClock.

What the fake answers is checked with a raw aiohttp client where the exact bytes matter,
and through a TwoChatSession where its state does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY, envelope, fake_in_thread

from twochat_async import APIError, NotFoundError, TwoChatSession, UnprocessableEntityError
from twochat_async.testing import FakeTwoChat, ManualClock, Reply, default_catalogue

RESERVATIONS = "/open/numbers/reservations"
PURCHASE = "/open/numbers/purchase"
T0 = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A raw aiohttp session, to see exactly what the fake answers."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def clock(fake: FakeTwoChat) -> ManualClock:
    """A ManualClock at T0, driving the running fake."""
    fake.clock = hand = ManualClock(T0)
    return hand


async def call(
    http: aiohttp.ClientSession,
    fake: FakeTwoChat,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
    key: str | None = API_KEY,
) -> tuple[int, Any]:
    """Send one raw request to the fake; return (status, decoded JSON body)."""
    headers = {} if key is None else {"X-User-API-Key": key}
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with http.request(
        method, fake.base_url + path, data=data, params=params, headers=headers
    ) as response:
        return response.status, json.loads(await response.read())


async def available(chat: TwoChatSession, group_id: str) -> list[str]:
    """The numbers the fake's Available Numbers endpoint lists for a group."""
    return [n.number for n in await chat.available_numbers(group_id)]


# -- its wire -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["wrong-key", None])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/open/info"),
        ("GET", "/open/numbers/regions?country=US"),
        ("GET", "/open/numbers/groups?country=US&region_id=123"),
        ("GET", RESERVATIONS),
        ("POST", RESERVATIONS),
    ],
)
async def test_a_wrong_or_missing_key_gets_the_401_envelope(
    fake: FakeTwoChat, http: aiohttp.ClientSession, method: str, path: str, key: str | None
) -> None:
    """Every endpoint answers 401 in 2Chat's exact error envelope, and acts on nothing."""
    body = {"group_id": "abc-123"} if method == "POST" else None
    answer = await call(http, fake, method, path, body=body, key=key)
    assert (401, envelope("Invalid or missing API key")) == answer
    assert fake.reservations == {}


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b'"abc-123"', b"not json", b"{}", b'{"group_id": 7}'], ids=repr
)
@pytest.mark.parametrize("path", [RESERVATIONS, PURCHASE])
async def test_a_body_without_a_group_id_string_is_400(
    fake: FakeTwoChat, http: aiohttp.ClientSession, path: str, body: bytes
) -> None:
    """A body that is not a JSON object with a group_id string gets 400 in the envelope."""
    expected = envelope("Wrong JSON structure: expected an object with a group_id string")
    assert (400, expected) == await call(http, fake, "POST", path, body=body)


@pytest.mark.parametrize("path", ["regions", "cities", "groups", "requirements"])
async def test_a_missing_country_is_422(
    fake: FakeTwoChat, http: aiohttp.ClientSession, path: str
) -> None:
    """Every endpoint that needs ?country= answers 422 in the envelope without it."""
    answer = await call(http, fake, "GET", f"/open/numbers/{path}")
    assert (422, envelope("country is required")) == answer


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("GET", "/open/numbers/available", {"group_id": "nope"}, None),
        ("POST", RESERVATIONS, None, {"group_id": "nope"}),
        ("POST", PURCHASE, None, {"group_id": "nope"}),
    ],
)
async def test_an_unknown_group_is_404_everywhere(
    fake: FakeTwoChat,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: dict[str, Any] | None,
) -> None:
    """Available, reserve and purchase answer 404 for a group the fake does not have."""
    answer = await call(http, fake, method, path, params=params, body=body)
    assert (404, envelope("Number group nope not found")) == answer


async def test_a_reservation_answers_2chats_201_shape(
    fake: FakeTwoChat, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    """A reservation answers 201 with reservation_details and Z timestamps."""
    body = {"group_id": "abc-123", "number": "+12135551234"}
    status, answer = await call(http, fake, "POST", RESERVATIONS, body=body)
    (uuid,) = fake.reservations
    details = {
        "uuid": uuid,
        "number": "+12135551234",
        "created_at": "2024-01-15T10:30:00Z",
        "expires_at": "2024-01-15T11:30:00Z",
    }
    assert (201, {"success": True, "data": {"reservation_details": details}}) == (status, answer)
    listed = await call(http, fake, "GET", RESERVATIONS)
    assert (200, {"success": True, "data": [details]}) == listed


async def test_a_cancel_answers_2chats_message_once(
    fake: FakeTwoChat, http: aiohttp.ClientSession, chat: TwoChatSession
) -> None:
    """Cancel answers 2Chat's message once; the same uuid then answers 404."""
    reservation = await chat.reserve("abc-123")
    path = f"{RESERVATIONS}/{reservation.uuid}"
    message = f"Reservation {reservation.uuid} cancelled successfully"
    assert (200, {"success": True, "message": message}) == await call(http, fake, "DELETE", path)
    assert (404, envelope(f"Reservation {reservation.uuid} not found")) == await call(
        http, fake, "DELETE", path
    )


async def test_a_purchase_answers_201_and_sells_the_first_available_number(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """A purchase without a number answers 201 with the number sold, the first available."""
    answer = await call(http, fake, "POST", PURCHASE, body={"group_id": "abc-123"})
    expected = {
        "success": True,
        "message": "Number +12135551234 purchased successfully",
        "data": {"number": "+12135551234", "group_id": "abc-123"},
    }
    assert (201, expected) == answer
    assert fake.sold == {"+12135551234": "abc-123"}
    assert fake.available("abc-123")[0] == "+12135551235"


async def test_info_answers_account_limits_and_usage_beside_success(
    http: aiohttp.ClientSession,
) -> None:
    """GET /open/info answers like 2Chat: its configured limit, every request counted."""
    fake = FakeTwoChat(API_KEY, requests_per_minute=30, clock=ManualClock(T0))
    async with fake:
        await call(http, fake, "GET", "/open/numbers/did-types")
        status, body = await call(http, fake, "GET", "/open/info")
    assert (status, sorted(body)) == (200, ["account", "limits", "success", "usage"])
    assert body["success"] is True
    assert body["limits"] == {"requests_per_minute": 30}
    assert body["usage"]["api_request_count"] == 2
    assert body["account"]["expires_at"] == "2025-01-14T10:30:00Z"


# -- its state ------------------------------------------------------------------------------


async def test_a_held_number_leaves_available_until_cancelled(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A reserved number is neither listed nor reservable until its reservation is cancelled."""
    before = await available(chat, "abc-123")
    reservation = await chat.reserve("abc-123", "+12135551238")
    assert [n for n in before if n != "+12135551238"] == await available(chat, "abc-123")
    with pytest.raises(UnprocessableEntityError, match="is not available"):
        await chat.reserve("abc-123", "+12135551238")
    await chat.cancel_reservation(reservation)
    assert before == await available(chat, "abc-123")
    assert fake.reservations == {}


async def test_random_reservations_take_the_next_free_number_then_404(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Random reservations of one group each get a different number; then there is none."""
    numbers = [(await chat.reserve("nyc-212")).number for _ in range(5)]
    assert [f"+1212555{n}" for n in range(2000, 2005)] == numbers
    assert fake.available("nyc-212") == []
    with pytest.raises(NotFoundError, match="No number available in group nyc-212"):
        await chat.reserve("nyc-212")


async def test_a_reservation_expires_by_the_fakes_clock(
    fake: FakeTwoChat, chat: TwoChatSession, clock: ManualClock
) -> None:
    """At expires_at the number is free again, the reservation unlisted and uncancellable."""
    fake.reservation_ttl = timedelta(minutes=10)
    first = await chat.reserve("abc-123", "+12135551234")
    assert T0 + timedelta(minutes=10) == first.expires_at
    clock.advance(timedelta(minutes=9, seconds=59))
    assert [first.uuid] == [r.uuid for r in await chat.reservations()]
    assert "+12135551234" not in fake.available("abc-123")
    clock.advance(timedelta(seconds=1))
    assert await chat.reservations() == []
    assert fake.active_reservations() == []
    with pytest.raises(NotFoundError):
        await chat.cancel_reservation(first)
    second = await chat.reserve("abc-123", "+12135551234")
    assert (second.created_at, second.uuid != first.uuid) == (clock(), True)


async def test_reservations_lists_neither_cancelled_nor_expired_ones(
    fake: FakeTwoChat, chat: TwoChatSession, clock: ManualClock
) -> None:
    """reservations() leaves out cancelled and expired reservations, keeping the rest."""
    fake.reservation_ttl = timedelta(minutes=10)
    old = await chat.reserve("abc-123")
    clock.advance(timedelta(minutes=5))
    cancelled = await chat.reserve("abc-123")
    kept = await chat.reserve("nyc-212")
    await chat.cancel_reservation(cancelled)
    clock.advance(timedelta(minutes=7))
    listed = await chat.reservations()
    assert [(kept.uuid, kept.number, T0 + timedelta(minutes=15))] == [
        (r.uuid, r.number, r.expires_at) for r in listed
    ]
    assert old.uuid in fake.reservations  # expired, still kept, no longer active


async def test_a_sold_number_is_gone_for_good(
    fake: FakeTwoChat, chat: TwoChatSession, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    """A sold number is recorded in fake.sold and never available, reservable or sold again."""
    await chat.purchase("abc-123", "+12135551239")
    clock.advance(timedelta(days=30))
    assert "+12135551239" not in await available(chat, "abc-123")
    with pytest.raises(UnprocessableEntityError, match="not available"):
        await chat.reserve("abc-123", "+12135551239")
    body = {"group_id": "abc-123", "number": "+12135551239"}
    assert (422, envelope("Number +12135551239 is not available")) == await call(
        http, fake, "POST", PURCHASE, body=body
    )
    assert fake.sold == {"+12135551239": "abc-123"}


async def test_buying_a_held_number_consumes_its_reservation(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A number this account holds can be bought; its reservation then ends."""
    other = await chat.reserve("abc-123", "+12135551235")
    mine = await chat.reserve("abc-123", "+12135551241")
    await chat.purchase("abc-123", "+12135551241")
    assert fake.sold == {"+12135551241": "abc-123"}
    assert [other.uuid] == [r.uuid for r in await chat.reservations()]
    with pytest.raises(NotFoundError):
        await chat.cancel_reservation(mine)


async def test_a_random_purchase_skips_held_numbers(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A random purchase takes the first number no active reservation holds."""
    held = await chat.reserve("abc-123")
    bought = await chat.purchase("abc-123")
    assert (held.number, ["+12135551235"]) == ("+12135551234", list(fake.sold))
    assert bought.details["data"]["number"] == "+12135551235"
    assert [held.uuid] == [r.uuid for r in fake.active_reservations()]


async def test_a_refused_purchase_keeps_the_reservation(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Buying a held number from the wrong group fails with 422 and the hold stays."""
    reservation = await chat.reserve("abc-123", "+12135551242")
    with pytest.raises(UnprocessableEntityError, match="does not belong to group nyc-212"):
        await chat.purchase("nyc-212", "+12135551242")
    assert [reservation.uuid] == [r.uuid for r in fake.active_reservations()]
    assert fake.sold == {}


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("12135551234", "Invalid number '12135551234': use E.164, e.g. +12135551234"),
        ("+1213555", "Number +1213555 does not belong to group abc-123"),
        ("+12125552000", "Number +12125552000 does not belong to group abc-123"),
    ],
)
async def test_a_number_not_e164_or_not_of_the_group_is_422(
    fake: FakeTwoChat, http: aiohttp.ClientSession, number: str, message: str
) -> None:
    """Reserve and purchase answer 422 for such a number, and act on nothing."""
    for path in (RESERVATIONS, PURCHASE):
        body = {"group_id": "abc-123", "number": number}
        assert (422, envelope(message)) == await call(http, fake, "POST", path, body=body)
    assert (fake.reservations, fake.sold) == ({}, {})


async def test_a_group_without_selection_refuses_picking_a_number(
    fake: FakeTwoChat, chat: TwoChatSession, http: aiohttp.ClientSession
) -> None:
    """tf-800 answers 406 to listing, reserving or buying a chosen number, not to its own."""
    refused = (406, envelope("Number group tf-800 does not allow number selection"))
    listing = await call(
        http, fake, "GET", "/open/numbers/available", params={"group_id": "tf-800"}
    )
    chosen = {"group_id": "tf-800", "number": "+18005550100"}
    assert [refused] * 3 == [
        listing,
        await call(http, fake, "POST", RESERVATIONS, body=chosen),
        await call(http, fake, "POST", PURCHASE, body={**chosen, "number": "+18005550103"}),
    ]
    assert (fake.reservations, fake.sold) == ({}, {})
    reservation = await chat.reserve("tf-800")
    assert reservation.number == "+18005550100"
    await chat.purchase("tf-800", reservation.number)
    assert {reservation.number: "tf-800"} == fake.sold


async def test_each_fake_has_its_own_state() -> None:
    """Two fakes share nothing: a sale in one leaves the other's catalogue whole."""
    one, two = FakeTwoChat(api_key=API_KEY), FakeTwoChat(api_key=API_KEY)
    async with one as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        await chat.purchase("abc-123", "+12135551234")
    assert "+12135551234" not in one.available("abc-123")
    assert "+12135551234" in two.available("abc-123")
    assert two.sold == {}


async def test_calls_and_requests_are_recorded(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Every request is counted by method and path, and kept with headers, body and arrival."""
    before = time.monotonic()
    await chat.reserve("abc-123")
    with pytest.raises(UnprocessableEntityError):
        await chat.reserve("abc-123", "+18005550100")
    await chat.regions("US")
    after = time.monotonic()
    assert {key.split()[1]: count for key, count in fake.calls.items()} == {
        RESERVATIONS: 2,
        "/open/numbers/regions": 1,
    }
    assert [
        (r["method"], r["path"], r["query"], json.loads(r["body"]) if r["body"] else None)
        for r in fake.requests
    ] == [
        ("POST", RESERVATIONS, {}, {"group_id": "abc-123"}),
        ("POST", RESERVATIONS, {}, {"group_id": "abc-123", "number": "+18005550100"}),
        ("GET", "/open/numbers/regions", {"country": "US"}, None),
    ]
    assert fake.requests[0]["headers"]["X-User-API-Key"] == API_KEY
    arrivals = [r["received"] for r in fake.requests]
    assert before <= arrivals[0] <= arrivals[1] <= arrivals[2] <= after


# -- its catalogue --------------------------------------------------------------------------


async def test_the_catalogue_follows_every_filter(chat: TwoChatSession) -> None:
    """Regions, cities, groups, numbers and requirements follow their filters."""
    assert [r.name for r in await chat.regions("US")] == ["California", "New York"]
    assert [r.name for r in await chat.regions("CA")] == ["Ontario"]
    assert await chat.regions("DE") == []
    assert [c.name for c in await chat.cities("US", region_id=124)] == ["New York City"]
    assert [c.id for c in await chat.cities("US")] == [456, 457, 458]
    assert [c.name for c in await chat.cities("DE")] == ["Berlin"]
    assert [r["id"] for r in await chat.requirements("DE", did_type=2)] == ["req-de-mobile"]
    assert await chat.requirements("US") == []
    numbers = await chat.available_numbers("abc-123", number_contains="1240")
    assert [n.number for n in numbers] == ["+12135551240"]


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        ({}, ["abc-123", "tf-800"]),
        ({"did_type": "tollfree"}, ["tf-800"]),
        ({"did_type": "all"}, ["abc-123", "tf-800"]),
        ({"region_id": 124}, ["nyc-212", "tf-800"]),
        ({"city_id": 458, "region_id": 124}, ["nyc-212"]),
        ({"city_name_or_prefix": "Los Angeles"}, ["abc-123"]),
        ({"city_name_or_prefix": "+1 (800)"}, ["tf-800"]),
    ],
    ids=["none", "tollfree", "all", "region", "city", "city-name", "prefix"],
)
async def test_groups_follow_each_filter(
    chat: TwoChatSession, filters: dict[str, Any], expected_ids: list[str]
) -> None:
    """Each groups() filter narrows the fake's US groups of a region (California unless said)."""
    found = await chat.groups("US", **({"region_id": 123} | filters))
    assert expected_ids == [group.id for group in found]


async def test_a_us_group_search_without_a_region_is_refused(chat: TwoChatSession) -> None:
    """groups("US") without region_id is a 422 APIError saying a region is needed (2Chat: US)."""
    with pytest.raises(UnprocessableEntityError) as info:
        await chat.groups("US", did_type="local")
    assert isinstance(info.value, APIError)
    assert info.value.message == (
        "region_id is required for US: search the number groups of a region "
        "(see GET /open/numbers/regions?country=US)"
    )


async def test_only_us_group_searches_need_a_region(chat: TwoChatSession) -> None:
    """Other countries are searched whole: DE without a region lists Berlin's group."""
    assert [group.id for group in await chat.groups("DE")] == ["ber-30"]
    assert await chat.groups("CA") == []


async def test_the_default_catalogue_is_a_fresh_copy_with_the_documented_group(
    fake: FakeTwoChat,
) -> None:
    """The seeded catalogue holds 2Chat's example group abc-123 with +12135551234 first."""
    assert fake.available("abc-123")[0] == "+12135551234"
    assert [g.id for g in default_catalogue()] == ["abc-123", "nyc-212", "tf-800", "ber-30"]
    assert default_catalogue()[0] is not default_catalogue()[0]
    (berlin,) = [g for g in default_catalogue() if g.country == "DE"]
    assert berlin.requirements == [{"type": "address"}, {"type": "identity"}]


# -- its faults -----------------------------------------------------------------------------


async def test_scripted_replies_come_in_order_then_normal_service_resumes(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """script() answers the next requests, whatever their key, then the fake answers itself."""
    fake.script(
        Reply(status=503, json={"n": 1}),
        Reply(status=429, json={"n": 2}, headers={"Retry-After": "3"}),
        Reply(status=201),
        Reply(status=402),
    )
    body = {"group_id": "abc-123"}
    assert await call(http, fake, "POST", RESERVATIONS, body=body) == (503, {"n": 1})
    async with http.post(fake.base_url + RESERVATIONS, json=body) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "3")
        assert await response.json() == {"n": 2}
    assert await call(http, fake, "POST", RESERVATIONS, key=None) == (201, {"success": True})
    assert (402, envelope("Scripted error 402")) == await call(http, fake, "GET", "/open/info")
    status, answer = await call(http, fake, "POST", RESERVATIONS, body=body)
    assert (status, answer["data"]["reservation_details"]["number"]) == (201, "+12135551234")
    assert (fake.calls[f"POST {RESERVATIONS}"], len(fake.reservations)) == (4, 1)


@pytest.mark.parametrize(("handle", "made"), [(True, 1), (False, 0)])
async def test_a_reply_that_handles_acts_before_answering(
    fake: FakeTwoChat, http: aiohttp.ClientSession, handle: bool, made: int
) -> None:
    """Reply(handle=True) makes the reservation, then answers the scripted 500 instead."""
    fake.script(Reply(500, handle=handle))
    answer = await call(http, fake, "POST", RESERVATIONS, body={"group_id": "abc-123"})
    assert (500, envelope("Scripted error 500")) == answer
    assert made == len(fake.active_reservations())


async def test_a_fault_breaks_the_answer_as_scripted(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """ "drop" closes without an answer; "truncate" sends the headers and half the body."""
    fake.script(Reply(fault="drop"), Reply(201, body=b'{"success": true}', fault="truncate"))
    url = fake.base_url + "/open/info"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(url)
    async with http.post(url) as response:
        assert (response.status, response.content_length) == (201, 17)
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_the_budget_answers_429_with_retry_after_then_refills(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """Beyond its budget the fake answers 429 in the envelope with a Retry-After; it refills."""
    fake.set_budget(1, per=0.2)
    path = "/open/numbers/did-types"
    assert (await call(http, fake, "GET", path))[0] == 200
    async with http.get(fake.base_url + path, headers={"X-User-API-Key": API_KEY}) as refused:
        answer = (refused.status, await refused.json(), refused.headers["Retry-After"])
    assert (429, envelope("Too many requests"), "1") == answer
    await asyncio.sleep(0.25)
    assert (await call(http, fake, "GET", path))[0] == 200
    fake.set_budget(None)
    assert [(await call(http, fake, "GET", path))[0] for _ in range(3)] == [200] * 3
    assert fake.rate_limited == 1


async def test_latency_delays_every_answer(fake: FakeTwoChat, http: aiohttp.ClientSession) -> None:
    """latency adds its seconds before each answer."""
    fake.latency = 0.2
    started = time.monotonic()
    assert (await call(http, fake, "GET", "/open/numbers/did-types"))[0] == 200
    assert time.monotonic() - started >= 0.18


async def test_received_returns_once_the_request_is_in_flight(
    fake: FakeTwoChat, http: aiohttp.ClientSession
) -> None:
    """received(route, count) returns when that many have arrived, before they are answered."""
    fake.script(Reply(fault="hang"), Reply(fault="hang"))
    first = asyncio.create_task(http.post(fake.base_url + PURCHASE, data=b"{}"))
    await asyncio.wait_for(fake.received("POST " + PURCHASE), 5)
    assert fake.calls["POST " + PURCHASE] == 1
    waiting = asyncio.create_task(fake.received("POST " + PURCHASE, count=2))
    await fake.received("POST " + PURCHASE)  # one had arrived already: it returns at once
    assert not waiting.done()
    second = asyncio.create_task(http.post(fake.base_url + PURCHASE, data=b"{}"))
    await asyncio.wait_for(waiting, 5)
    assert not first.done()
    assert not second.done()
    assert fake._waiters == []
    await fake.stop()  # ends the hanging answers
    for hanging in (first, second):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await hanging


async def test_received_times_out_naming_what_arrived(fake: FakeTwoChat) -> None:
    """Too few requests within the timeout raise TimeoutError listing those received."""
    async with TwoChatSession(API_KEY, base_url=fake.base_url) as chat:
        await chat.did_types()
    with pytest.raises(TimeoutError, match="received 0 of 1 'POST /open/numbers/purchase'") as info:
        await fake.received("POST " + PURCHASE, timeout=0.01)
    assert "'GET /open/numbers/did-types': 1" in str(info.value)
    assert fake._waiters == []


async def test_received_is_woken_by_a_fake_on_another_threads_loop() -> None:
    """A fake served by another thread's event loop wakes a received() awaited on this one."""
    with fake_in_thread() as fake:
        waiting = asyncio.create_task(fake.received("GET /open/numbers/did-types", count=2))
        async with TwoChatSession(API_KEY, base_url=fake.base_url) as chat:
            await chat.did_types()
            assert not waiting.done()
            await chat.did_types()
        await asyncio.wait_for(waiting, 5)


def test_the_fake_starts_again_on_a_later_event_loop() -> None:
    """start() after stop() serves again on a new loop, keeping its state and hang faults."""
    fake = FakeTwoChat(API_KEY)

    async def serve_once() -> str:
        async with aiohttp.ClientSession() as http:
            async with fake as base_url:
                async with TwoChatSession(API_KEY, base_url=base_url) as chat:
                    number = (await chat.reserve("abc-123")).number
                fake.script(Reply(fault="hang"))
                # A POST: aiohttp re-sends a GET once when the server disconnects.
                sent = fake.calls["POST " + RESERVATIONS] + 1
                hanging = asyncio.create_task(http.post(base_url + RESERVATIONS, data=b"{}"))
                await fake.received("POST " + RESERVATIONS, count=sent)
                assert not hanging.done()  # held until stop()
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await hanging
        return number

    assert asyncio.run(serve_once()) == "+12135551234"
    assert asyncio.run(serve_once()) == "+12135551235"
    assert len(fake.reservations) == 2


# -- ManualClock ----------------------------------------------------------------------------


def test_manual_clock_stands_still_until_moved() -> None:
    """ManualClock shows the time it was given until advanced or set; it refuses naive times."""
    clock = ManualClock(T0)
    assert (clock(), clock()) == (T0, T0)
    assert T0 + timedelta(minutes=90) == clock.advance(timedelta(minutes=90))
    assert T0 + timedelta(minutes=90) == clock()
    clock.now = T0
    assert clock() == T0
    assert repr(clock) == "<ManualClock 2024-01-15T10:30:00+00:00>"
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2024, 1, 15))


def test_manual_clock_starts_at_the_current_time() -> None:
    """Without a start, ManualClock shows the current time, aware and in UTC."""
    before = datetime.now(timezone.utc)
    shown = ManualClock()()
    assert before <= shown <= datetime.now(timezone.utc)
    assert timezone.utc == shown.tzinfo
