"""The transport over real loopback sockets: secrets, ``request_sent``, queueing, size caps.

Where FakeTwoChat cannot misbehave the way a test needs (a broken status line, a stalled
TLS handshake, a gzip bomb), a raw asyncio server on 127.0.0.1 plays 2Chat.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import subprocess
import sys
import textwrap
import traceback
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from twochat_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    TwoChatError,
    TwoChatSession,
)
from twochat_async.testing import FakeGroup, FakeTwoChat

# Long and varied, so that a 12-character piece of it cannot occur by chance.
KEY = "sk-live-9f3Q7xZ2mK8pL4vR1tW6yB0nC5hJ"

# -- a raw 2Chat stand-in -----------------------------------------------------------------

Reply = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback TCP server that reads one HTTP request per connection, then ``reply``.

    ``{key}`` in a reply stands for the ``X-User-API-Key`` the request carried: the server
    echoes the secret back, the way a misbehaving server or proxy might.
    """

    def __init__(self, reply: Reply | None) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
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
            writer.close()


def key_of(request: bytes) -> bytes:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"x-user-api-key":
            return value.strip()
    raise AssertionError("the request carried no API key")


def send(template: bytes) -> Reply:
    """Reply with ``template`` (``{key}`` replaced by the request's key), then close."""

    async def reply(request: bytes, reader: asyncio.StreamReader, writer: Any) -> None:
        writer.write(template.replace(b"{key}", key_of(request)))
        await writer.drain()

    return reply


async def hang(request: bytes, reader: asyncio.StreamReader, writer: Any) -> None:
    """Read the request, then never answer."""
    await reader.read()


def response(status: str, body: bytes, *headers: str) -> bytes:
    """An HTTP/1.1 answer whose Content-Length fits ``body`` once ``{key}`` is replaced."""
    length = len(body.replace(b"{key}", KEY.encode()))
    lines = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {length}", "", ""]
    return "\r\n".join(lines).encode() + body


# -- the key is in nothing the SDK raises ------------------------------------------------


def leaks(text: str, key: str = KEY) -> list[str]:
    """Return the pieces of ``key`` of 12 characters or more that ``text`` holds."""
    return [key[i : i + 12] for i in range(len(key) - 11) if key[i : i + 12] in text]


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


async def test_debug_logs_carry_no_key(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG logs of twochat_async and aiohttp, retries included, never hold the key."""
    caplog.set_level(logging.DEBUG)
    reply = send(response("503 Service Unavailable", b'{"error_message": "down {key}"}'))
    async with RawServer(reply) as server:
        error = await failure_of(server.url, call="reservations", max_retries=2)
    assert len(server.requests) == 3
    assert any("Retrying" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert not leaks(record.getMessage()), record.getMessage()
    assert_clean(error)


# -- request_sent tells the truth --------------------------------------------------------


async def test_a_stalled_tls_handshake_times_out_as_not_sent_and_a_post_is_retried() -> None:
    """A timeout before the request is written is request_sent=False; a POST is re-sent."""
    async with RawServer(None) as server:
        url = f"https://127.0.0.1:{server.port}"
        error = await failure_of(url, timeout=0.3, max_retries=2)
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
        replies: dict[str, Reply | None] = {
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
    fake = FakeTwoChat(KEY, latency=0.5, groups=[FakeGroup("big", "US", numbers)])
    async with fake as url, TwoChatSession(KEY, base_url=url, timeout=3, max_retries=0) as chat:
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
    import asyncio, resource, sys, time
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
    print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def gzip_bomb(inflated: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [packer.compress(chunk) for _ in range(inflated >> 20)]
    return b"".join([*parts, packer.flush()])


@asynccontextmanager
async def serving(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_gzip_bomb_is_refused_within_the_cap_on_owned_and_borrowed_pools() -> None:
    """1 MiB of gzip inflating to 1 GiB is an InvalidResponseError, with bounded memory."""
    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 4 << 20

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serving(handler) as url:
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
    rss_mib = int(lines[-1].split()[1]) / 1024
    assert rss_mib < 300, f"the client grew to {rss_mib:.0f} MiB"


async def test_a_small_gzip_answer_is_decoded() -> None:
    """A gzip-encoded answer within the cap is decompressed and decoded as usual."""
    payload = {"success": True, "data": []}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(json.dumps(payload).encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async with serving(handler) as url, TwoChatSession(KEY, base_url=url) as chat:
        assert await chat.reservations() == []


async def test_an_unknown_content_encoding_is_an_invalid_response() -> None:
    """An answer in an encoding the SDK does not decode is refused, not misread."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"\x00\x01", headers={"Content-Encoding": "br"})

    async with serving(handler) as url:
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
