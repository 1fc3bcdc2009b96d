"""pytest fixtures for code that uses twochat-async: a running fake 2Chat and a session.

Installed with the package and registered through the ``pytest11`` entry point; it adds
nothing to a test run but two fixtures, which need pytest-asyncio:

- ``twochat_fake``: a started `twochat_async.testing.FakeTwoChat`, stopped after
  the test;
- ``twochat_session``: a `twochat_async.TwoChatSession` pointed at it, closed
  after the test.

Override ``twochat_fake_options`` or ``twochat_session_options`` (dicts of keyword
arguments) in a ``conftest.py`` to configure them. Importing this module is cheap: the SDK
and aiohttp are imported only when a fixture is used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .. import TwoChatSession
    from ._fake import FakeTwoChat

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixtures need it; pytest itself does not
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "twochat_fake",
    "twochat_fake_options",
    "twochat_session",
    "twochat_session_options",
]


@pytest.fixture
def twochat_fake_options() -> dict[str, Any]:
    """Keyword arguments for the ``twochat_fake`` fixture's FakeTwoChat (override it)."""
    return {}


@pytest.fixture
def twochat_session_options() -> dict[str, Any]:
    """Keyword arguments for the ``twochat_session`` fixture's TwoChatSession (override it)."""
    return {}


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def twochat_fake(twochat_fake_options: dict[str, Any]) -> AsyncIterator[FakeTwoChat]:
        """A FakeTwoChat serving on 127.0.0.1 for the test; its ``base_url`` is set."""
        from ._fake import FakeTwoChat

        fake = FakeTwoChat(**twochat_fake_options)
        async with fake:
            yield fake

    @pytest_asyncio.fixture
    async def twochat_session(
        twochat_fake: FakeTwoChat, twochat_session_options: dict[str, Any]
    ) -> AsyncIterator[TwoChatSession]:
        """A TwoChatSession pointed at ``twochat_fake``, closed after the test."""
        from .. import TwoChatSession

        # trust_env=False: the fake is on this machine; an HTTP_PROXY of the environment
        # (a CI runner behind a proxy) must not send its requests away.
        options = {
            "base_url": twochat_fake.base_url,
            "trust_env": False,
            **twochat_session_options,
        }
        async with TwoChatSession(twochat_fake.api_key, **options) as session:
            yield session
