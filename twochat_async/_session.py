"""``TwoChatSession``: the public entry point, one small method per 2Chat endpoint."""

from __future__ import annotations

import os
from types import TracebackType
from typing import TypeVar

import aiohttp
from yarl import URL

from . import _wire
from ._transport import DEFAULT_USER_AGENT, Transport
from .models import Reservation

__all__ = ["DEFAULT_BASE_URL", "TwoChatSession"]

DEFAULT_BASE_URL = "https://api.p.2chat.io"
API_KEY_ENV = "TWOCHAT_API_KEY"
BASE_URL_ENV = "TWOCHAT_BASE_URL"

_RESERVATIONS = "/open/numbers/reservations"

_S = TypeVar("_S", bound="TwoChatSession")


class TwoChatSession:
    """An async client for 2Chat's Numbers API, holding one connection pool.

    Create one per application and share it between tasks: every call is safe to run
    concurrently with others. Use it as an async context manager, or call :meth:`close`.

    Args:
        api_key: Your 2Chat API key; defaults to the ``TWOCHAT_API_KEY`` environment variable.
        base_url: The API's address; defaults to ``TWOCHAT_BASE_URL``, then
            ``https://api.p.2chat.io``.
        timeout: Total seconds allowed per request, or an ``aiohttp.ClientTimeout``.
        http_session: An aiohttp ``ClientSession`` to borrow instead of creating one; it is
            never closed by this object.
        max_connections: The size of the connection pool this object creates.
        user_agent: The ``User-Agent`` header; defaults to
            ``twochat-async/<version> aiohttp/<version> python/<version>``.

    Raises:
        ValueError: No API key was given nor found in ``TWOCHAT_API_KEY``, or another
            argument is invalid.
    """

    __slots__ = ("_base_url", "_transport")

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        http_session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            raise ValueError(
                f"No 2Chat API key: pass api_key=... or set the {API_KEY_ENV} environment variable."
            )
        if not isinstance(key, str) or key != key.strip() or not key.isprintable():
            # The message never quotes the key: it is a secret.
            raise ValueError("api_key must be a string without spaces or control characters.")
        self._base_url = _check_base_url(
            base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        )
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ValueError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._transport = Transport(
            api_key=key,
            base_url=self._base_url,
            timeout=_check_timeout(timeout),
            http_session=http_session,
            max_connections=max_connections,
            user_agent=user_agent or DEFAULT_USER_AGENT,
        )

    @property
    def base_url(self) -> str:
        """The address requests go to, without a trailing slash."""
        return self._base_url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._transport.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<TwoChatSession base_url={self._base_url!r} {state}>"

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (unless borrowed); later calls raise ``TwoChatError``.

        Calling it again does nothing.
        """
        await self._transport.close()

    async def reserve(self, group_id: str, number: str | None = None) -> Reservation:
        """Reserve a number of a group, to purchase or cancel before it expires.

        Args:
            group_id: The number group's id, from ``groups()``.
            number: A specific number of the group, in E.164; ``None`` reserves a random
                available one.

        Returns:
            The reservation, with ``group_id`` set to the group asked for.

        Raises:
            ValueError: ``group_id`` is empty or ``number`` is not E.164 (nothing is sent).
            NotFoundError: 2Chat does not know the group.
            UnprocessableEntityError: The number is not available in the group.
            TwoChatError: Any other failure; see :mod:`twochat_async.errors`.
        """
        body = _wire.reservation_body(group_id, number)
        status, payload = await self._transport.request("POST", _RESERVATIONS, body=body)
        return _wire.decode_reservation(payload, status=status, group_id=group_id)


def _check_base_url(value: str) -> str:
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {value!r}"
        )
    if url.query_string or url.fragment or url.user or url.password:
        raise ValueError("base_url must not carry credentials, a query or a fragment.")
    return str(url).rstrip("/")


def _check_timeout(value: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    if isinstance(value, aiohttp.ClientTimeout):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {value!r}")
    return aiohttp.ClientTimeout(total=float(value))
