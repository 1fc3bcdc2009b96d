"""Shared fixtures: a running FakeTwoChat, a session pointed at it, and aioresponses."""

from __future__ import annotations

import asyncio
import threading
import unittest.mock
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat

# The SDK's own fixtures (twochat_fake, twochat_session), loaded here rather than through
# their entry point so that coverage sees the package imported (see pyproject addopts).
pytest_plugins = ["twochat_async.testing.pytest_plugin"]

API_KEY = "test-secret-key-0123456789"


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

    async def serve() -> None:
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        stop_box.append(stop)
        async with fake:
            started.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not started.wait(timeout=10):
        raise RuntimeError("the fake did not start")
    try:
        yield fake
    finally:
        loop_box[0].call_soon_threadsafe(stop_box[0].set)
        thread.join(timeout=10)
