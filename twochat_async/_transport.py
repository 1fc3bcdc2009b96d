"""The only place that does I/O: one aiohttp pool, one ``request`` that every call goes through.

It owns the connection pool's lifecycle, the request loop (the rate limiter's slots, the
retries `_wire.retry_delay` decides), sending, reading under a size cap, the mapping of
every transport failure to a `twochat_async.errors` class, and the scrubbing of the API
key from whatever comes back.

The pool belongs to the event loop it was created on, and is closed with it: asyncio
finalizes open async generators before it closes a loop (``asyncio.run`` does), and one
of them holds the pool. A call from a later loop gets a new pool; a call from another
loop while the pool's own is still open is refused before anything is sent.

Retries never risk buying twice: whether a failed request may be sent again is decided
by `_wire.retry_delay`, from ``request_sent``, which this module keeps exact.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import platform
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from ssl import SSLContext
from typing import Any, Literal, NamedTuple

import aiohttp
from aiohttp import hdrs
from aiohttp.helpers import get_env_proxy_for_url
from aiohttp.payload import BytesPayload
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _wire
from ._limit import Limiter, RateLimiter
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    TwoChatError,
)
from .models import RateLimit

#: The cap on a response body; 2Chat's largest documented answers are a few KiB.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

logger = logging.getLogger("twochat_async")

DEFAULT_USER_AGENT = (
    f"twochat-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)


class Network(NamedTuple):
    """How our pool reaches 2Chat (a borrowed session keeps its own settings)."""

    #: The proxy given explicitly, credentials included; it wins over the environment.
    proxy: URL | None = None
    #: Whether ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured.
    trust_env: bool = True
    #: The TLS context; ``None`` for aiohttp's default (verified against the system's CAs).
    ssl: SSLContext | None = None


class Transport:
    """Sends requests to 2Chat over one aiohttp ``ClientSession`` and decodes the answers."""

    __slots__ = (
        "_account_limit",
        "_adopter",
        "_base_url",
        "_closed",
        "_get_headers",
        "_guard",
        "_headers",
        "_http",
        "_key",
        "_limiter",
        "_loop",
        "_max_connections",
        "_max_retries",
        "_network",
        "_options",
        "_owns_http",
        "_post_headers",
        "_proxy",
        "_redactor",
        "_request_class",
        "_slots",
        "_take",
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
        max_retries: int,
        limiter: Limiter | Literal["account"] | None,
        network: Network,
    ) -> None:
        self._key = api_key
        self._network = network
        # The proxy in use by our pool, without credentials: set when the pool is made.
        self._proxy: URL | None = None if network.proxy is None else _public(network.proxy)
        self._max_retries = max_retries
        self._limiter: Limiter | None = None
        self._take: Callable[[], bool] = _never
        # A limiter shared beyond this process keys its budget by the API key's hash.
        bind = getattr(limiter, "bind", None)
        if bind is not None:
            bind(hashlib.sha256(api_key.encode()).hexdigest())
        # rate_limit="account", or a limiter whose per_minute is "account": it is built
        # (or told its rate, through adopt()) from GET /open/info on first use.
        account = limiter == "account" or getattr(limiter, "per_minute", None) == "account"
        self._adopter: Any = None if limiter == "account" or not account else limiter
        if not account:
            self._set_limiter(limiter)  # type: ignore[arg-type]
        self._account_limit: asyncio.Future[None] | bool = account
        self._base_url = base_url
        self._timeout = timeout
        self._http = http_session
        self._owns_http = http_session is None
        # The loop self._http belongs to (a borrowed one's: the loop of its first use), and
        # for our own pool the async generator that closes it with that loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None
        self._max_connections = max_connections
        self._closed = False
        self._redactor = Redactor(api_key)
        # One slot per pooled connection, taken before aiohttp is asked for one: waiting
        # for a free connection then happens here, where no timeout runs, and never in
        # aiohttp's pool, where it would count against the request's timeout.
        self._slots: _Slots | None = None
        # The same on every call. Our own pool sends them as its request class's defaults
        # (see _request_class) and takes a body's Content-Type from its payload; a
        # borrowed pool is given them all with every request (its own default headers
        # would win over the payload's), built once as the multidict aiohttp would
        # otherwise convert them to.
        headers = self._headers = CIMultiDictProxy(
            CIMultiDict(
                {
                    "X-User-API-Key": api_key,
                    "Accept": "application/json",
                    # Uncompressed answers (2Chat's are a few KiB): the size cap then bounds
                    # what is decompressed too, so no small compressed body can expand past it.
                    "Accept-Encoding": "identity",
                    "User-Agent": user_agent,
                }
            )
        )
        self._request_class = _request_class(headers)
        self._get_headers: CIMultiDictProxy[str] | None = None
        self._post_headers: CIMultiDictProxy[str] | None = None
        # What a borrowed pool is told with every request; ours is made with it.
        self._options: dict[str, Any] = {}
        if http_session is not None:
            self._get_headers = headers
            self._post_headers = CIMultiDictProxy(CIMultiDict({**headers, **_JSON_BODY}))
            self._options = {
                "timeout": timeout,
                # Off whatever a borrowed session says: the error body holds 2Chat's message.
                "raise_for_status": False,
                # Decompressed by us, under the size cap (a small gzip body can inflate to
                # gigabytes); we ask for identity, so this is rare.
                "auto_decompress": False,
            }

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._closed

    @property
    def proxy_shown(self) -> str | None:
        """The proxy our pool goes through, without credentials, or ``None``."""
        return None if self._proxy is None else str(self._proxy)

    def _set_limiter(self, limiter: Limiter | None) -> None:
        self._limiter = limiter
        # A limiter's synchronous fast path, if it has one: no coroutine while slots are free.
        self._take = getattr(limiter, "take", _never)

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
        if http is None:
            return self._open_pool(loop)  # first use
        if http.closed:
            if self._owns_http:
                return self._open_pool(loop)  # our pool was closed with its loop
            raise TwoChatError(
                "The http_session given to TwoChatSession is closed; "
                "keep it open for as long as the TwoChatSession is used."
            )
        if self._loop is not loop:
            return self._change_loop(http, loop)
        return http

    def _open_pool(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        """Create our pool on ``loop``, the running one, to be closed with it."""
        network = self._network
        # An explicit proxy keeps its credentials in its URL, where aiohttp reads them.
        proxy, auth = network.proxy, None
        if proxy is None and network.trust_env:
            # Read here, once per pool, by aiohttp's own rules (urllib's NO_PROXY matching):
            # ClientSession(trust_env=True) would look the environment up on every request,
            # on a thread, and read ~/.netrc too.
            with contextlib.suppress(LookupError):
                proxy, auth = get_env_proxy_for_url(URL(self._base_url))
        self._proxy = None if proxy is None else _public(proxy)
        # Created here, inside the running loop: aiohttp refuses to build one outside.
        http = self._http = aiohttp.ClientSession(
            connector=_Connector(
                limit=self._max_connections, ssl=True if network.ssl is None else network.ssl
            ),
            timeout=self._timeout,
            headers=None if self._request_class is not None else self._headers,
            request_class=self._request_class or aiohttp.ClientRequest,
            proxy=proxy,
            proxy_auth=auth,
            # The same as a borrowed pool is told with every request (see self._options).
            raise_for_status=False,
            auto_decompress=False,
        )
        self._slots = _Slots(self._max_connections)
        self._loop = loop
        guard = self._guard = _closed_with_loop(http.close)
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
            self._slots = _borrowed_slots(http)
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
        """Close the pool if this transport created it, and the limiter if it has ``aclose()``.

        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self._close_pool()
        finally:
            aclose = getattr(self._limiter or self._adopter, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _close_pool(self) -> None:
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
        await_account_limit: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        """Send a request, retrying as the policy allows; return ``(status, JSON object)``.

        ``await_account_limit=False`` is for the fetch of the account's limit alone
        (``rate_limit="account"``): it cannot wait for the limit it fetches.

        Raises:
            APIError: 2Chat answered with an error (after any retries).
            APIConnectionError: No usable answer arrived.
            APITimeoutError: No answer within the timeout.
            InvalidResponseError: The answer could not be decoded.
            TwoChatError: The session is closed, or its pool belongs to another event loop
                that is still open.
        """
        # Checked first: from a wrong loop nothing is sent, waited for or counted; checked
        # again after every wait, in which the session may be closed or its loop end.
        http = self._session()
        if self._account_limit is not False and await_account_limit:
            await self._limit_from_account()
            http = self._session()
        attempt = 0
        while True:
            limiter = self._limiter
            if limiter is not None and not self._take():
                await limiter.acquire()
                http = self._session()
            # One attempt, written out here rather than in a helper coroutine: every call
            # pays for a coroutine frame. Exceptions are built from aiohttp's and raised
            # outside their ``except`` blocks: aiohttp's carry the request headers (the
            # API key) in their attributes and frames, so they are never chained.
            slots = self._slots
            if slots is not None and not slots.take():
                await slots.wait()
            # Our connector flips this task's entry once a connection is in hand; a
            # borrowed session's connector does not, so its phase stays unknown.
            task = asyncio.current_task(self._loop) if self._owns_http else None
            if task is not None:
                _CONNECTED[task] = False
            failure: TwoChatError | None = None
            # Cleared before anything is raised here: error trackers record every frame's
            # locals, and a response's repr shows the server's headers.
            response: aiohttp.ClientResponse | None = None
            try:
                async with http.request(
                    method,
                    self._base_url + path,
                    params=params,
                    # A payload, not bytes: its Content-Type is the one our pool sends.
                    data=None if body is None else BytesPayload(body, content_type=_JSON),
                    # Not kept in a local: error trackers record frames' locals.
                    headers=self._get_headers if body is None else self._post_headers,
                    # Never follow a redirect: it would carry the API key to another host.
                    allow_redirects=False,
                    **self._options,
                ) as response:
                    status = response.status
                    # Fewer than 7 digits (aiohttp has checked they are digits): under 1 MB,
                    # within the cap, read at once. Anything else is weighed by _read_capped.
                    length = response.headers.get(hdrs.CONTENT_LENGTH)
                    if length is not None and len(length) < _SHORT_LENGTH:
                        raw: bytes | None = await response.read()  # the usual case, inline
                    else:
                        raw = await self._read_capped(response)
                    encoding = response.headers.get(hdrs.CONTENT_ENCODING)
                    # Only an error reads headers (Retry-After, Location); scrubbed copies.
                    answer_headers = (
                        _NO_HEADERS if status < 300 else self._redactor.headers(response.headers)
                    )
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                connected = None if task is None else _CONNECTED.get(task)
                failure = self._failure(exc, method, path, connected)
            finally:
                if task is not None:
                    del _CONNECTED[task]
                response = None
                if slots is not None:
                    slots.release()
            try:
                if failure is not None:
                    try:
                        raise failure
                    finally:
                        # Python 3.10 can still see aiohttp's exception as being handled
                        # here, and would chain it (with the request headers) as __context__.
                        failure.__context__ = None
                if raw is None:
                    raise self._too_large(status)
                # Anything the server sends is scrubbed of the key before it is decoded,
                # kept, cut or quoted (a server may echo the request's headers back).
                raw = self._redactor.bytes(raw)
                if encoding is not None:
                    raw = self._redactor.bytes(self._decompress(raw, encoding, status))
                return status, _wire.parse(status, answer_headers, raw)
            except (APIError, APIConnectionError) as exc:
                if isinstance(exc, APIError):  # the request it answers, for its message
                    exc.method, exc.path = method, path
                delay = _wire.retry_delay(method, exc, attempt, self._max_retries)
                if isinstance(exc, APIError) and exc.status == 429 and self._limiter is not None:
                    await self._limiter.pause(exc.retry_after)
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
            http = self._session()

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
        # Retried like any GET (a 500 here says nothing about the caller's request).
        status, payload = await self.request("GET", "/open/info", await_account_limit=False)
        limit = RateLimit(_wire.decode_account_limit(payload, status=status))
        adopter = self._adopter
        if adopter is None:
            self._set_limiter(RateLimiter(limit))
        else:
            adopter.adopt(limit)
            self._set_limiter(adopter)

    def _failure(
        self, exc: BaseException, method: str, path: str, connected: bool | None
    ) -> APIConnectionError:
        """Return our error for a transport failure, with only a clean ``__cause__``.

        ``connected``: whether a connection was in hand; ``False``: not yet, so nothing was
        written; ``None``: unknown (a borrowed pool).
        """
        where = f"{method} {path}"
        text = self._redactor.text(f"{type(exc).__name__}: {exc}")
        error: APIConnectionError
        if isinstance(exc, aiohttp.ConnectionTimeoutError) or (
            connected is False and isinstance(exc, asyncio.TimeoutError)
        ):
            error = APITimeoutError(
                f"Timed out connecting to {self._base_url} ({where}); the request was not "
                "sent. Check base_url, your network and any proxy.",
                request_sent=False,
            )
        elif isinstance(exc, asyncio.TimeoutError):
            error = APITimeoutError(
                f"2Chat did not answer {where} within {self._timeout.total} s; "
                "the request may have been processed.",
                request_sent=True,
            )
        elif self._proxy is not None and isinstance(
            exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)
        ):
            # aiohttp's text is left out: it may quote the proxy's URL and the CONNECT.
            status = getattr(exc, "status", None)
            why = f"it answered {_wire.describe_status(status)}" if status else "it is unreachable"
            error = APIConnectionError(
                f"Cannot connect to {self._base_url} ({where}) through the proxy "
                f"{self._proxy}: {why}; the request was not sent. Check the proxy's "
                "address and credentials (proxy=, HTTPS_PROXY/HTTP_PROXY).",
                request_sent=False,
            )
        elif isinstance(exc, aiohttp.ClientConnectorError) or connected is False:
            error = APIConnectionError(
                f"Cannot connect to {self._base_url} ({where}): {text}; the request was not "
                "sent. Check base_url, your network and any proxy.",
                request_sent=False,
            )
        else:
            error = APIConnectionError(
                f"The connection to {self._base_url} failed during {where} ({text}); "
                "the request may have been processed.",
                request_sent=True,
            )
        error.__cause__ = _clean_os_error(exc, self._redactor)
        return error

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes | None:
        """Read a body of unknown or large length; ``None`` past the size cap."""
        length = response.content_length
        if length is not None and length <= MAX_RESPONSE_BYTES:
            return await response.read()
        if length is None:
            data = bytearray()
            async for chunk in response.content.iter_any():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    break
            else:
                return bytes(data)
        return None

    def _too_large(self, status: int) -> InvalidResponseError:
        return InvalidResponseError(
            f"2Chat's answer is larger than the {MAX_RESPONSE_BYTES}-byte cap; it was not read.",
            status=status,
        )

    def _decompress(self, raw: bytes, encoding: str, status: int) -> bytes:
        """Undo a ``gzip`` or ``deflate`` Content-Encoding without exceeding the size cap."""
        coding = encoding.strip().lower()
        if coding in ("", "identity"):
            return raw
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise InvalidResponseError(
                f"2Chat's answer is encoded with {self._redactor.text(coding)!r}, which the "
                "SDK does not decode (it asks for identity); check any proxy in between.",
                status=status,
            )
        # 47: a gzip or zlib header, detected; -15: raw deflate, which some servers send.
        for wbits in (47, -15):
            inflater = zlib.decompressobj(wbits)
            try:
                data = inflater.decompress(raw, MAX_RESPONSE_BYTES + 1)
            except zlib.error:
                continue
            if len(data) > MAX_RESPONSE_BYTES or inflater.unconsumed_tail:
                del data  # never in a recorded frame: megabytes of the server's bytes
                raise self._too_large(status)
            return data
        raise InvalidResponseError(
            f"2Chat's answer says Content-Encoding {coding!r} but does not decompress.",
            status=status,
        )


_NO_HEADERS: Mapping[str, str] = {}
_JSON = "application/json"
_JSON_BODY = {"Content-Type": _JSON}
#: A Content-Length of fewer digits is under 1 MB, and so within MAX_RESPONSE_BYTES.
_SHORT_LENGTH = 7
assert 10 ** (_SHORT_LENGTH - 1) <= MAX_RESPONSE_BYTES

#: The tasks sending a request on one of our pools, each with whether it has a connection
#: yet: entered by `Transport.request`, flipped by `_Connector`, removed once the attempt
#: ends. A task sends one request at a time. A plain dict, not a ContextVar: every set()
#: of a ContextVar allocates objects the garbage collector tracks, and with many calls in
#: flight those made the collector run several times as often.
_CONNECTED: dict[asyncio.Task[Any], bool] = {}


class _Connector(aiohttp.TCPConnector):
    """A TCP connector that records, for the calling task, that a connection is in hand.

    Until then nothing of the request has been written, so a failure or timeout is
    surely "not sent" (and a POST may be retried); from then on it may have been acted on.
    """

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Any:
        connection = await super().connect(req, traces, timeout)
        task = asyncio.current_task(self._loop)
        if task in _CONNECTED:
            _CONNECTED[task] = True
        return connection


def _request_class(headers: Mapping[str, str]) -> type[aiohttp.ClientRequest] | None:
    """Return a request class sending ``headers`` as its defaults, or ``None`` if it can't.

    A request gets aiohttp's default headers (Accept, Accept-Encoding) in one pass, where
    it lacks them, but a session's default headers one by one, as if the call had given
    them: ours, the same on every call, cost less as the defaults. ``None`` if aiohttp
    ever stops keeping them in a dict, ``ClientRequest.DEFAULT_HEADERS``: the session's
    default headers then carry ours.
    """
    if not isinstance(getattr(aiohttp.ClientRequest, "DEFAULT_HEADERS", None), dict):
        return None
    defaults = {str(name): value for name, value in aiohttp.ClientRequest.DEFAULT_HEADERS.items()}
    defaults.update(headers)
    return type("TwoChatRequest", (aiohttp.ClientRequest,), {"DEFAULT_HEADERS": defaults})


def _public(url: URL) -> URL:
    """Return ``url`` without its user and password, fit to show."""
    return url.with_user(None)


def _borrowed_slots(http: aiohttp.ClientSession) -> _Slots | None:
    """Return a slot per connection of a borrowed session's pool, if it has a limit."""
    connector = http.connector
    if connector is None:
        return None
    limits = [n for n in (connector.limit, connector.limit_per_host) if n]
    return _Slots(min(limits)) if limits else None


class _Slots:
    """A counting semaphore whose free slot is taken without a coroutine.

    ``asyncio.Semaphore.acquire()`` is a coroutine even when a slot is free, and that is
    every call but those that queue. Here a free slot is taken by `take()`; `wait()` is
    for the rest, first come first served: `release()` hands its slot to the oldest
    waiter, so a slot is never free while someone waits.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> bool:
        """Take a free slot and return ``True``, or return ``False`` if none is free."""
        if self._free:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait until `release()` hands this caller a slot."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # Cancelled after being handed a slot: hand it on. A cancelled waiter stays
            # queued, and release() skips it.
            if not waiter.cancelled():
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest waiter still waiting, else to the free count."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def _clean_os_error(exc: BaseException, redactor: Redactor) -> OSError | None:
    """Return a fresh copy of the OS error under an aiohttp one: no traceback, no headers."""
    os_error = getattr(exc, "os_error", exc)
    if not isinstance(os_error, OSError) or isinstance(os_error, asyncio.TimeoutError):
        return None
    if os_error.errno is None:
        return None
    return type(os_error)(os_error.errno, redactor.text(str(os_error.strerror)))


#: A key piece this long or longer is treated as the key itself.
_PIECE = 12


class Redactor:
    """Masks the API key, and any piece of it of 12 characters or more, in text and bytes.

    Any window of 12 characters of the key holds a whole one of its aligned 6-character
    blocks, so a body holding none of the blocks (the usual case: a few substring checks)
    holds no piece; only then are pieces searched for.
    """

    __slots__ = ("_blocks", "_key", "_pieces", "_width")

    def __init__(self, key: str) -> None:
        self._key = key
        self._width = width = min(_PIECE, len(key))
        step = max(1, width // 2)
        self._blocks = tuple(
            key[i : i + step].encode() for i in range(0, len(key) - step + 1, step)
        )
        self._pieces = frozenset(key[i : i + width] for i in range(len(key) - width + 1))

    def bytes(self, data: bytes) -> bytes:
        """Return ``data`` with the key and its pieces replaced by ``***``."""
        # count() over the blocks, looped in C; ``block in data`` would first try each
        # block as an integer, and the TypeError it raises and clears costs more than the
        # search itself.
        if any(map(data.count, self._blocks)):
            return self.text(data.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
        return data

    def text(self, text: str) -> str:
        """Return ``text`` with the key and its pieces replaced by ``***``."""
        width, pieces = self._width, self._pieces
        covered = [False] * len(text)
        found = False
        for i in range(len(text) - width + 1):
            if text[i : i + width] in pieces:
                covered[i : i + width] = [True] * width
                found = True
        if not found:
            return text
        out: list[str] = []
        for i, char in enumerate(text):
            if not covered[i]:
                out.append(char)
            elif i == 0 or not covered[i - 1]:
                out.append("***")
        return "".join(out)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Return the headers an error reads (Retry-After, Location), scrubbed."""
        return {
            name: self.text(headers[name])
            for name in ("Retry-After", "Location")
            if name in headers
        }


def _never() -> bool:
    """The fast path of a limiter that has none: every slot is waited for."""
    return False


async def _closed_with_loop(close: Callable[[], Awaitable[object]]) -> AsyncGenerator[None, None]:
    """Hold a pool open until closed, by ``aclose()`` or by the loop's shutdown; then ``close()``.

    Started on a running loop, it is registered with it: ``loop.shutdown_asyncgens()``
    (which ``asyncio.run()`` calls) closes it before the loop itself.
    """
    try:
        yield
    finally:
        await close()


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
