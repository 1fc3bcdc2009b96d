"""The transport over real loopback sockets: what is sent, the key, ``request_sent``, reading,
the pool, retries and the rate limiter in the request loop.

Where FakeTwoChat cannot misbehave the way a test needs (a broken status line, a stalled
TLS handshake, a gzip bomb), a raw asyncio server on 127.0.0.1 plays 2Chat.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import logging
import os
import platform
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import time
import traceback
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from conftest import (
    API_KEY,
    BridgedAioresponses,
    Watched,
    envelope,
    free_port,
    refusal,
    serve,
    until,
)
from multidict import CIMultiDictProxy

import twochat_async
from twochat_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    RateLimit,
    RateLimitError,
    ServerError,
    TwoChatError,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async._limit import RateLimiter
from twochat_async._transport import MAX_RESPONSE_BYTES
from twochat_async.testing import FakeGroup, FakeTwoChat, Reply

# Long and varied, so that a 12-character piece of it cannot occur by chance.
KEY = "sk-live-9f3Q7xZ2mK8pL4vR1tW6yB0nC5hJ"

# -- a raw 2Chat stand-in -----------------------------------------------------------------

RawReply = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback TCP server that reads one HTTP request per connection, then ``reply``.

    ``{key}`` in a reply stands for the ``X-User-API-Key`` the request carried: the server
    echoes the secret back, the way a misbehaving server or proxy might.
    """

    def __init__(self, reply: RawReply | None) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        # Python 3.10 and 3.11 do not wait for the connections' handlers: one still
        # reading a socket the client is closing would be destroyed with the loop.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.reply is None:  # accept, then say nothing (a stalled TLS handshake)
                await reader.read()
                return
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            request = head + (await reader.readexactly(length) if length else b"")
            self.requests.append(request)
            await self.reply(request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


def key_of(request: bytes) -> bytes:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"x-user-api-key":
            return value.strip()
    raise AssertionError("the request carried no API key")


def json_escaped(key: bytes, every: int = 1) -> bytes:
    """Return ``key`` with every ``every``-th character written as a JSON ``\\uXXXX`` escape."""
    return b"".join(
        b"\\u%04x" % char if i % every == 0 else bytes([char]) for i, char in enumerate(key)
    )


def filled(template: bytes, key: bytes) -> bytes:
    """Return ``template`` with ``{key}``, ``{ukey}`` and ``{halfkey}`` (see `send`) filled."""
    return (
        template.replace(b"{key}", key)
        .replace(b"{ukey}", json_escaped(key))
        .replace(b"{halfkey}", json_escaped(key, 2))
    )


def send(template: bytes) -> RawReply:
    """Reply with ``template``, then close: ``{key}`` is replaced by the request's key,
    ``{ukey}`` by it in JSON escapes, ``{halfkey}`` by it with every other one escaped."""

    async def reply(request: bytes, reader: asyncio.StreamReader, writer: Any) -> None:
        writer.write(filled(template, key_of(request)))
        await writer.drain()

    return reply


async def hang(request: bytes, reader: asyncio.StreamReader, writer: Any) -> None:
    """Read the request, then never answer."""
    await reader.read()


def response(status: str, body: bytes, *headers: str) -> bytes:
    """An HTTP/1.1 answer whose Content-Length fits ``body`` once `filled`."""
    length = len(filled(body, KEY.encode()))
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {length}", "", ""]
    return "\r\n".join(lines).encode() + body


# -- the key is in nothing the SDK raises ------------------------------------------------


def leaks(text: str, key: str = KEY) -> list[str]:
    """Return the pieces of ``key`` of 12 characters or more that ``text`` holds, as it is
    or once its escapes (``\\u0073``, as JSON and ``repr()`` write them) are read."""
    readings = [text]
    for _ in range(2):  # a repr() of JSON text: escapes twice over
        try:
            readings.append(
                readings[-1].encode("utf-8", "backslashreplace").decode("unicode_escape")
            )
        except UnicodeDecodeError:
            break
    return [
        key[i : i + 12]
        for i in range(len(key) - 11)
        if any(key[i : i + 12] in reading for reading in readings)
    ]


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__]


def assert_clean(exc: BaseException) -> None:
    """Assert that no piece of the key is in ``exc``, its chain, or any recorded local."""
    for item in chain(exc):
        for text in (str(item), repr(item), repr(item.args), repr(getattr(item, "body", None))):
            assert not leaks(text), f"{type(item).__name__} holds the key: {text[:300]}"
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__, capture_locals=True)
    rendered = "".join(report.format())
    assert not leaks(rendered), "the key is in the traceback or its frames' locals"


async def failure_of(url: str, call: str = "reserve", **options: Any) -> TwoChatError:
    options = {"timeout": 3, "max_retries": 0, **options}
    async with TwoChatSession(KEY, base_url=url, **options) as chat:
        method = chat.reserve("abc-123") if call == "reserve" else chat.reservations()
        with pytest.raises(TwoChatError) as info:
            await method
    return info.value


ECHOING_REPLIES = {
    "bad status line": send(b"HTTP/1.1 2OO {key}\r\nContent-Length: 0\r\n\r\n"),
    "bad header line": send(b"HTTP/1.1 200 OK\r\nX-Echo {key}\r\nContent-Length: 2\r\n\r\n{}"),
    "bad chunk size": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{key}\r\nabc\r\n0\r\n\r\n"
    ),
    "truncated body with the key in headers": send(
        b'HTTP/1.1 200 OK\r\nX-Echo: {key}\r\nContent-Length: 500\r\n\r\n{"succ'
    ),
    "2xx that is not JSON, key cut by the snippet": send(
        response("200 OK", b"x" * 190 + b"{key}" + b"y" * 300)
    ),
    "2xx JSON that is not a reservation": send(
        response("201 Created", b'{"success": true, "data": {"echo": "{key}"}}')
    ),
    "2xx JSON echoing the key in \\u escapes": send(
        response("201 Created", b'{"success": true, "data": {"echo": "{ukey}"}}')
    ),
    "2xx JSON array echoing the key in \\u escapes": send(response("200 OK", b'["{ukey}"]')),
    "an error message echoing the key in \\u escapes": send(
        response("400 Bad Request", b'{"success": false, "error_message": "no {ukey} here"}')
    ),
    "an error message echoing the key half escaped": send(
        response(
            "403 Forbidden", b'{"success": false, "error_message": "{halfkey}", "k": "{ukey}"}'
        )
    ),
    "502 HTML page": send(response("502 Bad Gateway", b"<html>" + b"z" * 150 + b"{key}</html>")),
    "redirect to a URL holding the key": send(
        b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/?k={key}\r\n"
        b"X-Echo: {key}\r\nContent-Length: 0\r\n\r\n"
    ),
    "a piece of the key in the status line": send(b"HTTP/1.1 999 {key}\r\n\r\n"),
    "dropped after reading": send(b""),
}


@pytest.mark.parametrize("case", sorted(ECHOING_REPLIES))
async def test_no_piece_of_the_key_in_any_error_chain_or_frame_locals(case: str) -> None:
    """Whatever the server echoes back, no error, chained error or frame local holds the key."""
    async with RawServer(ECHOING_REPLIES[case]) as server:
        error = await failure_of(server.url)
    assert server.requests, "the request reached the server"
    assert_clean(error)


async def test_a_record_holds_no_piece_of_a_key_the_server_escaped() -> None:
    """What a call returns is scrubbed after JSON decoding too: a purchase's kept answer."""
    body = b'{"success": true, "echo": "x{ukey}y", "more": ["{halfkey}", {"{ukey}": 1}]}'
    async with (
        RawServer(send(response("201 Created", body))) as server,
        TwoChatSession(KEY, base_url=server.url, max_retries=0) as chat,
    ):
        bought = await chat.purchase("abc-123", "+12135551234")
    assert bought.details == {"echo": "x***y", "more": ["***", {"***": 1}]}
    assert not leaks(repr(bought))


async def test_no_piece_of_the_key_when_the_connection_is_refused_or_times_out() -> None:
    """Refused and timed-out requests raise errors whose chain and locals are clean."""
    async with RawServer(None) as silent:
        port = silent.port
    assert_clean(await failure_of(f"http://127.0.0.1:{port}"))
    async with RawServer(hang) as server:
        error = await failure_of(server.url, timeout=0.3)
    assert isinstance(error, APITimeoutError)
    assert_clean(error)


async def test_the_errors_still_name_the_failure_and_the_servers_words() -> None:
    """Scrubbed messages keep aiohttp's exception type and what the server said."""
    reply = send(b"HTTP/1.1 200 OK\r\nX-Echo {key} and more words\r\nContent-Length: 0\r\n\r\n")
    async with RawServer(reply) as server:
        error = await failure_of(server.url)
    assert isinstance(error, APIConnectionError)
    assert "ClientResponseError" in str(error) or "BadHttpMessage" in str(error)
    assert "***" in str(error)
    assert "and more words" in str(error)


async def test_a_piece_of_the_key_cut_by_the_snippet_is_masked() -> None:
    """The 200-character snippet of a bad body never keeps the first part of a cut key."""
    body = b"x" * 190 + b"{key}"
    async with RawServer(send(response("200 OK", body))) as server:
        error = await failure_of(server.url)
    assert isinstance(error, InvalidResponseError)
    assert "x" * 150 in str(error)
    assert_clean(error)


async def test_no_log_line_holds_a_piece_of_the_key(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG logs of twochat_async and aiohttp never hold a piece of the key.

    Whatever was logged: retries of an answer echoing the key, a dropped connection, a
    timeout, a refusal, and a hold whose release fails.
    """
    caplog.set_level(logging.DEBUG)
    reply = send(response("503 Service Unavailable", b'{"error_message": "down {key}"}'))
    async with RawServer(reply) as server:
        error = await failure_of(server.url, call="reservations", max_retries=2)
    assert len(server.requests) == 3
    assert_clean(error)
    fake = FakeTwoChat(KEY)
    async with fake as url, TwoChatSession(KEY, base_url=url, timeout=0.3) as chat:
        fake.script(Reply(503), Reply(fault="drop"))
        await chat.regions("US")
        fake.script(Reply(fault="hang"))
        with pytest.raises(APITimeoutError):
            await chat.reserve("abc-123")
        with pytest.raises(UnprocessableEntityError):
            await chat.reserve("abc-123", number="+19999999999")
        async with chat.hold("abc-123"):
            fake.script(*[Reply(500, json=envelope(f"no {KEY}"))] * 3)
    messages = [record.getMessage() for record in caplog.records]
    for logged in (
        "Retrying GET /open/numbers/reservations",
        "Retrying DELETE",
        "Could not cancel",
    ):
        assert any(logged in message for message in messages), logged
    assert [message for message in messages if leaks(message)] == []


# -- request_sent tells the truth --------------------------------------------------------


@pytest.mark.parametrize(
    "timeout",
    # aiohttp would round a deadline longer than ceil_threshold up to a whole second: the
    # connect phase's bound would then pass after the whole request's.
    [0.3, aiohttp.ClientTimeout(total=0.3, ceil_threshold=0.1)],
    ids=["seconds", "ceil-threshold"],
)
async def test_a_stalled_tls_handshake_times_out_as_not_sent_and_a_post_is_retried(
    timeout: Any,
) -> None:
    """A timeout before the request is written is request_sent=False; a POST is re-sent."""
    async with RawServer(None) as server:
        url = f"https://127.0.0.1:{server.port}"
        error = await failure_of(url, timeout=timeout, max_retries=2)
    assert isinstance(error, APITimeoutError)
    assert error.request_sent is False
    assert "not sent" in str(error)
    assert server.connections == 3  # the POST was tried three times
    assert server.requests == []


async def test_a_timeout_after_the_request_was_written_is_sent_and_not_retried() -> None:
    """A POST that reached the server and got no answer is request_sent=True, sent once."""
    async with RawServer(hang) as server:
        error = await failure_of(server.url, timeout=0.3, max_retries=2)
    assert isinstance(error, APITimeoutError)
    assert error.request_sent is True
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "head",
    [b"Content-Length: 100000", b"Transfer-Encoding: chunked"],
    ids=["content-length", "chunked"],
)
async def test_an_answer_that_trickles_in_is_bounded_by_the_timeout(head: bytes) -> None:
    """Headers, then a byte every 50 ms (each read well within any sock_read): the call
    still ends at its timeout, as a request that may have been processed."""

    async def trickle(_: bytes, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 201 Created\r\n" + head + b"\r\n\r\n")
        chunked = b"chunked" in head
        for _ in range(200):  # 10 s at most, past the test's 0.5 s
            writer.write(b"1\r\n \r\n" if chunked else b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    timeout = aiohttp.ClientTimeout(total=0.5, sock_read=5)
    async with RawServer(trickle) as server:
        error = await failure_of(server.url, timeout=timeout, max_retries=2)
    assert isinstance(error, APITimeoutError)
    assert error.request_sent is True
    assert len(server.requests) == 1


async def test_a_slow_trace_hook_does_not_unbound_the_request() -> None:
    """An on_request_start hook slower than the timeout (aiohttp's own total does not run
    while it does), then a server that never answers: the call still times out."""

    async def slow(*_: Any) -> None:
        await asyncio.sleep(0.6)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(slow)
    async with RawServer(hang) as server:
        error = await asyncio.wait_for(
            failure_of(server.url, timeout=0.5, trace_configs=[trace]), timeout=20
        )
    assert isinstance(error, APITimeoutError)  # the hook ran out the time: nothing answered


@pytest.mark.parametrize(
    ("fault", "received"),
    [
        ("refused", False),
        ("tls stall", False),
        ("read, then hang", True),
        ("read, then drop", True),
        ("read, then truncate", True),
    ],
)
async def test_request_sent_matches_what_the_server_received(fault: str, received: bool) -> None:
    """Across faults, request_sent is True exactly when the server got the request."""
    if fault == "refused":
        async with RawServer(None) as closed:
            url = closed.url
        error, requests = await failure_of(url, timeout=0.5), []
    else:
        replies: dict[str, RawReply | None] = {
            "tls stall": None,
            "read, then hang": hang,
            "read, then drop": send(b""),
            "read, then truncate": send(b"HTTP/1.1 201 Created\r\nContent-Length: 90\r\n\r\n{"),
        }
        async with RawServer(replies[fault]) as server:
            scheme = "https" if fault == "tls stall" else "http"
            error = await failure_of(f"{scheme}://127.0.0.1:{server.port}", timeout=0.5)
            requests = server.requests
    assert isinstance(error, APIConnectionError)
    assert bool(requests) is received
    assert error.request_sent is received


async def test_waiting_for_a_pooled_connection_counts_against_no_timeout() -> None:
    """README's scenario: 1,000 concurrent reserve() on the default pool all succeed."""
    numbers = [f"+1213555{n:04d}" for n in range(1000)]
    # 10 waves of 100 (the default pool) at 0.3 s each: 3 s in all, twice the timeout.
    fake = FakeTwoChat(KEY, latency=0.3, groups=[FakeGroup("big", "US", numbers)])
    async with fake as url, TwoChatSession(KEY, base_url=url, timeout=1.5, max_retries=0) as chat:
        results = await asyncio.gather(
            *(chat.reserve("big") for _ in range(1000)), return_exceptions=True
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert fake.calls["POST /open/numbers/reservations"] == 1000
    assert len({r.number for r in results if not isinstance(r, BaseException)}) == 1000


async def test_a_borrowed_pool_is_not_overfilled_by_queued_calls() -> None:
    """With a borrowed session, calls queue for its pool outside the timeout as well."""
    numbers = [f"+1213555{n:04d}" for n in range(40)]
    fake = FakeTwoChat(KEY, latency=0.4, groups=[FakeGroup("big", "US", numbers)])
    async with (
        fake as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as http,
        TwoChatSession(KEY, base_url=url, timeout=1, max_retries=0, http_session=http) as chat,
    ):
        results = await asyncio.gather(
            *(chat.reserve("big") for _ in range(20)), return_exceptions=True
        )
    assert [r for r in results if isinstance(r, BaseException)] == []


# -- the size cap bounds decompressed bytes ----------------------------------------------

_BOMB_CLIENT = textwrap.dedent(
    """
    import asyncio, sys, time, tracemalloc
    tracemalloc.start()
    import aiohttp
    from twochat_async import InvalidResponseError, TwoChatSession

    async def main(url):
        async with aiohttp.ClientSession() as borrowed:
            for http in (None, borrowed):
                async with TwoChatSession("k" * 20, base_url=url, http_session=http) as chat:
                    started = time.monotonic()
                    try:
                        await chat.reservations()
                    except InvalidResponseError as exc:
                        print(type(exc).__name__, round(time.monotonic() - started, 2), exc)
    asyncio.run(main(sys.argv[1]))
    # Every byte Python allocated, at its peak: inflating the bomb would be over 1 GiB.
    # (Not the process's peak RSS: how much of the spawning process's peak Linux carries
    # into it varies, by Python version, with how large this pytest process has grown.)
    print("peak_traced_kib", tracemalloc.get_traced_memory()[1] // 1024)
    """
)


def gzip_bomb(inflated: int) -> bytes:
    """Return a gzip body of ``inflated`` zero bytes (a multiple of 1 MiB), about 1/1000 the size.

    Deflating 1 GiB takes seconds: one MiB is deflated once, ending in a full flush (byte
    aligned, the window reset), so the piece repeated is the deflate stream of all of it.
    """
    chunk = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(inflated >> 20):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name or time
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # the empty final block
    trailer = struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    return header + piece * (inflated >> 20) + end + trailer


def test_the_gzip_bomb_inflates_to_its_size() -> None:
    """The bomb of the test below is a valid gzip body of exactly that many zeros."""
    inflated = gzip.decompress(gzip_bomb(8 << 20))
    assert (len(inflated), inflated.count(0)) == (8 << 20, 8 << 20)


async def test_a_gzip_bomb_is_refused_within_the_cap_on_owned_and_borrowed_pools() -> None:
    """1 MiB of gzip inflating to 1 GiB is an InvalidResponseError, with bounded memory."""
    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 4 << 20

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serve(handler) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BOMB_CLIENT,
            url,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    lines = out.decode().splitlines()
    assert process.returncode == 0, err.decode()
    refusals = [line for line in lines if line.startswith("InvalidResponseError")]
    assert len(refusals) == 2, lines
    for line in refusals:
        assert "cap" in line
        assert float(line.split()[1]) < 5.0
    traced_mib = int(lines[-1].split()[1]) / 1024
    assert traced_mib < 64, f"the client grew to {traced_mib:.0f} MiB"


async def test_a_small_gzip_answer_is_decoded() -> None:
    """A gzip-encoded answer within the cap is decompressed and decoded as usual."""
    payload = {"success": True, "data": []}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(json.dumps(payload).encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async with serve(handler) as url, TwoChatSession(KEY, base_url=url) as chat:
        assert await chat.reservations() == []


async def test_an_unknown_content_encoding_is_an_invalid_response() -> None:
    """An answer in an encoding the SDK does not decode is refused, not misread."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"\x00\x01", headers={"Content-Encoding": "br"})

    async with serve(handler) as url:
        error = await failure_of(url, call="reservations")
    assert isinstance(error, InvalidResponseError)
    assert "'br'" in str(error)


async def test_an_error_status_keeps_its_class_after_scrubbing() -> None:
    """A 502 HTML page echoing the key is a ServerError-class APIError, scrubbed."""
    body = b"<html>bad gateway {key}</html>"
    async with RawServer(send(response("502 Bad Gateway", body))) as server:
        error = await failure_of(server.url, call="reservations")
    assert isinstance(error, APIError)
    assert error.status == 502
    assert "bad gateway ***" in str(error)


async def test_an_echoed_key_is_replaced_by_stars_in_messages_and_bodies(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A key the server quotes back shows as *** in the message and .body, JSON or not."""
    fake.script(
        refusal(400, f"Bad key {API_KEY} in request"),
        Reply(status=502, body=f"<p>upstream got key {API_KEY}</p>".encode()),
    )
    with pytest.raises(BadRequestError) as json_error:
        await chat.reserve("abc-123")
    with pytest.raises(ServerError) as text_error:
        await chat.reserve("abc-123")
    assert str(json_error.value) == (
        "HTTP 400 (POST /open/numbers/reservations): Bad key *** in request"
    )
    assert json_error.value.body["error_message"] == "Bad key *** in request"
    assert text_error.value.body == "<p>upstream got key ***</p>"


async def test_a_refused_connection_chains_only_a_clean_os_error() -> None:
    """A refused connection: APIConnectionError, not sent, caused by a bare OS error copy."""
    async with TwoChatSession(KEY, base_url=f"http://127.0.0.1:{free_port()}") as chat:
        with pytest.raises(APIConnectionError) as info:
            await chat.reserve("abc-123")
    assert APIConnectionError is type(info.value)
    assert info.value.request_sent is False
    # aiohttp's own exceptions carry the request's headers: only a fresh copy is chained.
    assert ConnectionRefusedError is type(info.value.__cause__)
    assert info.value.__cause__.__traceback__ is None
    assert "ClientConnectorError" in str(info.value)


# -- what is sent ---------------------------------------------------------------------------

GET_HEADERS = {
    "X-User-API-Key": API_KEY,
    "Accept": "application/json",
    # Uncompressed answers: the size cap then bounds what is decompressed too.
    "Accept-Encoding": "identity",
    "User-Agent": (
        f"twochat-async/{twochat_async.__version__} aiohttp/{aiohttp.__version__} "
        f"python/{platform.python_version()}"
    ),
}


async def test_every_request_carries_the_key_and_safe_options(
    mocked: BridgedAioresponses,
) -> None:
    """GET: the key, JSON accepted, no compression, our User-Agent; POST adds its type.

    Whatever a borrowed session says, no redirect is followed (the key would go to another
    host), raise_for_status is off (2Chat's error body is read) and bodies are read raw.
    """
    url = "https://api.p.2chat.io/open/numbers"
    mocked.get(f"{url}/did-types", payload={"success": True, "data": {"did_types": []}})
    mocked.post(f"{url}/purchase", status=201, payload={"success": True})
    async with (
        aiohttp.ClientSession(raise_for_status=True) as http,
        TwoChatSession(API_KEY, http_session=http) as chat,
    ):
        await chat.did_types()
        await chat.purchase("abc-123")
    (get,), (post,) = mocked.requests.values()
    assert get.kwargs["headers"] == GET_HEADERS
    assert post.kwargs["headers"] == {**GET_HEADERS, "Content-Type": "application/json"}
    for request in (get, post):
        assert (
            request.kwargs["allow_redirects"],
            request.kwargs["raise_for_status"],
            request.kwargs["auto_decompress"],
        ) == (False, False, False)


async def test_our_own_pool_sends_each_header_once_over_http() -> None:
    """The pool the session makes sends the same headers, each once, on GET and POST."""
    seen: list[tuple[str, CIMultiDictProxy[str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.headers))
        if request.method == "GET":
            return web.json_response({"success": True, "data": {"did_types": []}})
        return web.json_response({"success": True}, status=201)

    async with (
        serve(handler) as url,
        TwoChatSession(API_KEY, base_url=url) as chat,
    ):
        await chat.did_types()
        await chat.purchase("abc-123")
    (get_method, get), (post_method, post) = seen
    assert (get_method, post_method) == ("GET", "POST")
    for headers, expected in (
        (get, GET_HEADERS),
        (post, {**GET_HEADERS, "Content-Type": "application/json"}),
    ):
        assert {name: headers.getall(name) for name in expected} == {
            name: [value] for name, value in expected.items()
        }
    assert "Content-Type" not in get


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_an_error_and_never_carries_the_key_elsewhere(
    fake: FakeTwoChat, chat: TwoChatSession, status: int
) -> None:
    """A 3xx to another origin is an APIError naming it; that origin never hears of us."""
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"success": True, "data": {"regions": []}})

    async with serve(elsewhere) as other:
        location = f"{other}/open/numbers/regions?country=US"
        fake.script(Reply(status, headers={"Location": location}))
        with pytest.raises(APIError, match="redirect") as info:
            await chat.regions("US")
    assert (APIError, status) == (type(info.value), info.value.status)
    assert location in info.value.message
    assert seen == []


async def test_an_error_answer_raises_its_class_with_2chats_words(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Over HTTP, an error answer raises its class carrying 2Chat's status, message, body."""
    fake.script(refusal(404, "Number group nope not found"))
    with pytest.raises(NotFoundError) as info:
        await chat.reserve("nope")
    assert (info.value.status, info.value.message) == (404, "Number group nope not found")
    assert str(info.value) == (
        "HTTP 404 (POST /open/numbers/reservations): Number group nope not found"
    )
    assert info.value.body["error"] is True


# -- reading --------------------------------------------------------------------------------

DETAILS = {
    "uuid": "reservation-uuid-here",
    "number": "+12135551234",
    "created_at": "2024-01-15T10:30:00Z",
    "expires_at": "2024-01-15T11:30:00Z",
}


def padded_success(size: int) -> bytes:
    """A valid 201 reservation body of exactly ``size`` bytes."""
    head = b'{"success": true, "padding": "'
    tail = b'", "data": ' + json.dumps({"reservation_details": DETAILS}).encode() + b"}"
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize(
    ("size", "chunked", "read"),
    [
        (MAX_RESPONSE_BYTES, False, True),
        (MAX_RESPONSE_BYTES + 1, False, False),
        (256 * 1024, True, True),
        (MAX_RESPONSE_BYTES + 64 * 1024, True, False),
    ],
    ids=["at-the-cap", "over-the-cap", "chunked-under", "chunked-over"],
)
async def test_a_body_is_read_up_to_the_cap_and_refused_past_it(
    size: int, chunked: bool, read: bool
) -> None:
    """Up to 4 MiB an answer is read; past it, with or without Content-Length, it is refused."""
    body = padded_success(size)

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        try:
            for start in range(0, len(body), 64 * 1024):
                await response.write(body[start : start + 64 * 1024])
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading at the cap, as it should
        return response

    async with serve(answer) as url, TwoChatSession(API_KEY, base_url=url) as chat:
        if read:
            assert (await chat.reserve("abc-123")).uuid == "reservation-uuid-here"
            return
        with pytest.raises(InvalidResponseError, match="cap") as info:
            await chat.reserve("abc-123")
    assert info.value.status == 201


# -- the pool -------------------------------------------------------------------------------


async def test_a_borrowed_http_session_is_used_and_left_open(fake: FakeTwoChat) -> None:
    """A given http_session carries the requests and stays open after close()."""
    async with aiohttp.ClientSession(headers={"X-Borrowed": "yes"}) as http:
        async with TwoChatSession(API_KEY, base_url=fake.base_url, http_session=http) as chat:
            await chat.reserve("abc-123")
        assert chat.closed
        assert not http.closed
        assert fake.requests[0]["headers"]["X-Borrowed"] == "yes"
        async with http.get(fake.base_url + "/open/info") as response:
            assert response.status == 401


async def test_a_closed_borrowed_http_session_is_refused(fake: FakeTwoChat) -> None:
    """A call through a borrowed http_session that was closed raises TwoChatError, sends nothing."""
    http = aiohttp.ClientSession()
    await http.close()
    async with TwoChatSession(API_KEY, base_url=fake.base_url, http_session=http) as chat:
        with pytest.raises(TwoChatError, match="http_session"):
            await chat.reserve("abc-123")
    assert fake.requests == []


async def test_cancelled_calls_leak_no_connection() -> None:
    """1,000 calls cancelled mid-request leave the pool whole: the session still works."""
    fake = FakeTwoChat(API_KEY, latency=0.05)
    async with (
        fake as url,
        TwoChatSession(API_KEY, base_url=url, max_connections=5, timeout=3) as chat,
    ):
        for _ in range(4):
            arrived = fake.calls["GET /open/numbers/did-types"]
            calls = [asyncio.create_task(chat.did_types()) for _ in range(250)]
            # Five on the wire (one per connection), the rest waiting for a connection.
            await fake.received("GET /open/numbers/did-types", count=arrived + 5)
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            assert all(call.cancelled() for call in calls)
        # With a leaked connection, 5 parallel calls on a 5-connection pool would time out.
        results = await asyncio.gather(*(chat.did_types() for _ in range(5)))
    assert all(len(types) == 6 for types in results)


# -- retries ------------------------------------------------------------------------------

RESERVE = "POST /open/numbers/reservations"
REGIONS = "GET /open/numbers/regions"


def retrying(fake: FakeTwoChat, **options: Any) -> TwoChatSession:
    """A session on ``fake`` with retries on (the default 2, unless given)."""
    options.setdefault("timeout", 5)
    return TwoChatSession(API_KEY, base_url=fake.base_url, **options)


@pytest.mark.parametrize(
    ("replies", "max_retries", "sent", "recovers"),
    [
        ([Reply(503), Reply(503)], 2, 3, True),
        ([Reply(503)] * 3, 2, 3, False),
        ([Reply(503)], 0, 1, False),
        ([Reply(fault="hang")], 2, 2, True),
        ([Reply(fault="drop")], 2, 2, True),
    ],
    ids=["503-503-200", "503-thrice", "retries-off", "timeout-then-200", "drop-then-200"],
)
async def test_a_get_is_sent_again_up_to_max_retries(
    fake: FakeTwoChat, replies: list[Reply], max_retries: int, sent: int, recovers: bool
) -> None:
    """A GET that failed in passing is sent again, at most max_retries times."""
    fake.script(*replies)
    async with retrying(fake, max_retries=max_retries, timeout=0.3) as chat:
        if recovers:
            assert [r.name for r in await chat.regions("US")] == ["California", "New York"]
        else:
            with pytest.raises(ServerError, match="HTTP 503"):
                await chat.regions("US")
    assert fake.calls[REGIONS] == sent


async def test_a_post_answered_503_is_sent_once(fake: FakeTwoChat) -> None:
    """A reserve answered with a 5xx is raised, not sent again: 2Chat may have acted."""
    fake.script(Reply(503, headers={"Retry-After": "0"}))
    async with retrying(fake) as chat:
        with pytest.raises(ServerError):
            await chat.reserve("abc-123")
    assert fake.calls[RESERVE] == 1


async def test_a_post_dropped_after_2chat_acted_is_sent_once(fake: FakeTwoChat) -> None:
    """A reserve whose connection drops after 2Chat acted is not re-sent: outcome unknown."""
    fake.script(Reply(fault="drop", handle=True))
    async with retrying(fake) as chat:
        with pytest.raises(APIConnectionError) as caught:
            await chat.reserve("abc-123")
        assert len(await chat.reservations()) == 1  # the reservation did happen
    assert caught.value.request_sent is True
    assert fake.calls[RESERVE] == 1


async def test_a_post_answered_429_is_sent_again_and_reserves_once(fake: FakeTwoChat) -> None:
    """A reserve answered 429 then 201 succeeds with exactly one reservation made."""
    fake.script(refusal(429, "slow down", headers={"Retry-After": "0"}))
    async with retrying(fake) as chat:
        reservation = await chat.reserve("abc-123")
    assert fake.calls[RESERVE] == 2
    assert [r.uuid for r in fake.active_reservations()] == [reservation.uuid]


async def test_a_post_that_could_not_connect_is_tried_again() -> None:
    """A reserve that cannot connect (never sent) is tried again, max_retries times."""
    attempts: list[str] = []

    async def on_connect(*_: Any) -> None:
        attempts.append("connect")

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_start.append(on_connect)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        url = f"http://127.0.0.1:{free_port()}"
        async with TwoChatSession(API_KEY, base_url=url, http_session=http) as chat:
            with pytest.raises(APIConnectionError) as caught:
                await chat.reserve("abc-123")
    assert caught.value.request_sent is False
    assert len(attempts) == 3


async def test_a_post_refused_then_listening_reaches_the_server_once() -> None:
    """A reserve retried after a refused connection reaches the server once it listens."""
    port = free_port()
    fake = FakeTwoChat(API_KEY, port=port)
    refused = asyncio.Event()

    async def on_refused(*_: Any) -> None:
        refused.set()

    trace = aiohttp.TraceConfig()
    trace.on_request_exception.append(on_refused)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as http,
        TwoChatSession(
            API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=8, http_session=http
        ) as chat,
    ):
        call = asyncio.create_task(chat.reserve("abc-123"))
        await asyncio.wait_for(refused.wait(), 10)
        async with fake:
            reservation = await call
    assert reservation.group_id == "abc-123"
    assert fake.calls[RESERVE] == 1


async def test_retry_after_is_waited(fake: FakeTwoChat) -> None:
    """A 503 with Retry-After: 1 is sent again no sooner than a second later."""
    fake.script(Reply(503, headers={"Retry-After": "1"}))
    async with retrying(fake) as chat:
        started = time.monotonic()
        await chat.regions("US")
    assert time.monotonic() - started >= 0.9
    assert fake.calls[REGIONS] == 2


@pytest.mark.parametrize(("retry_after", "sent"), [("120", 1), ("0", 3)])
async def test_the_last_rate_limit_error_carries_retry_after(
    fake: FakeTwoChat, retry_after: str, sent: int
) -> None:
    """A 429 asking for 120 s is raised at once; 429s that keep coming, after the retries."""
    fake.script(*[refusal(429, "slow down", headers={"Retry-After": retry_after})] * 3)
    async with retrying(fake) as chat:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            await chat.reserve("abc-123")
    assert time.monotonic() - started < 5
    assert float(retry_after) == caught.value.retry_after
    assert fake.calls[RESERVE] == sent


async def test_each_retry_is_logged_at_debug(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry is one DEBUG line on logger twochat_async, naming the request."""
    caplog.set_level(logging.DEBUG)
    fake.script(refusal(503, "bad gateway"))
    async with retrying(fake) as chat:
        await chat.regions("US")
    retries = [r for r in caplog.records if r.name == "twochat_async"]
    assert [r.levelno for r in retries] == [logging.DEBUG]
    assert "Retrying GET /open/numbers/regions" in retries[0].getMessage()


async def test_tasks_told_to_wait_together_come_back_apart() -> None:
    """20 calls told "Retry-After: 1" together each wait at least 1 s, not all the same time."""
    first_seen: dict[str, float] = {}
    waits: list[float] = []

    async def answer(request: web.Request) -> web.Response:
        group, now = request.query["group_id"], time.monotonic()
        if group not in first_seen:
            first_seen[group] = now
            body = {"success": False, "error": True, "error_message": "slow down"}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        waits.append(now - first_seen[group])
        return web.json_response({"success": True, "data": {"numbers": []}})

    async with serve(answer) as url, TwoChatSession(API_KEY, base_url=url, max_retries=1) as chat:
        await asyncio.gather(*(chat.available_numbers(f"g{n}") for n in range(20)))
    assert len(waits) == 20
    assert min(waits) >= 0.95
    # Up to 0.2 s of jitter at 1 s: 20 draws all within 50 ms has odds below 1e-10.
    assert max(waits) - min(waits) >= 0.05


# -- the rate limiter in the request loop -------------------------------------------------


async def test_a_429_pauses_every_task_of_the_session(fake: FakeTwoChat) -> None:
    """After one task's 429 (Retry-After: 1), another task's call waits out the pause too."""
    fake.script(refusal(429, "slow down", headers={"Retry-After": "1"}))
    async with retrying(fake, rate_limit=6000, max_retries=0) as chat:
        with pytest.raises(RateLimitError):
            await chat.did_types()
        started = time.monotonic()
        await chat.regions("US")  # another call, as from another task
    assert time.monotonic() - started >= 0.9


async def test_waiting_for_a_slot_counts_against_no_timeout(fake: FakeTwoChat) -> None:
    """A call that waits 0.5 s for its slot still succeeds with timeout=0.3."""
    async with retrying(fake, rate_limit=120, timeout=0.3) as chat:
        await asyncio.gather(chat.did_types(), chat.did_types())
    assert fake.calls["GET /open/numbers/did-types"] == 2


async def test_a_call_waiting_for_a_slot_can_be_cancelled_and_is_never_sent(
    fake: FakeTwoChat,
) -> None:
    """Cancelling a call that waits for the limiter ends it before anything is sent."""
    limiter = Watched(RateLimiter(RateLimit(1)))
    async with retrying(fake, rate_limit=limiter) as chat:
        await chat.did_types()  # takes the only slot of the minute
        waiting = asyncio.create_task(chat.did_types())
        await until(lambda: limiter.entered == 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert len(limiter.granted) == 1
    assert fake.calls["GET /open/numbers/did-types"] == 1


async def test_the_account_limit_is_read_once_then_kept(fake: FakeTwoChat) -> None:
    """rate_limit='account' asks GET /open/info once, then paces at its limit."""
    fake.requests_per_minute = 600
    async with retrying(fake, rate_limit="account") as chat:
        started = time.monotonic()
        await asyncio.gather(*(chat.did_types() for _ in range(6)))
        elapsed = time.monotonic() - started
    assert fake.calls["GET /open/info"] == 1
    assert fake.calls["GET /open/numbers/did-types"] == 6
    assert elapsed >= 0.45


async def test_a_failed_account_limit_fetch_is_raised_then_asked_again(fake: FakeTwoChat) -> None:
    """If GET /open/info fails, calls raise its error, and the next call asks again."""
    fake.requests_per_minute = 6000
    async with retrying(fake, rate_limit="account", max_retries=0) as chat:
        fake.script(Reply(500))
        with pytest.raises(ServerError):
            await chat.did_types()
        assert len(await chat.did_types()) == 6
    assert fake.calls["GET /open/info"] == 2
    assert fake.calls["GET /open/numbers/did-types"] == 1


async def test_the_account_limit_fetch_is_retried_like_any_get(fake: FakeTwoChat) -> None:
    """A 500 from GET /open/info is retried, and reserve() then succeeds, sent once."""
    fake.requests_per_minute = 6000
    fake.script(Reply(500))
    async with retrying(fake, rate_limit="account") as chat:
        reservation = await chat.reserve("abc-123")
    assert reservation.group_id == "abc-123"
    assert fake.calls["GET /open/info"] == 2
    assert fake.calls[RESERVE] == 1


async def test_the_account_limit_fetch_survives_a_cancelled_caller() -> None:
    """A caller cancelled while the limit is fetched does not fail the others waiting."""
    fake = FakeTwoChat(API_KEY, latency=0.2, requests_per_minute=6000)
    async with fake, retrying(fake, rate_limit="account") as chat:
        first = asyncio.create_task(chat.did_types())
        second = asyncio.create_task(chat.did_types())
        await fake.received("GET /open/info")  # both wait on this one request
        first.cancel()
        assert len(await second) == 6
        with pytest.raises(asyncio.CancelledError):
            await first
    assert fake.calls["GET /open/info"] == 1


@pytest.mark.parametrize(
    "rate", [1e-300, 5e-324, 0.5, 10**400], ids=["1e-300", "5e-324", "0.5", "10**400"]
)
async def test_an_unusable_account_limit_fails_every_call_and_hangs_none(
    fake: FakeTwoChat, rate: Any
) -> None:
    """requests_per_minute below 1 or past a float's range: every call raises, none hangs."""
    fake.requests_per_minute = rate
    async with retrying(fake, rate_limit="account") as chat:
        for _ in range(2):
            with pytest.raises(InvalidResponseError, match=r"limits\.requests_per_minute"):
                await asyncio.wait_for(chat.did_types(), timeout=5)
    assert fake.calls["GET /open/info"] == 2
    assert fake.calls["GET /open/numbers/did-types"] == 0


# -- proxy=, trust_env= and ssl=: a real CONNECT proxy, a real HTTPS server on 127.0.0.1 --
API_KEY = "test-secret-key-0123456789"
PROXY_PASSWORD = "proxy-s3cret-pw"


class Proxy:
    """A small HTTP proxy on 127.0.0.1 that counts what goes through it.

    ``CONNECT host:port`` opens a tunnel (the https case); a request in absolute form
    (``GET http://host:port/...``) is relayed (the plain http case). With ``password`` set,
    requests without ``Proxy-Authorization: Basic user:password`` get a 407.
    """

    def __init__(self, password: str | None = None) -> None:
        self.password = password
        self.connects: list[str] = []
        self.plain: list[str] = []
        self.authorizations: list[str | None] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        self.authorizations.append(headers.get("proxy-authorization"))
        if self.password is not None:
            expected = base64.b64encode(f"user:{self.password}".encode()).decode()
            if headers.get("proxy-authorization") != f"Basic {expected}":
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
                writer.write(b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
        if method == "CONNECT":
            self.connects.append(target)
            host, _, port = target.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            self.plain.append(f"{method} {target}")
            host_port = target.split("/")[2]
            host, _, port = host_port.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            upstream_writer.write(head)
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the throwaway CA (as a company CA would be trusted)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def https_fake(ca: trustme.CA) -> AsyncIterator[FakeTwoChat]:
    """A FakeTwoChat served over HTTPS on 127.0.0.1, its certificate for localhost/127.0.0.1."""
    fake = FakeTwoChat(API_KEY)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    runner = web.AppRunner(fake.app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=server_context).start()
    fake.base_url = f"https://localhost:{sock.getsockname()[1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
def no_env_proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The process environment without any proxy variable (each test sets its own)."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _closed_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_https_call_tunnels_through_an_explicit_proxy(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: Any
) -> None:
    """proxy= sends an https call through one CONNECT tunnel, reused by the next call."""
    async with (
        Proxy() as proxy,
        TwoChatSession(
            API_KEY, base_url=https_fake.base_url, proxy=proxy.url, ssl=trusting
        ) as chat,
    ):
        reservation = await chat.reserve("abc-123")
        await chat.cancel_reservation(reservation)
    port = https_fake.base_url.rpartition(":")[2]
    assert proxy.connects == [f"localhost:{port}"]
    assert https_fake.calls == {
        "POST /open/numbers/reservations": 1,
        f"DELETE /open/numbers/reservations/{reservation.uuid}": 1,
    }


async def test_environment_https_proxy_is_honoured_by_default(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY in the environment routes the session's calls without any option."""
    async with Proxy() as proxy:
        no_env_proxies.setenv("HTTPS_PROXY", proxy.url)
        async with TwoChatSession(API_KEY, base_url=https_fake.base_url, ssl=trusting) as chat:
            await chat.did_types()
    assert len(proxy.connects) == 1


async def test_trust_env_false_ignores_the_environment_proxy(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: pytest.MonkeyPatch
) -> None:
    """trust_env=False connects directly whatever HTTPS_PROXY says."""
    async with Proxy() as proxy:
        no_env_proxies.setenv("HTTPS_PROXY", proxy.url)
        async with TwoChatSession(
            API_KEY, base_url=https_fake.base_url, ssl=trusting, trust_env=False
        ) as chat:
            await chat.did_types()
    assert (proxy.connects, https_fake.calls["GET /open/numbers/did-types"]) == ([], 1)


@pytest.mark.parametrize("no_proxy", ["localhost", "127.0.0.1,localhost", "*"])
async def test_no_proxy_reaches_its_hosts_directly(
    https_fake: FakeTwoChat,
    trusting: ssl.SSLContext,
    no_env_proxies: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    """A host listed in NO_PROXY is reached directly though HTTPS_PROXY is set."""
    async with Proxy() as proxy:
        no_env_proxies.setenv("HTTPS_PROXY", proxy.url)
        no_env_proxies.setenv("NO_PROXY", no_proxy)
        async with TwoChatSession(API_KEY, base_url=https_fake.base_url, ssl=trusting) as chat:
            await chat.did_types()
    assert (proxy.connects, https_fake.calls["GET /open/numbers/did-types"]) == ([], 1)


async def test_explicit_proxy_wins_over_the_environment(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: pytest.MonkeyPatch
) -> None:
    """proxy= is used even where HTTPS_PROXY names another proxy and NO_PROXY the host."""
    no_env_proxies.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    no_env_proxies.setenv("NO_PROXY", "localhost")
    async with (
        Proxy() as proxy,
        TwoChatSession(
            API_KEY, base_url=https_fake.base_url, ssl=trusting, proxy=proxy.url
        ) as chat,
    ):
        await chat.did_types()
    assert len(proxy.connects) == 1


async def test_plain_http_call_is_relayed_by_the_proxy(
    fake: FakeTwoChat, no_env_proxies: Any
) -> None:
    """With an http base_url the proxy gets the request itself, in absolute form."""
    async with (
        Proxy() as proxy,
        TwoChatSession(API_KEY, base_url=fake.base_url, proxy=proxy.url) as chat,
    ):
        await chat.did_types()
    assert (proxy.plain, proxy.connects) == ([f"GET {fake.base_url}/open/numbers/did-types"], [])


async def test_max_connections_holds_through_a_proxy(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: Any
) -> None:
    """max_connections=1 keeps concurrent calls on one tunnel: one CONNECT for five calls."""
    https_fake.latency = 0.02
    async with (
        Proxy() as proxy,
        TwoChatSession(
            API_KEY,
            base_url=https_fake.base_url,
            proxy=proxy.url,
            ssl=trusting,
            max_connections=1,
        ) as chat,
    ):
        await asyncio.gather(*(chat.did_types() for _ in range(5)))
    assert (len(proxy.connects), https_fake.calls["GET /open/numbers/did-types"]) == (1, 5)


async def test_proxy_credentials_reach_the_proxy_and_nothing_else(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: Any
) -> None:
    """Credentials in proxy= authenticate to the proxy; the session's repr hides them."""
    async with Proxy(password=PROXY_PASSWORD) as proxy:
        url = proxy.url.replace("http://", f"http://user:{PROXY_PASSWORD}@")
        async with TwoChatSession(
            API_KEY, base_url=https_fake.base_url, proxy=url, ssl=trusting
        ) as chat:
            await chat.did_types()
            shown = repr(chat)
    expected = "Basic " + base64.b64encode(f"user:{PROXY_PASSWORD}".encode()).decode()
    assert (proxy.authorizations, len(proxy.connects)) == ([expected], 1)
    assert f"proxy={proxy.url!r}" in shown
    assert PROXY_PASSWORD not in shown
    assert all(PROXY_PASSWORD not in str(r["headers"]) for r in https_fake.requests)


async def test_proxy_refusing_credentials_is_a_connection_error_naming_it(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: Any
) -> None:
    """A 407 from the proxy raises APIConnectionError, not sent, naming the proxy only."""
    async with Proxy(password="another-password") as proxy:
        url = proxy.url.replace("http://", f"http://user:{PROXY_PASSWORD}@")
        async with TwoChatSession(
            API_KEY, base_url=https_fake.base_url, proxy=url, ssl=trusting, max_retries=0
        ) as chat:
            with pytest.raises(APIConnectionError) as info:
                await chat.did_types()
    assert info.value.request_sent is False
    assert f"through the proxy {proxy.url}: it answered 407" in str(info.value)
    assert PROXY_PASSWORD not in repr(info.value) + str(info.value.__cause__)
    assert https_fake.requests == []


async def test_unreachable_proxy_is_a_connection_error_naming_it(
    https_fake: FakeTwoChat, trusting: ssl.SSLContext, no_env_proxies: Any
) -> None:
    """A proxy that refuses connections raises APIConnectionError, not sent, without password."""
    proxy = f"127.0.0.1:{_closed_port()}"
    async with TwoChatSession(
        API_KEY,
        base_url=https_fake.base_url,
        proxy=f"http://user:{PROXY_PASSWORD}@{proxy}",
        ssl=trusting,
        max_retries=0,
    ) as chat:
        with pytest.raises(APIConnectionError) as info:
            await chat.did_types()
    assert info.value.request_sent is False
    assert f"through the proxy http://{proxy}: it is unreachable" in str(info.value)
    assert PROXY_PASSWORD not in str(info.value)


async def test_certificate_of_an_unknown_authority_is_refused(
    https_fake: FakeTwoChat, no_env_proxies: Any
) -> None:
    """Without the CA in ssl=, verification fails: APIConnectionError, nothing sent."""
    async with TwoChatSession(API_KEY, base_url=https_fake.base_url, max_retries=0) as chat:
        with pytest.raises(APIConnectionError) as info:
            await chat.did_types()
    assert info.value.request_sent is False
    assert "certificate verify failed" in str(info.value)
    assert https_fake.requests == []


async def test_certificate_is_verified_through_a_proxy_too(
    https_fake: FakeTwoChat, no_env_proxies: Any
) -> None:
    """Through a CONNECT tunnel the server's certificate is still verified."""
    async with (
        Proxy() as proxy,
        TwoChatSession(
            API_KEY, base_url=https_fake.base_url, proxy=proxy.url, max_retries=0
        ) as chat,
    ):
        with pytest.raises(APIConnectionError, match="certificate verify failed"):
            await chat.did_types()
    assert (len(proxy.connects), https_fake.requests) == (1, [])


@pytest.mark.parametrize(
    "proxy",
    [
        "socks5://user:pw-in-url@127.0.0.1:1080",
        "127.0.0.1:3128",
        "http://",
        "http://proxy.example:3128/some/path",
        "http://user:pw-in-url@proxy.example:99999",
        5,
    ],
    ids=["socks", "no-scheme", "no-host", "path", "bad-port", "int"],
)
def test_bad_proxy_is_refused_without_quoting_its_password(proxy: Any) -> None:
    """proxy= must be an http:// URL; the error never quotes a password it held."""
    with pytest.raises(ValueError, match=r"^proxy must be an http:// URL") as info:
        TwoChatSession(API_KEY, proxy=proxy)
    assert "pw-in-url" not in str(info.value)


@pytest.mark.parametrize("value", [False, True, "/etc/ssl/ca.pem"], ids=repr)
def test_ssl_other_than_a_context_is_refused(value: Any) -> None:
    """ssl= takes an SSLContext: False (verification off) is refused with what to do instead."""
    with pytest.raises(ValueError, match=r"^ssl must be an ssl.SSLContext") as info:
        TwoChatSession(API_KEY, ssl=value)
    assert "cannot be turned off" in str(info.value)


def test_trust_env_must_be_a_bool() -> None:
    """trust_env= is True or False; anything else is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"^trust_env must be True or False"):
        TwoChatSession(API_KEY, trust_env="no")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "option",
    [
        {"proxy": "http://proxy.example:3128"},
        {"ssl": ssl.create_default_context()},
        {"trust_env": False},
    ],
    ids=["proxy", "ssl", "trust_env"],
)
async def test_network_options_with_a_borrowed_session_are_refused(option: Any) -> None:
    """proxy/ssl/trust_env=False beside http_session raise, instead of being silently ignored."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ValueError, match=r"set them on that aiohttp.ClientSession"):
            TwoChatSession(API_KEY, http_session=http, **option)


async def _twochat(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the twochat command in a subprocess without blocking the loop; (code, output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twochat_async",
        *argv,
        env={**os.environ, "TWOCHAT_API_KEY": API_KEY, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.slow
async def test_cli_proxy_option_routes_the_command(fake: FakeTwoChat, no_env_proxies: Any) -> None:
    """twochat --proxy URL sends the command's request through that proxy."""
    async with Proxy() as proxy:
        code, output = await _twochat(
            "--base-url", fake.base_url, "--proxy", proxy.url, "did-types", env={}
        )
    assert (code, proxy.plain) == (0, [f"GET {fake.base_url}/open/numbers/did-types"]), output


@pytest.mark.slow
async def test_cli_honours_the_environment_proxy(fake: FakeTwoChat, no_env_proxies: Any) -> None:
    """twochat sends its request through HTTP_PROXY when the environment sets it."""
    async with Proxy() as proxy:
        code, output = await _twochat(
            "--base-url", fake.base_url, "did-types", env={"HTTP_PROXY": proxy.url}
        )
    assert (code, proxy.plain) == (0, [f"GET {fake.base_url}/open/numbers/did-types"]), output
