"""The only place that does I/O: one aiohttp pool, one ``request`` that every call goes through.

It owns the connection pool's lifecycle, the timeout, the response size cap, and the
mapping of every transport failure to a :mod:`twochat_async.errors` class.
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Mapping
from typing import Any

import aiohttp

from . import _wire
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    TwoChatError,
)

#: Default cap on a response body; 2Chat's largest documented answers are a few KiB.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

DEFAULT_USER_AGENT = (
    f"twochat-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)


class Transport:
    """Sends requests to 2Chat over one aiohttp ``ClientSession`` and decodes the answers."""

    __slots__ = (
        "_base_url",
        "_closed",
        "_get_headers",
        "_http",
        "_key",
        "_max_bytes",
        "_max_connections",
        "_owns_http",
        "_post_headers",
        "_timeout",
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout: aiohttp.ClientTimeout,
        http_session: aiohttp.ClientSession | None,
        max_connections: int,
        user_agent: str,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._http = http_session
        self._owns_http = http_session is None
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._closed = False
        # Built once: headers are the same on every call.
        self._get_headers = {
            "X-User-API-Key": api_key,
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._post_headers = {**self._get_headers, "Content-Type": "application/json"}

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def _session(self) -> aiohttp.ClientSession:
        http = self._http
        if self._closed:
            raise TwoChatError("This TwoChatSession is closed; create a new one to make calls.")
        if http is None:
            # Created here, inside the running loop: aiohttp refuses to build one outside.
            http = self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
            )
        elif http.closed:
            raise TwoChatError(
                "The http_session given to TwoChatSession is closed; "
                "keep it open for as long as the TwoChatSession is used."
            )
        return http

    async def close(self) -> None:
        """Close the pool if this transport created it; safe to call more than once."""
        self._closed = True
        http, self._http = self._http, None
        if http is not None and self._owns_http:
            await http.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send one request and return ``(status, decoded JSON object)``.

        Raises:
            APIError: 2Chat answered with an error.
            APIConnectionError: No usable answer arrived.
            APITimeoutError: No answer within the timeout.
            InvalidResponseError: The answer could not be decoded.
            TwoChatError: The session is closed.
        """
        http = self._session()
        try:
            async with http.request(
                method,
                self._base_url + path,
                params=params,
                data=body,
                headers=self._get_headers if body is None else self._post_headers,
                timeout=self._timeout,
                # Never follow a redirect: it would carry the API key to another host.
                allow_redirects=False,
                # Off whatever a borrowed session says: the error body holds 2Chat's message.
                raise_for_status=False,
            ) as response:
                status = response.status
                raw = await self._read(response)
                headers = response.headers
        except aiohttp.ConnectionTimeoutError as exc:
            raise APITimeoutError(
                f"Timed out connecting to {self._base_url} ({method} {path}); "
                "the request was not sent. Check base_url and your network.",
                request_sent=False,
            ) from exc
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(
                f"2Chat did not answer {method} {path} within {self._timeout.total} s; "
                "the request may have been processed.",
                request_sent=True,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise APIConnectionError(
                f"Cannot connect to {self._base_url} ({method} {path}): {exc.os_error}; "
                "the request was not sent. Check base_url and your network.",
                request_sent=False,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise APIConnectionError(
                f"The connection to {self._base_url} failed during {method} {path} "
                f"({type(exc).__name__}: {exc}); the request may have been processed.",
                request_sent=True,
            ) from exc
        try:
            return status, _wire.decode(status, headers, raw)
        except TwoChatError as exc:
            self._redact(exc)
            raise

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None and length <= self._max_bytes:
            return await response.read()
        if length is None:
            data = bytearray()
            async for chunk in response.content.iter_any():
                data += chunk
                if len(data) > self._max_bytes:
                    break
            else:
                return bytes(data)
        raise InvalidResponseError(
            f"2Chat's answer is larger than the {self._max_bytes}-byte cap; it was not read.",
            status=response.status,
        )

    def _redact(self, exc: TwoChatError) -> None:
        # An error is built from what the server sent: never let it carry our key.
        exc.args = tuple(_scrub(arg, self._key) for arg in exc.args)
        if isinstance(exc, APIError):
            exc.message = _scrub(exc.message, self._key)
        if isinstance(exc, (APIError, InvalidResponseError)):
            exc.body = _scrub(exc.body, self._key)


def _scrub(value: Any, secret: str) -> Any:
    """Return ``value`` with ``secret`` replaced by ``***`` in every string it holds."""
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {_scrub(key, secret): _scrub(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    return value
