"""Answers that are large, deep or strange, over real HTTP: refused in time, never frozen.

Each test serves one body from an aiohttp.web handler on 127.0.0.1 while a ticker task
records how long the event loop went without running it.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from conftest import API_KEY, serve

from twochat_async import (
    APIError,
    InvalidResponseError,
    ServerError,
    TwoChatError,
    TwoChatSession,
)
from twochat_async._transport import MAX_RESPONSE_BYTES

#: The most CPU time the event loop's thread may spend without running another task while
#: an answer is read. Before the fix a 1 MB answer of empty records froze it for 25 s; the
#: work now takes a few tenths of a second. Counted in the thread's CPU time, not the
#: wall clock's, so that other processes on a busy machine do not count.
MAX_STALL = 2.0

#: The longest an error message may be, whatever the answer.
MAX_MESSAGE = 2000


@asynccontextmanager
async def answering(status: int, body: bytes) -> AsyncIterator[TwoChatSession]:
    """A session on a server that answers every request with ``status`` and ``body``."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    async with (
        serve(handler) as base_url,
        TwoChatSession(API_KEY, base_url=base_url, max_retries=0, timeout=30) as chat,
    ):
        yield chat


async def stall_of(call: Awaitable[Any]) -> tuple[float, Any]:
    """Await ``call`` beside a ticker; return the most CPU time the loop's thread spent
    between two ticks, and the outcome (the result, or the exception raised)."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.thread_time()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)  # the ticker runs before the request starts
    try:
        outcome: Any = await call
    except Exception as exc:
        outcome = exc
    stop.set()
    await ticker
    return max(gaps), outcome


def regions(items: bytes, count: int) -> bytes:
    """A Search Regions answer whose list repeats ``items`` ``count`` times."""
    return b'{"success": true, "data": {"regions": [' + b",".join([items] * count) + b"]}}"


def sized(items: bytes, size: int) -> bytes:
    """A Search Regions answer of about ``size`` bytes, and within the cap."""
    body = regions(items, max(1, size // (len(items) + 1)))
    assert len(body) <= MAX_RESPONSE_BYTES
    return body


FOUR_MIB = MAX_RESPONSE_BYTES - 100


@pytest.mark.parametrize(
    ("items", "size"),
    [(b"{}", 1_000_000), (b"{}", FOUR_MIB), (b'{"id": "1", "region_name": 2}', FOUR_MIB)],
    ids=["1MB of empty records", "4MiB of empty records", "4MiB of wrong types"],
)
async def test_an_answer_of_bad_records_is_refused_at_once_with_a_short_message(
    items: bytes, size: int
) -> None:
    """The first few field errors and a count of the rest; no stall, no huge message."""
    body = sized(items, size)
    async with answering(200, body) as chat:
        stall, error = await stall_of(chat.regions("US"))
    assert isinstance(error, InvalidResponseError)
    message = str(error)
    assert len(message) < MAX_MESSAGE, message[:300]
    assert "@ $.data.regions[0]." in message
    assert "more field errors" in message
    items_sent = body.count(items)
    assert f"{items_sent - 5} more items not checked" in message
    assert stall < MAX_STALL


async def test_a_large_valid_answer_is_decoded_without_stalling_the_loop() -> None:
    """4 MiB of valid regions come back whole, and the loop keeps running meanwhile."""
    item = b'{"id": 7, "region_name": "California", "iso_country_code": "US"}'
    body = sized(item, FOUR_MIB)
    async with answering(200, body) as chat:
        stall, found = await stall_of(chat.regions("US"))
    assert isinstance(found, list)
    assert len(found) == body.count(item)
    assert {(r.id, r.name, r.country) for r in found} == {(7, "California", "US")}
    assert stall < MAX_STALL


@pytest.mark.parametrize("escaped", [False, True], ids=["raw", "escaped"])
async def test_an_answer_full_of_the_key_is_scrubbed_without_stalling_the_loop(
    escaped: bool,
) -> None:
    """4 MiB of records echoing the key (as is, or in JSON escapes): scrubbed, in time."""
    shown = "".join(f"\\u{ord(c):04x}" for c in API_KEY) if escaped else API_KEY
    item = f'{{"id": 7, "region_name": "{shown}", "iso_country_code": "US"}}'.encode()
    body = sized(item, FOUR_MIB)
    async with answering(200, body) as chat:
        stall, found = await stall_of(chat.regions("US"))
    assert isinstance(found, list)
    assert len(found) == body.count(item)
    assert {r.name for r in found} == {"***"}
    assert stall < MAX_STALL


DEEP = 100_000


@pytest.mark.parametrize("status", [200, 201, 400, 500])
@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b'{"success": true, "data": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}",
        b'{"success": false, "x": ' + b"[" * 65 + b"]" * 65 + b"}",
    ],
    ids=["100k-deep array", "100k-deep objects", "65 deep"],
)
async def test_a_deeply_nested_answer_is_a_twochat_error_that_pickles(
    status: int, body: bytes
) -> None:
    """No RecursionError, whatever the status: a TwoChatError, which crosses a process."""
    async with answering(status, body) as chat:
        stall, error = await stall_of(chat.reservations())
    expected = InvalidResponseError if status < 300 else APIError
    assert isinstance(error, expected)
    if status < 300:
        assert "nested deeper than 64 levels" in str(error)
    else:
        assert isinstance(error, ServerError) == (status >= 500)
        assert "non-JSON body" in str(error)
    assert len(str(error)) < MAX_MESSAGE
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own
    assert (type(copy), str(copy)) == (type(error), str(error))
    assert stall < MAX_STALL


async def test_an_answer_nested_64_deep_is_read() -> None:
    """The limit refuses only what is deeper than any answer of 2Chat's could be."""
    body = b'{"success": true, "x": ' + b"[" * 63 + b"]" * 63 + b"}"
    async with answering(201, body) as chat:
        bought = await chat.purchase("abc-123")
    value: Any = bought.details["x"]
    depth = 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == 63


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (b"NaN", "NaN, which JSON does not allow"),
        (b"-Infinity", "-Infinity, which JSON does not allow"),
        (b"1e400", "the number '1e400', beyond a float's range"),
        (b"1" * 5000, "an integer too long to read"),
    ],
    ids=["NaN", "-Infinity", "1e400", "5000 digits"],
)
async def test_a_number_json_does_not_allow_is_refused(value: bytes, shown: str) -> None:
    """NaN, Infinity, a float past its range and an endless integer: InvalidResponseError."""
    body = b'{"success": true, "limits": {"requests_per_minute": ' + value + b"}}"
    async with answering(200, body) as chat:
        with pytest.raises(InvalidResponseError) as info:
            await chat.info()
    assert f"2Chat answered 200 OK with JSON holding {shown}" in str(info.value)
    assert len(str(info.value)) < MAX_MESSAGE


@pytest.mark.parametrize(
    "flag",
    [b'"success": "false"', b'"success": 0', b'"success": null', b'"message": "cancelled"'],
    ids=["string", "zero", "null", "missing"],
)
async def test_a_cancel_is_done_only_when_success_is_json_true(flag: bytes) -> None:
    """A 200 to a cancel whose success flag is not true raises, never reads as done."""
    async with answering(200, b"{" + flag + b"}") as chat:
        with pytest.raises(InvalidResponseError, match='"success" flag'):
            await chat.cancel_reservation("3f1c2b7e-0d9a-4c55-9a1e-2b6f0c8d4e11")
    async with answering(200, b'{"success": true, "message": "cancelled"}') as chat:
        assert await chat.cancel_reservation("3f1c2b7e-0d9a-4c55-9a1e-2b6f0c8d4e11") is None


async def test_every_decoding_failure_is_a_twochat_error() -> None:
    """Odd answers to each kind of call: each failure is a TwoChatError, never a raw one."""
    odd: list[bytes] = [
        b'{"success": true, "data": {"regions": "' + b"x" * 100_000 + b'"}}',
        b'{"success": true, "data": {"regions": {"0": {}}}}',
        b'{"success": true, "data": [' + b"{}," * 10_000 + b"{}]}",
        b'{"success": true, "data": {"reservations": [' + b"1," * 10_000 + b"1]}}",
        b'{"success": true, "data": {"groups": [' + b'{"price": []},' * 10_000 + b"{}]}}",
    ]
    calls: list[Callable[[TwoChatSession], Awaitable[Any]]] = [
        lambda chat: chat.regions("US"),
        lambda chat: chat.regions("US"),
        lambda chat: chat.reservations(),
        lambda chat: chat.reservations(),
        lambda chat: chat.groups("US"),
    ]
    for body, call in zip(odd, calls, strict=True):
        async with answering(200, body) as chat:
            with pytest.raises(TwoChatError) as info:
                await call(chat)
        assert isinstance(info.value, InvalidResponseError)
        assert len(str(info.value)) < MAX_MESSAGE
        json.dumps(str(info.value))  # a plain, printable message


async def test_a_huge_error_message_is_shown_cut_and_kept_whole() -> None:
    """A 1 MB error_message: str() shows its start and its length; .message keeps it all."""
    text = "No credits. " * 90_000
    body = json.dumps({"success": False, "error_message": text}).encode()
    async with answering(402, body) as chat:
        with pytest.raises(APIError) as info:
            await chat.reserve("abc-123")
    assert info.value.message == text
    shown = str(info.value)
    assert len(shown) < MAX_MESSAGE
    assert shown.startswith("HTTP 402 (POST /open/numbers/reservations): No credits. No")
    assert shown.endswith(f"… ({len(text):,} characters in all)")
