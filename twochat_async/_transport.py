"""The only place that does I/O: one aiohttp pool, one ``request`` that every call goes through.

It owns the connection pool's lifecycle, the timeout, the response size cap, the
mapping of every transport failure to a `twochat_async.errors` class, the retry
policy, and the rate limiter shared by every task using the session.

The pool belongs to the event loop it was created on, and is closed with it: asyncio
finalizes open async generators before it closes a loop (``asyncio.run`` does), and one
of them holds the pool. A call from a later loop gets a new pool; a call from another
loop while the pool's own is still open is refused before anything is sent.

Retries never risk buying twice: a POST is re-sent only when 2Chat surely did not act on
it (a 429, or a failure to connect); GET and DELETE are idempotent and are re-sent on
connection failures, timeouts and the statuses 2Chat tells clients to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import platform
import random
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
import attrs

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

#: Statuses 2Chat documents as passing (409 booting, 410 connecting, 429 rate limited,
#: 486 busy, 503/504 unavailable) plus 500/502; retried for idempotent methods only.
RETRY_STATUSES = frozenset({409, 410, 429, 486, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: The longest Retry-After that is waited for; a longer one is raised at once.
MAX_RETRY_AFTER = 60.0
#: How long the limiter pauses after a 429 that carried no Retry-After.
DEFAULT_429_PAUSE = 1.0

logger = logging.getLogger("twochat_async")

DEFAULT_USER_AGENT = (
    f"twochat-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)


class Transport:
    """Sends requests to 2Chat over one aiohttp ``ClientSession`` and decodes the answers."""

    __slots__ = (
        "_account_limit",
        "_base_url",
        "_closed",
        "_get_headers",
        "_guard",
        "_http",
        "_key",
        "_limiter",
        "_loop",
        "_max_bytes",
        "_max_connections",
        "_max_retries",
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
        max_retries: int = 2,
        limiter: RateLimiter | None = None,
        account_limit: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._key = api_key
        self._max_retries = max_retries
        self._limiter = limiter
        # rate_limit="account": the limiter is built from GET /open/info on first use.
        self._account_limit: asyncio.Future[None] | bool = account_limit
        self._base_url = base_url
        self._timeout = timeout
        self._http = http_session
        self._owns_http = http_session is None
        # The loop self._http belongs to (a borrowed one's: the loop of its first use), and
        # for our own pool the async generator that closes it with that loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._max_connections = max_connections
        self._max_bytes = max_response_bytes
        self._closed = False
        # Built once: headers are the same on every call.
        self._get_headers = {
            "X-User-API-Key": api_key,
            "Accept": "application/json",
            # Uncompressed answers (2Chat's are a few KiB): the size cap then bounds what
            # is decompressed too, so no small compressed body can expand past it.
            "Accept-Encoding": "identity",
            "User-Agent": user_agent,
        }
        self._post_headers = {**self._get_headers, "Content-Type": "application/json"}

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._closed

    def _session(self) -> aiohttp.ClientSession:
        """Return the pool for the running loop, creating ours on first use.

        Raises:
            TwoChatError: The session is closed, the borrowed pool is closed, or the pool
                belongs to another event loop that is still open.
        """
        http = self._http
        if self._closed:
            raise TwoChatError("This TwoChatSession is closed; create a new one to make calls.")
        loop = asyncio.get_running_loop()
        if http is None or (http.closed and self._owns_http):
            # First use, or our pool was closed with its loop.
            return self._open_pool(loop)
        if http.closed:
            raise TwoChatError(
                "The http_session given to TwoChatSession is closed; "
                "keep it open for as long as the TwoChatSession is used."
            )
        if self._loop is not loop:
            return self._change_loop(http, loop)
        return http

    def _open_pool(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        """Create our pool on ``loop``, the running one, to be closed with it."""
        # Created here, inside the running loop: aiohttp refuses to build one outside.
        http = self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            timeout=self._timeout,
        )
        self._loop = loop
        guard = self._guard = _closed_with_loop(http)
        # Started here, in the running loop, the generator is registered with that loop,
        # which closes it before the loop itself: loop.shutdown_asyncgens(), called by
        # asyncio.run() and asyncio.Runner.
        with contextlib.suppress(StopIteration):
            guard.asend(None).send(None)
        return http

    def _change_loop(
        self, http: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop
    ) -> aiohttp.ClientSession:
        """Return the pool to use from ``loop``, whose pool belongs to another loop."""
        owner = self._loop
        if owner is None:
            self._loop = loop  # a borrowed pool's first use
            return http
        whose = "its connection pool" if self._owns_http else "the http_session given to it"
        if not owner.is_closed():
            raise TwoChatError(
                f"This TwoChatSession was called from an event loop other than that of "
                f"{whose}, which is still open (in another thread?); nothing was sent. "
                "Use one TwoChatSession per event loop (or thread), or submit the call to "
                "the session's own loop with asyncio.run_coroutine_threadsafe(coro, loop)."
            )
        if not self._owns_http:
            raise TwoChatError(
                "The http_session given to TwoChatSession belongs to an event loop that is "
                "closed; nothing was sent. Pass an aiohttp.ClientSession created on the loop "
                "that makes the calls, or none: TwoChatSession then makes its own."
            )
        # The loop ended without closing the pool (it was closed without
        # loop.shutdown_asyncgens()): release it, and start a new one on this loop.
        _dispose(http)
        return self._open_pool(loop)

    async def close(self) -> None:
        """Close the pool if this transport created it; safe to call more than once."""
        self._closed = True
        http, self._http = self._http, None
        guard, self._guard = self._guard, None
        loop = self._loop
        if http is None or guard is None or loop is None:
            return  # no pool was opened, or it is borrowed: not ours to close
        if loop is asyncio.get_running_loop():
            await guard.aclose()
        elif loop.is_closed():
            _dispose(http)
        else:
            # Its loop is open in another thread: the pool is closed there, where its
            # sockets are served.
            asyncio.run_coroutine_threadsafe(_aclose(guard), loop)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send a request, retrying as the policy allows; return ``(status, JSON object)``.

        Raises:
            APIError: 2Chat answered with an error (after any retries).
            APIConnectionError: No usable answer arrived.
            APITimeoutError: No answer within the timeout.
            InvalidResponseError: The answer could not be decoded.
            TwoChatError: The session is closed, or its pool belongs to another event loop
                that is still open.
        """
        # Checked first: from a wrong loop nothing is sent, waited for or counted.
        self._session()
        if self._account_limit is not False:
            await self._limit_from_account()
        attempt = 0
        while True:
            limiter = self._limiter
            if limiter is not None and not limiter.take():
                await limiter.acquire()
            try:
                return await self._send(method, path, params, body)
            except (APIError, APIConnectionError) as exc:
                delay = self._retry_delay(method, exc, attempt)
                if isinstance(exc, APIError) and exc.status == 429 and self._limiter is not None:
                    self._limiter.pause(exc.retry_after)
                if delay is None:
                    raise
                attempt += 1
                logger.debug(
                    "Retrying %s %s in %.2f s (retry %d of %d) after: %s",
                    method,
                    path,
                    delay,
                    attempt,
                    self._max_retries,
                    exc,
                )
            await asyncio.sleep(delay)

    def _retry_delay(
        self, method: str, exc: APIError | APIConnectionError, attempt: int
    ) -> float | None:
        """Return the seconds to wait before retrying, or ``None`` to raise ``exc``."""
        if attempt >= self._max_retries:
            return None
        if isinstance(exc, APIConnectionError):
            # A POST that may have reached 2Chat is never re-sent: it could buy twice.
            if exc.request_sent and method not in IDEMPOTENT_METHODS:
                return None
        elif exc.status not in RETRY_STATUSES or (
            exc.status != 429 and method not in IDEMPOTENT_METHODS
        ):
            return None
        elif exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= MAX_RETRY_AFTER else None
        # Exponential backoff with full jitter (spreads out tasks that failed together).
        return random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311

    async def _limit_from_account(self) -> None:
        """Build the limiter from the account's ``requests_per_minute``, once."""
        fetch = self._account_limit
        loop = asyncio.get_running_loop()
        # A fetch of a loop closed before it finished never will: start another.
        if not isinstance(fetch, asyncio.Future) or fetch.get_loop() is not loop:
            # One fetch for every waiting call, in its own task: a caller cancelled while
            # waiting does not cancel it for the others.
            fetch = self._account_limit = loop.create_task(self._fetch_account_limit())
            fetch.add_done_callback(self._account_limit_fetched)
        await asyncio.shield(fetch)

    def _account_limit_fetched(self, fetch: asyncio.Future[None]) -> None:
        # Here, not in the task: a task left on a closed loop never ends, and its
        # coroutine, closed when collected, must not reset the state of a later fetch.
        failed = fetch.cancelled() or fetch.exception() is not None
        if self._account_limit is fetch:
            self._account_limit = failed  # True: the next call tries again

    async def _fetch_account_limit(self) -> None:
        status, payload = await self._send("GET", "/open/info", None, None)
        rate = _wire.field(payload, "limits", "requests_per_minute", status=status)
        try:
            self._limiter = RateLimiter(RateLimit.of(rate))
        except ValueError as exc:
            raise InvalidResponseError(
                f"2Chat's /open/info has no usable limits.requests_per_minute: {exc}",
                status=status,
                body=payload,
            ) from exc

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
    ) -> tuple[int, dict[str, Any]]:
        """Send one request and return ``(status, decoded JSON object)``."""
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
                length = response.content_length
                if length is not None and length <= self._max_bytes:
                    raw = await response.read()  # the usual case, inline: no extra frame
                else:
                    raw = await self._read_capped(response)
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

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        """Read a body of unknown or excessive length, stopping at the size cap."""
        if response.content_length is None:
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


async def _closed_with_loop(http: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Hold ``http`` open until closed: by `Transport.close()` or by the loop's shutdown."""
    try:
        yield
    finally:
        await http.close()


async def _aclose(guard: AsyncGenerator[None, None]) -> None:
    """Close ``guard``; a coroutine, as ``asyncio.run_coroutine_threadsafe`` takes."""
    await guard.aclose()


def _dispose(http: aiohttp.ClientSession) -> None:
    """Close a pool whose event loop is closed, without a loop.

    With its loop closed, aiohttp's ``close()`` has nothing it can wait for and returns at
    once (the sockets it could not close are the garbage collector's, as asyncio leaves
    them when a loop is closed without shutting it down); so it is run to its end here.
    """
    closing = http.close()
    with contextlib.suppress(StopIteration):
        closing.send(None)
    closing.close()  # nothing once finished; stops it if aiohttp ever waits here


def _scrub(value: Any, secret: str) -> Any:
    """Return ``value`` with ``secret`` replaced by ``***`` in every string it holds."""
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {_scrub(key, secret): _scrub(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secret) for item in value]
    return value


@attrs.frozen
class RateLimit:
    """A client-side request budget: ``per_minute`` requests, at most ``burst`` at once.

    With ``burst=1`` requests are paced evenly, one every ``60 / per_minute`` seconds.

    Attributes:
        per_minute: Requests allowed per minute (2Chat: 80 on paid plans, 30 on trial).
        burst: Requests that may go out back to back after an idle spell.
    """

    per_minute: float
    burst: int = 1

    def __attrs_post_init__(self) -> None:
        if isinstance(self.per_minute, bool) or not isinstance(self.per_minute, (int, float)):
            raise ValueError(f"per_minute must be a number, got {self.per_minute!r}")
        if not (math.isfinite(self.per_minute) and self.per_minute > 0):
            raise ValueError(f"per_minute must be a positive number, got {self.per_minute!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"burst must be an int of at least 1, got {self.burst!r}")

    @classmethod
    def of(cls, value: Any) -> RateLimit:
        """Return ``value`` as a `RateLimit` (a number means ``burst=1``).

        Args:
            value: A `RateLimit`, or requests per minute (an ``int`` or ``float``).

        Returns:
            ``value`` itself if it is a `RateLimit`, else ``RateLimit(value)``.

        Raises:
            ValueError: ``value`` is neither a `RateLimit` nor a positive, finite number.
        """
        return value if isinstance(value, RateLimit) else cls(value)


class RateLimiter:
    """Hands out request slots at a `RateLimit`, shared by every task of a session.

    A token bucket of ``burst`` tokens refilled at the limit's rate, checked when a slot
    is handed out (not booked ahead), so the pace holds in real time even after the event
    loop stalls. Waiters queue in order on one lock; only the first of them sleeps. A 429
    from 2Chat empties the bucket and pauses every caller, not just the one that got it.

    It is used from one event loop at a time, and its state carries over to the next one:
    the pace holds across ``asyncio.run()`` calls, as asyncio's loops all tell time by
    ``time.monotonic()``.
    """

    __slots__ = (
        "_burst",
        "_lock",
        "_lock_loop",
        "_paused_until",
        "_per_second",
        "_tokens",
        "_updated",
    )

    def __init__(self, limit: RateLimit) -> None:
        self._per_second = limit.per_minute / 60.0
        self._burst = float(limit.burst)
        self._tokens = self._burst
        self._updated = -math.inf  # on the loop's clock; the bucket starts full
        self._paused_until = 0.0
        # An asyncio.Lock binds to the first loop that waits on it: one per loop.
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def take(self) -> bool:
        """Take a slot if one is free now and nobody waits; return whether it did.

        The hot path of a limit that is not reached: no coroutine, no lock.
        """
        if self._lock.locked():
            return False
        now = asyncio.get_running_loop().time()
        tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        if tokens < 1.0 or now < self._paused_until:
            return False
        self._tokens, self._updated = tokens - 1.0, now
        return True

    async def acquire(self) -> None:
        """Wait for a slot; cancellable, and counted against no request timeout."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        cap = self._burst
        async with self._lock:
            while True:
                now = loop.time()
                refill = (now - self._updated) * self._per_second
                self._tokens = min(cap, self._tokens + refill)
                self._updated = now
                wait = max(self._paused_until - now, (1.0 - self._tokens) / self._per_second)
                if wait <= 0.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep(wait)  # a 429 meanwhile is seen on the next turn
                # Sleeps end late (the loop's clock ticks in milliseconds): keep up to one
                # token of that lateness, or a backlog would drift below the pace.
                cap = self._burst + 1.0

    def pause(self, seconds: float | None) -> None:
        """Hold every caller back after a 429, for ``seconds`` (or a default pause)."""
        wait = DEFAULT_429_PAUSE if seconds is None else min(seconds, MAX_RETRY_AFTER)
        until = asyncio.get_running_loop().time() + wait
        self._paused_until = max(self._paused_until, until)
        self._tokens = min(self._tokens, 0.0)
