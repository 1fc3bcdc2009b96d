"""pytest fixtures for code that uses twochat-async: a running fake 2Chat and a session.

Installed with the package and registered through the ``pytest11`` entry point; it adds
nothing to a test run but two fixtures, which need pytest-asyncio (``pip install
"twochat-async[pytest]"`` brings it; without it they fail, saying so):

- ``twochat_fake``: a started `twochat_async.testing.FakeTwoChat`, stopped after
  the test;
- ``twochat_session``: a `twochat_async.TwoChatSession` pointed at it, closed
  after the test.

Override ``twochat_fake_options`` or ``twochat_session_options`` (dicts of keyword
arguments) in a ``conftest.py`` to configure them. Importing this module is cheap: the SDK
and aiohttp are imported only when a fixture is used.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from .. import TwoChatSession
    from ._fake import FakeTwoChat

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - tests/test_pytest_plugin.py runs this in a subprocess
    pytest_asyncio = None  # type: ignore[assignment]

_F = TypeVar("_F", bound=Callable[..., Any])

MISSING_PYTEST_ASYNCIO = (
    "The {name} fixture of twochat-async is asynchronous and needs pytest-asyncio, which "
    'is not installed. Install it with: pip install "twochat-async[pytest]"'
)

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


def _async_fixture(func: _F) -> _F:
    """pytest-asyncio's fixture decorator; without pytest-asyncio, a failing stand-in.

    The stand-in has the fixture's name and arguments and fails the test that uses it,
    saying how to install pytest-asyncio: a fixture that did not exist at all would be
    reported by pytest as a typo in the test.
    """
    if pytest_asyncio is not None:
        return cast(_F, pytest_asyncio.fixture(func))
    return _failing_fixture(func)  # pragma: no cover - run in a subprocess by the tests


def _failing_fixture(func: _F) -> _F:  # pragma: no cover - run in a subprocess by the tests
    """A synchronous fixture named and called like ``func`` that fails with how to install."""

    def fail(*args: Any, **kwargs: Any) -> NoReturn:
        pytest.fail(MISSING_PYTEST_ASYNCIO.format(name=func.__name__), pytrace=False)

    # Not functools.wraps: pytest would follow its __wrapped__ to the async function.
    fail.__name__ = fail.__qualname__ = func.__name__
    fail.__doc__ = func.__doc__
    fail.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    return cast(_F, pytest.fixture(fail))


@_async_fixture
async def twochat_fake(twochat_fake_options: dict[str, Any]) -> AsyncIterator[FakeTwoChat]:
    """A FakeTwoChat serving on 127.0.0.1 for the test; its ``base_url`` is set."""
    from ._fake import FakeTwoChat

    fake = FakeTwoChat(**twochat_fake_options)
    async with fake:
        yield fake


@_async_fixture
async def twochat_session(
    twochat_fake: FakeTwoChat, twochat_session_options: dict[str, Any]
) -> AsyncIterator[TwoChatSession]:
    """A TwoChatSession pointed at ``twochat_fake``, closed after the test."""
    from .. import TwoChatSession

    # trust_env=False: the fake is on this machine; an HTTP_PROXY of the environment
    # (a CI runner behind a proxy) must not send its requests away.
    options = {"base_url": twochat_fake.base_url, "trust_env": False, **twochat_session_options}
    async with TwoChatSession(twochat_fake.api_key, **options) as session:
        yield session
