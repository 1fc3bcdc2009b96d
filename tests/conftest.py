"""Shared fixtures and helpers: the fake and a session on it, servers, aioresponses, env."""

from __future__ import annotations

import asyncio
import socket
import threading
import unittest.mock
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses

from twochat_async import Limiter, TwoChatSession
from twochat_async.testing import FakeTwoChat, Reply

# The SDK's own fixtures (twochat_fake, twochat_session), loaded here rather than through
# their entry point so that coverage sees the package imported (see pyproject addopts).
pytest_plugins = ["twochat_async.testing.pytest_plugin"]

#: Long and varied, so that no 12-character piece of it occurs in a body by chance.
API_KEY = "test-secret-key-0123456789"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fleet's runs first: they are the longest tests (20 s each, one worker runs
    them all), and with ``pytest -n 4`` the other workers meanwhile take the rest."""
    items.sort(key=lambda item: item.path.name != "test_fleet.py")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own TWOCHAT_* settings out of every test."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)


@pytest.fixture
def twochat_fake_options() -> dict[str, Any]:
    """The plugin's fake accepts this suite's key."""
    return {"api_key": API_KEY}


@pytest.fixture
def twochat_session_options() -> dict[str, Any]:
    """Retries off: each scripted reply of the fake maps to exactly one call."""
    return {"timeout": 5, "max_retries": 0}


@pytest.fixture
def fake(twochat_fake: FakeTwoChat) -> FakeTwoChat:
    """The plugin's running FakeTwoChat (``twochat_fake``), under a short name."""
    return twochat_fake


@pytest.fixture
def chat(twochat_session: TwoChatSession) -> TwoChatSession:
    """The plugin's session pointed at the fake (``twochat_session``), under a short name."""
    return twochat_session


def envelope(message: str) -> dict[str, Any]:
    """2Chat's documented error envelope around ``message``."""
    return {"success": False, "error": True, "error_message": message}


def refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """A scripted error answer in 2Chat's envelope."""
    return Reply(status, json=envelope(message), headers=headers or {})


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true, checking it at every turn of the event loop.

    For a state with no event to await (a task that reached its next ``await``); a
    request in flight is awaited with ``FakeTwoChat.received()`` instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"still false after {timeout} s: {condition}")
        await asyncio.sleep(0)


class Watched(Limiter):
    """A Limiter handing out the slots of ``inner``, keeping count and time of its callers.

    Attributes:
        entered: How many acquire() calls began (waiting or served).
        granted: When each slot was handed out, on the loop's clock, in order: read in the
            same step as the limiter's own decision, so not moved by a busy machine.
    """

    def __init__(self, inner: Limiter) -> None:
        self.inner = inner
        self.entered = 0
        self.granted: list[float] = []

    async def acquire(self) -> None:
        self.entered += 1
        await self.inner.acquire()
        self.granted.append(asyncio.get_running_loop().time())

    async def pause(self, seconds: float | None) -> None:
        await self.inner.pause(seconds)

    def bind(self, api_key_digest: str, account_limit: Any) -> None:
        self.inner.bind(api_key_digest, account_limit)

    async def aclose(self) -> None:
        await self.inner.aclose()


def free_port() -> int:
    """Return a loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handler`` for every method and path on 127.0.0.1; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


class _BridgedResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.9 builds ClientResponse without the keyword-only `stream_writer`
    # that aiohttp 3.14 requires; upstream: https://github.com/pnuckowski/aioresponses/issues/289
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", unittest.mock.Mock(output_size=0))
        super().__init__(*args, **kwargs)


class BridgedAioresponses(aioresponses):  # type: ignore[misc]
    """aioresponses whose mocked responses work on aiohttp 3.14 (see _BridgedResponse)."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _BridgedResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[BridgedAioresponses]:
    """Pins exact request shapes: every aiohttp request in the test is answered by mocks."""
    with BridgedAioresponses() as mock:
        yield mock


@contextmanager
def fake_in_thread(api_key: str = API_KEY, **options: Any) -> Iterator[FakeTwoChat]:
    """Run a FakeTwoChat on its own event loop in a background thread.

    For code under test that runs its own loop (the CLI's asyncio.run, a subprocess). The
    thread's loop is run by asyncio.run, so its shutdown closes every transport.
    """
    fake = FakeTwoChat(api_key=api_key, **options)
    started = threading.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []
    stop_box: list[asyncio.Event] = []

    async def serve_fake() -> None:
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        stop_box.append(stop)
        async with fake:
            started.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve_fake(),), daemon=True)
    thread.start()
    if not started.wait(timeout=10):
        raise RuntimeError("the fake did not start")
    try:
        yield fake
    finally:
        loop_box[0].call_soon_threadsafe(stop_box[0].set)
        thread.join(timeout=10)
