"""The only place that does I/O: one aiohttp pool, one ``request`` that every call goes through.

`Transport.request` is the retry loop (the limiter's slots, the waits `_wire.retry_delay`
decides); `Transport._send` sends once and reads the answer under a size cap, mapping
every transport failure to a `twochat_async.errors` class with an exact ``request_sent``;
`Redactor` scrubs the API key from whatever comes back. `_Pool` owns the aiohttp session:
made on the running event loop and closed with it, made again on the next loop; a call
from another loop while the pool's own is still open is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import platform
import re
import time
import urllib.request
import zlib
from collections.abc import AsyncGenerator, Callable, Mapping
from ssl import SSLContext
from typing import Any, NamedTuple

import aiohttp
from yarl import URL

from . import _observe, _wire
from ._limit import Limiter, Turn, acquire_in_turn, new_turn, pause_seconds
from ._loops import close_guard, close_with_loop, dispose
from ._loops import timeout as _timeout
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    TwoChatError,
)

#: The cap on a response body; 2Chat's largest documented answers are a few KiB.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024

logger = logging.getLogger("twochat_async")

DEFAULT_USER_AGENT = (
    f"twochat-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)

_JSON = "application/json"
_NO_HEADERS: Mapping[str, str] = {}


class Network(NamedTuple):
    """How our pool reaches 2Chat (a borrowed session keeps its own settings)."""

    #: The proxy given explicitly, credentials included; it wins over the environment.
    proxy: URL | None = None
    #: Whether ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured.
    trust_env: bool = True
    #: The TLS context; ``None`` for aiohttp's default (verified against the system's CAs).
    ssl: SSLContext | None = None
    #: aiohttp's tracing hooks, attached to the pool we make.
    trace_configs: tuple[aiohttp.TraceConfig, ...] = ()


class _Answer(NamedTuple):
    status: int
    #: What an error reads (Retry-After, Location), scrubbed; empty for a success.
    headers: Mapping[str, str]
    #: ``None``: larger than the cap, not read.
    body: bytes | None
    encoding: str | None


#: How much longer than the connect timeout the whole request may take at least: a stall
#: while connecting is then always reported by aiohttp's connect timeout
#: (``ConnectionTimeoutError``), which knows that nothing was sent.
_CONNECT_GRACE = 0.05


def _split_timeout(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """Return the timeouts aiohttp is given for each request.

    aiohttp bounds the whole request (sending it, reading the answer) by ``total``, and
    its connect phase (DNS, connect, TLS, a proxy's CONNECT) by ``connect``: the total
    given, or ``connect`` if shorter; the total is then kept just after it. Neither is
    rounded up to a whole second (aiohttp's ``ceil_threshold``), or the two could expire
    together. ``timeout.total`` is set (`_wire.check_timeout` sees to it).
    """
    assert timeout.total is not None
    connect = timeout.total if timeout.connect is None else min(timeout.total, timeout.connect)
    return aiohttp.ClientTimeout(
        total=max(timeout.total, connect + _CONNECT_GRACE),
        connect=connect,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=math.inf,
    )


class _Pool:
    """The aiohttp session of the running event loop: ours (made on first use), or borrowed."""

    def __init__(
        self,
        http: aiohttp.ClientSession | None,
        base_url: str,
        max_connections: int,
        network: Network,
    ) -> None:
        self.owned = http is None
        self.closed = False
        self._base_url = base_url
        self._http = http
        self._max_connections = max_connections
        self._network = network
        #: The proxy our pool goes through, without credentials.
        self.proxy: URL | None = None if network.proxy is None else _public(network.proxy)
        # One slot per pooled connection, taken before aiohttp is asked for one: waiting
        # for a free connection then happens where no request timeout runs.
        self.slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard: AsyncGenerator[None, None] | None = None

    def get(self) -> aiohttp.ClientSession:
        """Return the session for the running loop, making ours on first use.

        Raises:
            TwoChatError: The borrowed session is closed, or the session belongs to another
                event loop that is still open.
        """
        http, loop = self._http, asyncio.get_running_loop()
        if loop is self._loop and http is not None and not http.closed:
            return http  # the usual case: the pool of this loop, open
        if http is None or (http.closed and self.owned):
            return self._open(loop)
        if http.closed:
            raise TwoChatError(
                "The http_session given to TwoChatSession is closed; "
                "keep it open for as long as the TwoChatSession is used."
            )
        if self._loop is None:  # a borrowed session's first use
            self._loop, self.slots = loop, _borrowed_slots(http)
        elif self._loop is not loop:
            self._check_other_loop(self._loop)
            dispose(http)  # its loop was closed without shutting down: release it
            return self._open(loop)
        return http

    def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        network, proxy = self._network, self._network.proxy
        if proxy is None and network.trust_env:
            proxy = _env_proxy(self._base_url)
        self.proxy = None if proxy is None else _public(proxy)
        # Made here, inside the running loop: aiohttp refuses to make one outside.
        self._http = http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._max_connections, ssl=True if network.ssl is None else network.ssl
            ),
            proxy=proxy,
            trace_configs=list(network.trace_configs) or None,
        )
        self.slots = asyncio.Semaphore(self._max_connections)
        self._loop, self._guard = loop, close_with_loop(http.close)
        return http

    def _check_other_loop(self, owner: asyncio.AbstractEventLoop) -> None:
        whose = "its connection pool" if self.owned else "the http_session given to it"
        if not owner.is_closed():
            raise TwoChatError(
                f"This TwoChatSession was called from an event loop other than that of "
                f"{whose}, which is still open (in another thread?); nothing was sent. "
                "Use one TwoChatSession per event loop (or thread), or submit the call to "
                "the session's own loop with asyncio.run_coroutine_threadsafe(coro, loop)."
            )
        if not self.owned:
            raise TwoChatError(
                "The http_session given to TwoChatSession belongs to an event loop that is "
                "closed; nothing was sent. Pass an aiohttp.ClientSession created on the loop "
                "that makes the calls, or none: TwoChatSession then makes its own."
            )

    async def close(self) -> None:
        """Close our session (a borrowed one is left open)."""
        http, guard, loop = self._http, self._guard, self._loop
        self._http = self._guard = None
        if http is None or guard is None or loop is None:
            return
        if loop.is_closed():
            dispose(http)
        else:
            await close_guard(guard, loop)


class Transport:
    """Sends requests to 2Chat over one aiohttp session and returns the decoded answers."""

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
        limiter: Limiter | None,
        network: Network,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._max_retries = max_retries
        self._limiter = limiter
        self._redactor = Redactor(api_key)
        self._pool = _Pool(http_session, base_url, max_connections, network)
        headers = {
            "X-User-API-Key": api_key,
            "Accept": _JSON,
            # Uncompressed answers (2Chat's are a few KiB): the size cap then bounds what
            # is decompressed too, so no small compressed body can expand past it.
            "Accept-Encoding": "identity",
            "User-Agent": user_agent,
        }
        # Per request, for our pool and a borrowed one alike: a borrowed session's own
        # defaults must not win.
        self._get_headers = headers
        self._post_headers = {**headers, "Content-Type": _JSON}
        self._options: dict[str, Any] = {
            "timeout": _split_timeout(timeout),  # keep first: with_options() replaces it
            # The error body holds 2Chat's message.
            "raise_for_status": False,
            # Decompressed by us, under the size cap (a small gzip body can inflate to
            # gigabytes).
            "auto_decompress": False,
            # Never followed: a redirect would carry the API key to another host.
            "allow_redirects": False,
        }

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called (on this transport or one it was made from)."""
        return self._pool.closed

    def with_options(
        self, timeout: aiohttp.ClientTimeout | None, max_retries: int | None
    ) -> Transport:
        """Return a transport sharing this one's pool, limiter and state, with other
        settings for its requests (``None``: this one's)."""
        view = copy.copy(self)
        if timeout is not None:
            view._timeout = timeout
            view._options = {**self._options, "timeout": _split_timeout(timeout)}
        if max_retries is not None:
            view._max_retries = max_retries
        return view

    @property
    def proxy_shown(self) -> str | None:
        """The proxy our pool goes through, without credentials, or ``None``."""
        return None if self._pool.proxy is None else str(self._pool.proxy)

    async def close(self) -> None:
        """Close the pool if this transport made it; calling it again does nothing."""
        if not self._pool.closed:
            self._pool.closed = True
            await self._pool.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._pool.closed:
            raise TwoChatError("This TwoChatSession is closed; create a new one to make calls.")
        return self._pool.get()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        limited: bool = True,
        urgent: bool = False,
        ready: Callable[[], None] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send a request, retrying as the policy allows; return ``(status, JSON object)``.

        ``limited=False`` skips the limiter: for the request that reads the account's
        limit, which cannot wait for the limit it reads. ``urgent`` (a call that spends
        or frees money) goes ahead of the limiter's other waiters; every attempt keeps
        the call's first place. ``ready`` is called just before each attempt is sent,
        after any wait for the limiter: what it raises is raised, with nothing sent (a
        hold's purchase checks there that its reservation is live).

        Raises:
            APIError: 2Chat answered with an error (after any retries).
            APIConnectionError: No usable answer arrived.
            APITimeoutError: No answer within the timeout.
            InvalidResponseError: The answer could not be decoded.
            TwoChatError: The session is closed, or its pool belongs to another event loop
                that is still open.
        """
        limiter = self._limiter if limited else None
        turn, not_before, loop = new_turn(urgent), 0.0, asyncio.get_running_loop()
        attempt = 0
        while True:
            if limiter is not None:
                await self._wait_for_budget(limiter, turn, not_before)
            if ready is not None:
                ready()
            began = loop.time()
            try:
                answer = await self._send(method, path, params, body)
            except (APIError, APIConnectionError) as exc:
                _observe.attempted(method, path, exc, loop.time() - began, attempt)
                delay = await self._after_failure(exc, method, path, attempt)
                if delay is None:
                    raise
                if limiter is not None and isinstance(exc, APIError) and exc.status == 429:
                    # The limiter's pause holds the call back: waiting in its queue rather
                    # than here, it keeps its place before the calls that queued behind it.
                    not_before, delay = loop.time() + pause_seconds(exc.retry_after), 0.0
                _observe.retrying(exc, max(delay, not_before - loop.time()))
            else:
                _observe.attempted(method, path, answer[0], loop.time() - began, attempt)
                return answer
            attempt += 1
            await asyncio.sleep(delay)

    async def _wait_for_budget(self, limiter: Limiter, turn: Turn, not_before: float) -> None:
        """Wait for the limiter's slot, and at least until ``not_before`` (a 429's pause)."""
        # Checked before the wait too: from a wrong loop nothing is waited for or counted
        # (and `_send` checks again: the session may be closed meanwhile).
        self._session()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await acquire_in_turn(limiter, turn)
        if not_before > loop.time():  # a limiter whose pause() holds no one
            await asyncio.sleep(not_before - loop.time())
        _observe.waited("rate limit", loop.time() - began)

    async def _after_failure(
        self, exc: APIError | APIConnectionError, method: str, path: str, attempt: int
    ) -> float | None:
        """Return the seconds to wait before the next attempt, or ``None`` to raise ``exc``."""
        if isinstance(exc, APIError):
            exc.method, exc.path = method, path  # the request it answers, for its message
            if exc.status == 429 and self._limiter is not None:
                await self._limiter.pause(exc.retry_after)
        delay = _wire.retry_delay(method, exc, attempt, self._max_retries)
        if delay is not None:
            logger.debug(
                "Retrying %s %s in %.2f s (retry %d of %d) after: %s",
                method,
                path,
                delay,
                attempt + 1,
                self._max_retries,
                exc,
            )
        return delay

    async def _send(
        self, method: str, path: str, params: Mapping[str, str] | None, body: bytes | None
    ) -> tuple[int, dict[str, Any]]:
        """Send the request once and decode its answer, or raise our error for a failure.

        aiohttp's exceptions carry the request's headers (the API key) in their attributes
        and frames, so ours is raised outside the ``except`` block: never chained to them.
        """
        http = self._session()
        # aiohttp's total timeout does not run while a trace hook does (one slow enough
        # would leave the request unbounded): with hooks, the SDK bounds the request too,
        # just after aiohttp's own deadline.
        bound = (
            _timeout(self._options["timeout"].total + _CONNECT_GRACE)
            if http.trace_configs
            else contextlib.nullcontext()
        )
        try:
            began = time.monotonic() if _observe.DEBUG else 0.0
            async with self._pool.slots or contextlib.nullcontext(), bound:
                if _observe.DEBUG:
                    _observe.waited("a pooled connection", time.monotonic() - began)
                answer = await self._roundtrip(http, method, path, params, body)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            failure: TwoChatError = self._failure(exc, method, path)
        else:
            try:
                return self._decode(answer)
            except (APIError, InvalidResponseError) as exc:
                failure = exc  # raised below without `_decode`'s frames: see there
            finally:
                del answer  # the body's bytes: not in a frame that an error tracker records
        try:
            raise failure.with_traceback(None)
        finally:
            # Python 3.10 can still chain aiohttp's exception as the __context__; and
            # the local is dropped, else this frame and the error's traceback hold each
            # other (and the pool) until the cycle collector runs.
            failure.__context__ = None
            del failure

    def _decode(self, answer: _Answer) -> tuple[int, dict[str, Any]]:
        """Return ``(status, JSON object)`` of an answer, or raise the error it is.

        Its frame and the parser's hold the body's bytes, which may spell the key in JSON
        escapes (only the decoded answer is scrubbed of those): `_send` raises the error
        again without them.
        """
        if answer.body is None:
            raise self._too_large(answer.status)
        raw = answer.body
        if answer.encoding is not None:
            raw = self._redactor.bytes(self._decompress(raw, answer.encoding, answer.status))
        return answer.status, _wire.parse(
            answer.status, answer.headers, raw, self._redactor.decoded
        )

    async def _roundtrip(
        self,
        http: aiohttp.ClientSession,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
    ) -> _Answer:
        """Send the request and read the answer's body, unless it is larger than the cap.

        The response is a local of this frame only, which no error of ours passes through:
        its repr shows the server's headers, and error trackers record frames' locals.
        """
        async with http.request(
            method,
            self._base_url + path,
            params=params,
            data=body,
            headers=self._get_headers if body is None else self._post_headers,
            **self._options,
        ) as response:
            status, length = response.status, response.content_length
            raw: bytes | None = None
            if length is not None and length <= MAX_RESPONSE_BYTES:
                raw = await response.read()
            elif length is None:
                data = bytearray()
                async for chunk in response.content.iter_any():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        break
                else:
                    raw = bytes(data)
            return _Answer(
                status,
                _NO_HEADERS if status < 300 else self._redactor.headers(response.headers),
                # Scrubbed before it is decoded, kept, cut or quoted (or sits in a frame that an
                # error tracker records): a server may echo the request's headers back.
                None if raw is None else self._redactor.bytes(raw),
                response.headers.get("Content-Encoding"),
            )

    def _failure(self, exc: BaseException, method: str, path: str) -> APIConnectionError:
        """Return our error for a transport failure, with only a clean ``__cause__``.

        aiohttp's connect-phase failures (``ClientConnectorError``, its connect timeout)
        happen before anything is written: those are ``request_sent=False``.
        """
        where = f"{method} {path}"
        text = self._redactor.text(f"{type(exc).__name__}: {exc}")
        error: APIConnectionError
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            error = APITimeoutError(
                f"Timed out connecting to {self._base_url} ({where}); the request was not "
                "sent. Check the base URL, your network and any proxy.",
                request_sent=False,
            )
        elif isinstance(exc, asyncio.TimeoutError):
            error = APITimeoutError(
                f"2Chat did not answer {where} within {self._timeout.total} s; "
                "the request may have been processed.",
                request_sent=True,
            )
        elif self._pool.proxy is not None and isinstance(
            exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)
        ):
            # aiohttp's text is left out: it may quote the proxy's URL and the CONNECT.
            status = getattr(exc, "status", None)
            why = f"it answered {_wire.describe_status(status)}" if status else "it is unreachable"
            error = APIConnectionError(
                f"Cannot connect to {self._base_url} ({where}) through the proxy "
                f"{self._pool.proxy}: {why}; the request was not sent. Check the proxy's "
                "address and credentials.",
                request_sent=False,
            )
        elif isinstance(exc, aiohttp.ClientConnectorError):
            error = APIConnectionError(
                f"Cannot connect to {self._base_url} ({where}): {text}; the request was not "
                "sent. Check the base URL, your network and any proxy.",
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


def _env_proxy(base_url: str) -> URL | None:
    """Return the proxy the environment names for ``base_url``, unless ``NO_PROXY`` excludes it."""
    url = URL(base_url)
    proxy = urllib.request.getproxies().get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(f"{url.host}:{url.port}"):
        return None
    return URL(proxy)


def _public(url: URL) -> URL:
    """Return ``url`` without its user and password, fit to show."""
    return url.with_user(None)


def _borrowed_slots(http: aiohttp.ClientSession) -> asyncio.Semaphore | None:
    """Return a slot per connection of a borrowed session's pool, if it has a limit."""
    connector = http.connector
    limits = (
        [] if connector is None else [n for n in (connector.limit, connector.limit_per_host) if n]
    )
    return asyncio.Semaphore(min(limits)) if limits else None


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
    holds no piece; only then are pieces searched for, by one regular expression, each
    found piece masked together with as much of the key as follows it.
    """

    __slots__ = ("_blocks", "_key", "_offsets", "_pattern", "_text_blocks", "_width")

    def __init__(self, key: str) -> None:
        self._key = key
        self._width = width = min(_PIECE, len(key))
        step = max(1, width // 2)
        self._text_blocks = tuple(key[i : i + step] for i in range(0, len(key) - step + 1, step))
        self._blocks = tuple(block.encode() for block in self._text_blocks)
        # Each piece's first place in the key (the scan finds any piece masking leaves).
        self._offsets: dict[str, int] = {}
        for i in range(len(key) - width + 1):
            self._offsets.setdefault(key[i : i + width], i)
        self._pattern = re.compile("|".join(map(re.escape, sorted(self._offsets))))

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
        found = self._pattern.search(text)
        if found is None:
            return text
        out: list[str] = []
        done = 0
        while found is not None:
            start = found.start()
            end = self._run_end(text, start, self._offsets[found.group()])
            out += (text[done:start], "***")
            done = end
            # What is left of a piece cut at `end` is shorter than a piece: only pieces
            # starting at `end` or later can remain.
            found = self._pattern.search(text, end)
        out.append(text[done:])
        return "".join(out)

    def _run_end(self, text: str, start: int, at: int) -> int:
        """Return where the key's text from ``at``, found at ``start``, stops matching."""
        key, good = self._key, self._width
        if text[start + good : start + good + 1] != key[at + good : at + good + 1]:
            return start + good  # the usual case: the key does not go on
        most = min(len(key) - at, len(text) - start)
        while good < most:  # a binary search by slices, compared in C
            mid = (good + most + 1) // 2
            if text[start + good : start + mid] == key[at + good : at + mid]:
                good = mid
            else:
                most = mid - 1
        return start + good

    def decoded(self, payload: Any) -> Any:
        """Return a decoded JSON answer with the key and its pieces masked in every string.

        For answers that had escapes (``\\/``, ``\\uXXXX``), which can hide the key from
        `bytes`: written back without escapes, masked as text and read again.
        """
        text = json.dumps(payload, ensure_ascii=False)
        if not any(map(text.count, self._text_blocks)):
            return payload
        try:
            return json.loads(self.text(text))
        except ValueError:  # a key with a quote or backslash in it, masked across an escape
            return None

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Return the headers an error reads (Retry-After, Location), scrubbed."""
        return {
            name: self.text(headers[name])
            for name in ("Retry-After", "Location")
            if name in headers
        }
