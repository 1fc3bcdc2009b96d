"""FakeTwoChat's fault injection: budget, latency, scripted replies that act, defaults."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from conftest import API_KEY

from twochat_async.testing import FakeTwoChat, Reply

HEADERS = {"X-User-API-Key": API_KEY}


async def test_budget_answers_429_with_retry_after(fake: FakeTwoChat) -> None:
    """Beyond its budget the fake answers 429 in 2Chat's envelope with a Retry-After."""
    fake.set_budget(2, per=60)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.get(f"{fake.base_url}/open/numbers/did-types", headers=HEADERS) as r:
                statuses.append(r.status)
                last = await r.json(), r.headers.get("Retry-After")
    assert statuses == [200, 200, 429]
    body, retry_after = last
    assert body["success"] is False
    assert body["error_message"]
    assert retry_after is not None
    assert int(retry_after) >= 1
    assert fake.rate_limited == 1


async def test_budget_refills_over_time(fake: FakeTwoChat) -> None:
    """A per-second budget lets requests through again once tokens refill."""
    fake.set_budget(1, per=0.2)
    async with aiohttp.ClientSession() as http:
        url = f"{fake.base_url}/open/numbers/did-types"
        async with http.get(url, headers=HEADERS) as first:
            assert first.status == 200
        async with http.get(url, headers=HEADERS) as second:
            assert second.status == 429
        await asyncio.sleep(0.25)
        async with http.get(url, headers=HEADERS) as third:
            assert third.status == 200
    fake.set_budget(None)
    assert fake.rate_limited == 1


async def test_latency_delays_every_answer(fake: FakeTwoChat) -> None:
    """latency adds its seconds before each answer."""
    fake.latency = 0.2
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.get(f"{fake.base_url}/open/numbers/did-types", headers=HEADERS) as r:
            assert r.status == 200
    assert time.monotonic() - started >= 0.18


async def test_reply_with_handle_acts_before_answering(fake: FakeTwoChat) -> None:
    """Reply(handle=True) makes the reservation, then answers the scripted 500 instead."""
    fake.script(Reply(500, handle=True))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{fake.base_url}/open/numbers/reservations",
            json={"group_id": "abc-123"},
            headers=HEADERS,
        ) as r,
    ):
        assert r.status == 500
        body = await r.json()
    assert body == {"success": False, "error": True, "error_message": "Scripted error 500"}
    assert len(fake.active_reservations()) == 1


async def test_reply_without_handle_changes_nothing(fake: FakeTwoChat) -> None:
    """A plain scripted reply answers instead of the fake: no reservation is made."""
    fake.script(Reply(201))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{fake.base_url}/open/numbers/reservations",
            json={"group_id": "abc-123"},
            headers=HEADERS,
        ) as r,
    ):
        assert await r.json() == {"success": True}
    assert fake.active_reservations() == []


async def test_info_reports_the_configured_limit() -> None:
    """requests_per_minute sets what GET /open/info reports."""
    fake = FakeTwoChat(API_KEY, requests_per_minute=30)
    async with (
        fake as base_url,
        aiohttp.ClientSession() as http,
        http.get(f"{base_url}/open/info", headers=HEADERS) as r,
    ):
        body = await r.json()
    assert body["limits"] == {"requests_per_minute": 30}
