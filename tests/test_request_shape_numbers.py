"""Pins the exact HTTP request of every Numbers API method of TwoChatSession."""

from __future__ import annotations

import platform
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY, BridgedAioresponses
from yarl import URL

import twochat_async
from twochat_async import TwoChatSession

BASE = "https://api.p.2chat.io"
ANY_URL = re.compile(r"https://api\.p\.2chat\.io/.*")

GET_HEADERS = {
    "X-User-API-Key": API_KEY,
    "Accept": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": (
        f"twochat-async/{twochat_async.__version__} aiohttp/{aiohttp.__version__} "
        f"python/{platform.python_version()}"
    ),
}
POST_HEADERS = {**GET_HEADERS, "Content-Type": "application/json"}

# An answer every method can decode: each list endpoint finds its key in data.
EVERYTHING = {
    "success": True,
    "data": {
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

Call = Callable[[TwoChatSession], Awaitable[Any]]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test without the SDK's environment variables, whatever the shell has."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)


async def send(mocked: BridgedAioresponses, call: Call, status: int = 200) -> Any:
    """Answer every request with EVERYTHING, run ``call`` on a session, return its result."""
    for method in ("GET", "POST", "DELETE"):
        mocked.add(ANY_URL, method=method, status=status, payload=EVERYTHING, repeat=True)
    async with TwoChatSession(API_KEY) as chat:
        return await call(chat)


def only_request(mocked: BridgedAioresponses) -> tuple[str, URL, dict[str, Any]]:
    """Return the method, URL (query included) and keyword arguments of the one request."""
    (((method, url), calls),) = mocked.requests.items()
    assert len(calls) == 1
    return method, url, calls[0].kwargs


# -- method, path and query of each GET ----------------------------------------------------


@pytest.mark.parametrize(
    ("call", "url", "params"),
    [
        (
            lambda c: c.regions("us"),
            "/open/numbers/regions?country=US",
            {"country": "US"},
        ),
        (
            lambda c: c.cities("US"),
            "/open/numbers/cities?country=US",
            {"country": "US"},
        ),
        (
            lambda c: c.cities("US", region_id=123),
            "/open/numbers/cities?country=US&region=123",
            {"country": "US", "region": "123"},
        ),
        (lambda c: c.did_types(), "/open/numbers/did-types", {}),
        (
            lambda c: c.groups("US"),
            "/open/numbers/groups?country=US",
            {"country": "US"},
        ),
        (
            lambda c: c.groups(
                "US", region_id=123, city_id=456, city_name_or_prefix="Los", did_type="local"
            ),
            "/open/numbers/groups?city_id=456&city_name_or_prefix=Los&country=US"
            "&did_type=local&region_id=123",
            {
                "country": "US",
                "region_id": "123",
                "city_id": "456",
                "city_name_or_prefix": "Los",
                "did_type": "local",
            },
        ),
        (
            lambda c: c.groups("US", did_type="tollfree"),
            "/open/numbers/groups?country=US&did_type=tollfree",
            {"country": "US", "did_type": "tollfree"},
        ),
        (
            lambda c: c.available_numbers("abc-123"),
            "/open/numbers/available?group_id=abc-123",
            {"group_id": "abc-123"},
        ),
        (
            lambda c: c.available_numbers("abc-123", number_contains="555"),
            "/open/numbers/available?group_id=abc-123&number_contains=555",
            {"group_id": "abc-123", "number_contains": "555"},
        ),
        (
            lambda c: c.requirements("de"),
            "/open/numbers/requirements?country=DE",
            {"country": "DE"},
        ),
        (
            lambda c: c.requirements("DE", did_type=1),
            "/open/numbers/requirements?country=DE&did_type=1",
            {"country": "DE", "did_type": "1"},
        ),
        (lambda c: c.reservations(), "/open/numbers/reservations", {}),
        (lambda c: c.info(), "/open/info", {}),
    ],
    ids=[
        "regions",
        "cities",
        "cities-region",
        "did-types",
        "groups",
        "groups-all-filters",
        "groups-did-type",
        "available",
        "available-contains",
        "requirements",
        "requirements-did-type-int",
        "reservations",
        "info",
    ],
)
async def test_get_request(
    mocked: BridgedAioresponses, call: Call, url: str, params: dict[str, str]
) -> None:
    """Each GET method sends one request to its path with exactly its query, no body."""
    await send(mocked, call)
    method, sent_url, kwargs = only_request(mocked)
    assert ("GET", URL(BASE + url)) == (method, sent_url)
    assert params == dict(kwargs["params"] or {})
    assert kwargs["data"] is None
    assert kwargs.get("json") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.regions("US"),
        lambda c: c.cities("US", region_id=1),
        lambda c: c.did_types(),
        lambda c: c.groups("US", did_type="all"),
        lambda c: c.available_numbers("abc-123"),
        lambda c: c.requirements("DE", did_type=1),
        lambda c: c.reservations(),
        lambda c: c.info(),
        lambda c: c.cancel_reservation("reservation-uuid-here"),
    ],
    ids=[
        "regions",
        "cities",
        "did-types",
        "groups",
        "available",
        "requirements",
        "reservations",
        "info",
        "cancel",
    ],
)
async def test_bodiless_requests_carry_the_key_and_no_content_type(
    mocked: BridgedAioresponses, call: Call
) -> None:
    """GET and DELETE send the key, Accept and User-Agent, and no Content-Type."""
    await send(mocked, call)
    _, _, kwargs = only_request(mocked)
    assert dict(kwargs["headers"]) == GET_HEADERS
    assert "Content-Type" not in kwargs["headers"]


async def test_cities_sends_region_not_region_id(mocked: BridgedAioresponses) -> None:
    """cities(region_id=...) sends the wire key region, never region_id."""
    await send(mocked, lambda c: c.cities("US", region_id=123))
    _, url, _ = only_request(mocked)
    assert url.query.get("region") == "123"
    assert "region_id" not in url.query


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.cities("US", region_id=None),
        lambda c: c.groups(
            "US", region_id=None, city_id=None, city_name_or_prefix=None, did_type=None
        ),
        lambda c: c.available_numbers("abc-123", number_contains=None),
        lambda c: c.requirements("DE", did_type=None),
    ],
    ids=["cities", "groups", "available", "requirements"],
)
async def test_none_filters_are_left_out_of_the_query(
    mocked: BridgedAioresponses, call: Call
) -> None:
    """Optional filters passed as None do not appear in the query string at all."""
    await send(mocked, call)
    _, url, _ = only_request(mocked)
    assert [key for key in url.query if key not in ("country", "group_id")] == []
    assert "None" not in url.raw_query_string


async def test_query_values_are_url_encoded(mocked: BridgedAioresponses) -> None:
    """A city name with spaces, '&' and non-ASCII letters is encoded and round-trips."""
    await send(mocked, lambda c: c.groups("BR", city_name_or_prefix="São Paulo & Co"))
    _, url, kwargs = only_request(mocked)
    expected = URL(
        BASE + "/open/numbers/groups?city_name_or_prefix=S%C3%A3o+Paulo+%26+Co&country=BR"
    )
    assert expected == url
    assert dict(url.query) == {"country": "BR", "city_name_or_prefix": "São Paulo & Co"}
    assert kwargs["params"] == {"country": "BR", "city_name_or_prefix": "São Paulo & Co"}


# -- DELETE --------------------------------------------------------------------------------


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
    mocked: BridgedAioresponses, uuid: str, raw_path: str
) -> None:
    """cancel_reservation() DELETEs /open/numbers/reservations/<uuid>, uuid percent-encoded."""
    assert await send(mocked, lambda c: c.cancel_reservation(uuid)) is None
    method, url, kwargs = only_request(mocked)
    assert ("DELETE", URL(BASE + raw_path)) == (method, url)
    assert url.raw_path == raw_path
    assert url.raw_query_string == ""
    assert kwargs["data"] is None


# -- POST purchase -------------------------------------------------------------------------


async def test_purchase_body_without_number(mocked: BridgedAioresponses) -> None:
    """purchase(group) POSTs exactly the compact JSON of group_id, never "number": null."""
    await send(mocked, lambda c: c.purchase("abc-123"), status=201)
    method, url, kwargs = only_request(mocked)
    assert ("POST", URL(BASE + "/open/numbers/purchase")) == (method, url)
    assert kwargs["data"] == b'{"group_id":"abc-123"}'
    assert b"null" not in kwargs["data"]
    assert kwargs.get("json") is None
    assert kwargs.get("params") is None


async def test_purchase_body_with_number(mocked: BridgedAioresponses) -> None:
    """purchase(group, number) POSTs exactly group_id then number."""
    await send(mocked, lambda c: c.purchase("abc-123", "+12135551234"), status=201)
    _, _, kwargs = only_request(mocked)
    assert kwargs["data"] == b'{"group_id":"abc-123","number":"+12135551234"}'


async def test_purchase_headers(mocked: BridgedAioresponses) -> None:
    """The purchase POST carries the key and the JSON Content-Type."""
    await send(mocked, lambda c: c.purchase("abc-123"), status=201)
    _, _, kwargs = only_request(mocked)
    assert dict(kwargs["headers"]) == POST_HEADERS


async def test_purchase_keeps_everything_but_success(mocked: BridgedAioresponses) -> None:
    """The Purchase's details hold every top-level field of the answer except success."""
    body = {"success": True, "message": "done", "data": {"order": 7}}
    mocked.post(BASE + "/open/numbers/purchase", status=201, payload=body)
    async with TwoChatSession(API_KEY) as chat:
        purchase = await chat.purchase("abc-123", "+12135551234")
    assert purchase.details == {"message": "done", "data": {"order": 7}}
    assert purchase.group_id == "abc-123"
    assert purchase.number == "+12135551234"
