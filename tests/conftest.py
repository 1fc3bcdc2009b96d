"""Shared fixtures: a running FakeTwoChat, a session pointed at it, and aioresponses."""

from __future__ import annotations

import asyncio
import threading
import unittest.mock
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat

API_KEY = "test-secret-key-0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwoChat]:
    """A FakeTwoChat serving on 127.0.0.1 for the test's duration."""
    server = FakeTwoChat(api_key=API_KEY)
    async with server:
        yield server


@pytest.fixture
async def chat(fake: FakeTwoChat) -> AsyncIterator[TwoChatSession]:
    """A TwoChatSession pointed at the running fake, without retries, closed after the test."""
    # Retries off: each scripted reply of the fake maps to exactly one call.
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=5, max_retries=0) as session:
        yield session


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

    For code under test that runs its own loop (the CLI's asyncio.run, a subprocess).
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> FakeTwoChat:
        fake = FakeTwoChat(api_key=api_key, **options)
        await fake.start()
        return fake

    try:
        fake = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
        try:
            yield fake
        finally:
            asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
