"""proxy=, trust_env= and ssl=: through a real CONNECT proxy to a real HTTPS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from twochat_async import APIConnectionError, TwoChatSession
from twochat_async.testing import FakeTwoChat

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


async def test_cli_proxy_option_routes_the_command(fake: FakeTwoChat, no_env_proxies: Any) -> None:
    """twochat --proxy URL sends the command's request through that proxy."""
    async with Proxy() as proxy:
        code, output = await _twochat(
            "--base-url", fake.base_url, "--proxy", proxy.url, "did-types", env={}
        )
    assert (code, proxy.plain) == (0, [f"GET {fake.base_url}/open/numbers/did-types"]), output


async def test_cli_honours_the_environment_proxy(fake: FakeTwoChat, no_env_proxies: Any) -> None:
    """twochat sends its request through HTTP_PROXY when the environment sets it."""
    async with Proxy() as proxy:
        code, output = await _twochat(
            "--base-url", fake.base_url, "did-types", env={"HTTP_PROXY": proxy.url}
        )
    assert (code, proxy.plain) == (0, [f"GET {fake.base_url}/open/numbers/did-types"]), output
