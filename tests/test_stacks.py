"""The SDK in the stacks users run: records as JSON (FastAPI, Celery), purchase(reservation),
per-call options and aiohttp tracing on the SDK's own pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY, fake_in_thread, refusal

from twochat_async import (
    APITimeoutError,
    NumberGroup,
    RateLimit,
    Record,
    Reservation,
    TwoChatError,
    TwoChatSession,
)
from twochat_async.testing import FakeTwoChat, Reply

# -- to_dict() / from_dict() ------------------------------------------------------------------


async def one_of_each(chat: TwoChatSession) -> list[Record]:
    """A record of every kind, as the SDK builds them from the fake's answers."""
    (group, *_) = await chat.groups("US", region_id=123)
    reservation = await chat.reserve(group.id)
    return [
        reservation,
        group,
        (await chat.regions("US"))[0],
        (await chat.cities("US", region_id=123))[0],
        (await chat.did_types())[0],
        (await chat.available_numbers(group.id))[0],
        await chat.purchase(reservation),
        RateLimit(80, burst=3),
        await chat.info(),
    ]


def built_ins(value: Any) -> Iterator[Any]:
    """Every value inside a JSON-ready structure, containers included."""
    yield value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        yield from built_ins(item)


async def test_every_record_becomes_json_ready_built_ins_and_back(chat: TwoChatSession) -> None:
    """to_dict() holds only JSON's types, survives json.dumps/loads, and from_dict() gives
    back an equal record: each of the nine kinds."""
    records = await one_of_each(chat)
    assert len({type(r) for r in records}) == 9
    for record in records:
        data = record.to_dict()
        kinds = {type(v) for v in built_ins(data)}
        assert kinds <= {dict, list, str, int, float, bool, type(None)}, (record, kinds)
        assert type(record).from_dict(json.loads(json.dumps(data))) == record


async def test_datetimes_end_in_z_and_money_is_an_exact_string(chat: TwoChatSession) -> None:
    """2Chat's own forms: ``...Z`` (not ``+00:00``) and "3.50" (not 3.5, not a float)."""
    reservation, group, *_ = await one_of_each(chat)
    assert isinstance(reservation, Reservation)
    assert isinstance(group, NumberGroup)
    data = reservation.to_dict()
    assert data["expires_at"].endswith("Z")
    assert "+00:00" not in data["expires_at"]
    assert data["group_id"] == group.id
    prices = group.to_dict()
    assert prices["monthly_price"] == str(group.monthly_price)
    assert Decimal(prices["monthly_price"]) == group.monthly_price
    assert prices["features"] == sorted(group.features)


def test_from_dict_names_each_bad_field() -> None:
    """A bad dict is a ValueError naming the record and each field's JSON path."""
    with pytest.raises(ValueError, match=r"Not a valid Reservation: .*\$\.created_at") as bad:
        Reservation.from_dict(
            {"uuid": "u", "number": "+12135551234", "created_at": 3, "expires_at": "x"}
        )
    assert "$.expires_at" in str(bad.value)
    with pytest.raises(ValueError, match="per_minute"):
        RateLimit.from_dict({"per_minute": 0})
    with pytest.raises(ValueError, match="takes a dict"):
        Reservation.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]


async def test_a_celery_style_json_round_trip_carries_a_reservation_to_a_task(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """The web process reserves and sends the reservation as JSON (Celery's default
    serializer); the task rebuilds it and buys it with purchase(reservation)."""
    (group, *_) = await chat.groups("US", region_id=123)
    reservation = await chat.reserve(group.id)
    message = json.dumps({"args": [reservation.to_dict()], "kwargs": {}})  # what the broker holds

    arrived = Reservation.from_dict(json.loads(message)["args"][0])
    bought = await chat.purchase(arrived)
    assert (bought.group_id, bought.number) == (group.id, reservation.number)
    assert fake.calls["POST /open/numbers/purchase"] == 1
    assert fake.reservations == {}  # bought: no longer held


# -- purchase(reservation) --------------------------------------------------------------------


async def test_purchase_of_a_listed_reservation_says_what_is_missing(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """reservations() does not say a reservation's group: purchase(it) is a ValueError
    saying to pass the group, and nothing is sent; a number beside one is refused too."""
    (group, *_) = await chat.groups("US", region_id=123)
    made = await chat.reserve(group.id)
    (listed,) = await chat.reservations()
    assert listed.group_id is None
    with pytest.raises(ValueError, match=r"purchase\(group_id, reservation\.number\)"):
        await chat.purchase(listed)
    with pytest.raises(ValueError, match="pass no number"):
        await chat.purchase(made, "+12135550000")
    assert "POST /open/numbers/purchase" not in fake.calls
    await chat.purchase(group.id, listed.number)  # as the message says
    assert fake.calls["POST /open/numbers/purchase"] == 1


# -- with_options() ---------------------------------------------------------------------------


async def test_with_options_gives_some_calls_their_own_timeout(fake: FakeTwoChat) -> None:
    """A 2 s deadline for a web handler's call, 30 s for the rest, on one session."""
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=30) as chat:
        quick = chat.with_options(timeout=0.5)
        fake.script(Reply(200, json={"success": True, "data": {"did_types": []}}, delay=2))
        with pytest.raises(APITimeoutError):
            await quick.with_options(max_retries=0).did_types()
        fake.script(Reply(200, json={"success": True, "data": {"did_types": []}}, delay=1))
        assert await chat.did_types() == []  # the session's own 30 s


async def test_with_options_sets_retries_and_shares_pool_limiter_and_state(
    fake: FakeTwoChat,
) -> None:
    """max_retries=0 on the view only; the view's calls go through the session's pool;
    closing the view leaves the session open, closing the session closes both."""
    created: list[object] = []
    traces = aiohttp.TraceConfig()

    async def connected(*_: Any) -> None:
        created.append(1)

    traces.on_connection_create_end.append(connected)
    async with TwoChatSession(
        API_KEY, base_url=fake.base_url, max_retries=2, trace_configs=[traces]
    ) as chat:
        once = chat.with_options(max_retries=0)
        fake.script(refusal(503, "busy"))
        with pytest.raises(TwoChatError):
            await once.did_types()
        assert fake.calls["GET /open/numbers/did-types"] == 1
        fake.script(refusal(503, "busy"))
        await chat.did_types()  # retried
        assert fake.calls["GET /open/numbers/did-types"] == 3
        await once.close()
        assert not chat.closed
        assert not once.closed
        await once.did_types()
    assert chat.closed
    assert once.closed
    assert len(created) == 1  # one pool: every call above, the view's too, on one connection
    with pytest.raises(TwoChatError, match="closed"):
        await once.did_types()


def test_with_options_checks_its_arguments(chat: TwoChatSession) -> None:
    """Bad values are ValueErrors naming the option, before any call."""
    with pytest.raises(ValueError, match="timeout"):
        chat.with_options(timeout=-1)
    with pytest.raises(ValueError, match="max_retries"):
        chat.with_options(max_retries=1000)


# -- trace_configs ----------------------------------------------------------------------------


async def test_trace_configs_see_each_request_of_the_sdks_own_pool(fake: FakeTwoChat) -> None:
    """aiohttp's request hooks on the pool the session makes: one start and one end per
    request, with its method, path and status."""
    seen: list[tuple[str, str, str, int | None]] = []
    traces = aiohttp.TraceConfig()

    async def start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(("start", params.method, params.url.path, None))

    async def end(_: Any, __: Any, params: aiohttp.TraceRequestEndParams) -> None:
        seen.append(("end", params.method, params.url.path, params.response.status))

    traces.on_request_start.append(start)
    traces.on_request_end.append(end)
    async with TwoChatSession(API_KEY, base_url=fake.base_url, trace_configs=[traces]) as chat:
        await chat.did_types()
        await chat.with_options(timeout=5).regions("US")
    assert seen == [
        ("start", "GET", "/open/numbers/did-types", None),
        ("end", "GET", "/open/numbers/did-types", 200),
        ("start", "GET", "/open/numbers/regions", None),
        ("end", "GET", "/open/numbers/regions", 200),
    ]


async def test_trace_configs_are_refused_with_a_borrowed_session_or_a_wrong_type() -> None:
    """A borrowed http_session keeps its own tracing; a non-TraceConfig is a ValueError."""
    async with aiohttp.ClientSession() as borrowed:
        with pytest.raises(ValueError, match="trace_configs"):
            TwoChatSession(API_KEY, http_session=borrowed, trace_configs=[aiohttp.TraceConfig()])
    with pytest.raises(ValueError, match="trace_configs"):
        TwoChatSession(API_KEY, trace_configs=["not a trace config"])  # type: ignore[list-item]


# -- FastAPI ----------------------------------------------------------------------------------


def test_a_fastapi_route_returns_a_reservation_as_json() -> None:
    """Through FastAPI's test client, the session opened in the app's lifespan:
    ``return reservation.to_dict()``, and the docs' response_model recipe, both answer
    2Chat's own forms (``Z``, exact prices)."""
    fastapi = pytest.importorskip("fastapi", reason="needs the examples extra")
    pytest.importorskip("httpx2", reason="needs the examples extra (FastAPI's test client)")
    from contextlib import asynccontextmanager

    from fastapi.testclient import TestClient
    from pydantic import BaseModel

    class ReservationOut(BaseModel):
        uuid: str
        number: str
        created_at: str
        expires_at: str
        group_id: str | None = None

    with fake_in_thread() as fake:
        sessions: dict[str, TwoChatSession] = {}

        @asynccontextmanager
        async def lifespan(_: Any) -> Any:
            async with TwoChatSession(API_KEY, base_url=fake.base_url) as sessions["chat"]:
                yield

        app = fastapi.FastAPI(lifespan=lifespan)

        @app.post("/numbers/{group_id}")
        async def reserve(group_id: str) -> dict[str, Any]:
            return (await sessions["chat"].reserve(group_id)).to_dict()

        @app.post("/typed/{group_id}", response_model=ReservationOut)
        async def typed(group_id: str) -> dict[str, Any]:
            return (await sessions["chat"].reserve(group_id)).to_dict()

        @app.get("/groups")
        async def groups() -> list[dict[str, Any]]:
            found = await sessions["chat"].groups("US", region_id=123)
            return [group.to_dict() for group in found]

        with TestClient(app) as client:
            answers = [client.post("/numbers/abc-123"), client.post("/typed/abc-123")]
            listed = client.get("/groups")
        held = len(fake.reservations)
    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["expires_at"].endswith("Z")
        assert Reservation.from_dict(body).group_id == "abc-123"
    assert listed.json()[0]["monthly_price"] == "3.50"
    assert held == 2  # each request reserved once, and answered


@pytest.mark.slow
async def test_the_clis_json_is_the_records_to_dict(chat: TwoChatSession) -> None:
    """`twochat --json groups` prints exactly what to_dict() gives (one conversion)."""
    import sys

    command = ["-m", "twochat_async", "--fake", "--json", "groups", "US", "--region-id", "123"]
    printed = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await printed.communicate()
    assert printed.returncode == 0
    groups = await chat.groups("US", region_id=123)
    assert json.loads(out) == [group.to_dict() for group in groups]


def test_the_changelogs_newest_release_is_the_packages_version() -> None:
    """CHANGELOG.md's first versioned section is the version the package says it is."""
    import re
    from pathlib import Path

    from twochat_async import __version__

    text = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)
    assert releases[0] == __version__
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))), reverse=True)


def test_a_set_field_takes_a_json_array_only() -> None:
    """features as a string is refused, not taken letter by letter (to_dict gives a list)."""
    data = {
        **{"id": "g", "prefix": "+1", "location": "LA", "type": "local"},
        **{"setup_price": "0.00", "monthly_price": "3.50", "features": "voice"},
    }
    with pytest.raises(ValueError, match=r"expected a list, got str @ \$\.features"):
        NumberGroup.from_dict(data)
    assert NumberGroup.from_dict(data | {"features": ["voice"]}).features == {"voice"}
