"""``TwoChatSession``: the public entry point, one small method per 2Chat endpoint."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp

from . import _observe, _wire
from ._hold import Hold
from ._limit import Limiter, RateLimiter, _AccountLimiter, _SharedFetch
from ._transport import DEFAULT_USER_AGENT, Network, Transport
from .models import (
    AccountInfo,
    AvailableNumber,
    City,
    DidType,
    DidTypeName,
    NumberGroup,
    Purchase,
    RateLimit,
    Region,
    Reservation,
    shown,
)

# The public names of this module; the package exports them (see __init__.py).
__all__ = ["TwoChatSession"]

DEFAULT_BASE_URL = _wire.DEFAULT_BASE_URL
API_KEY_ENV = "TWOCHAT_API_KEY"
BASE_URL_ENV = "TWOCHAT_BASE_URL"

_NUMBERS = "/open/numbers"
_REGIONS = f"{_NUMBERS}/regions"
_CITIES = f"{_NUMBERS}/cities"
_DID_TYPES = f"{_NUMBERS}/did-types"
_GROUPS = f"{_NUMBERS}/groups"
_AVAILABLE = f"{_NUMBERS}/available"
_REQUIREMENTS = f"{_NUMBERS}/requirements"
_RESERVATIONS = f"{_NUMBERS}/reservations"
_PURCHASE = f"{_NUMBERS}/purchase"
_INFO = "/open/info"

#: The most retries ``max_retries`` may ask for: more would retry for hours, and the
#: backoff's ``2 ** attempt`` stops fitting a float after about a thousand.
MAX_RETRIES_LIMIT = 100

_S = TypeVar("_S", bound="TwoChatSession")


class TwoChatSession:
    """An async client for 2Chat's Numbers API, holding one connection pool.

    Create one per application and share it between tasks: every call is safe to run
    concurrently with others. Use it as an async context manager, or call `close()`.

    It may be built at import time and serve one ``asyncio.run()`` after another: its
    pool is made on the running event loop and closed as that loop shuts down, then made
    again on the next loop; the rate limit's pace carries over. It serves one loop at a
    time: called from another thread's loop while its pool's loop is still open, it
    raises [`TwoChatError`][twochat_async.errors.TwoChatError] and sends nothing.

    Args:
        api_key: Your 2Chat API key; defaults to the ``TWOCHAT_API_KEY`` environment variable.
        base_url: The API's address; defaults to ``TWOCHAT_BASE_URL``, then
            ``https://api.p.2chat.io``.
        timeout: Seconds allowed per request from the moment it has a connection (DNS,
            connect, TLS, send and the whole answer; finite and positive), or an
            ``aiohttp.ClientTimeout`` whose ``total`` is finite and positive and whose other
            fields are each ``None`` or finite and positive.
            Waiting for a free connection of the pool counts against no timeout.
        http_session: An aiohttp ``ClientSession`` to borrow instead of creating one; it is
            never closed by this object.
        max_connections: The size of the connection pool this object creates.
        user_agent: The ``User-Agent`` header, printable ASCII; defaults to
            ``twochat-async/<version> aiohttp/<version> python/<version>``.
        max_retries: How many times a failed request may be re-sent, 0 to 100 (0 turns
            retries off). GET and DELETE are retried on connection failures, timeouts and
            the statuses 409, 410, 429, 486, 500, 502, 503, 504; ``reserve()`` and
            ``purchase()`` only on a 429 or a failure to connect, so nothing is bought
            twice. Waits follow ``Retry-After`` (up to 60 s, plus a random 0.1 s and 10 %
            at most, so that tasks failing together do not retry together) or back off
            exponentially.
        rate_limit: A client-side budget shared by every task using the session: requests
            per minute (paced evenly, at least 1/60), a
            [`RateLimit`][twochat_async.RateLimit] for a burst, ``"account"`` to read the
            account's limit from ``info()`` on first use (that ``GET`` is retried like any
            other), or a limiter that implements [`Limiter`][twochat_async.Limiter]
            (closed with the session if it has ``aclose()``), such as
            [`RedisRateLimit`][twochat_async.redis.RedisRateLimit], one budget shared by
            many processes. ``None``: no limit.
        allow_insecure_http: Allow a plain ``http://`` ``base_url`` to a host other than
            this machine, which would send the API key in clear text.
        proxy: An ``http://`` proxy for every request, credentials in the URL if it needs
            them (``http://user:password@proxy.example:3128``); it wins over the
            environment. Never shown in a repr, log or error with its password.
        trust_env: Honour ``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY`` (read once,
            when the pool is made); ``False`` connects directly unless ``proxy`` is given.
        ssl: An ``ssl.SSLContext`` for the TLS connections: a company certificate
            authority, a client certificate. ``None``: the system's trusted authorities.
            Verification cannot be turned off with ``False``.
        trace_configs: aiohttp ``TraceConfig``s attached to the pool this object creates
            (aiohttp's request hooks: timings, logging, your own tracing).

    A borrowed ``http_session`` keeps its own connector, proxy, environment setting, TLS
    and tracing: ``max_connections`` does not apply to it, and ``proxy``,
    ``trust_env=False``, ``ssl`` and ``trace_configs`` are refused with it (configure
    them on the ``ClientSession``).

    Raises:
        ValueError: No API key was given nor found in ``TWOCHAT_API_KEY``, or another
            argument is invalid (each is checked here, before any request).
    """

    __slots__ = ("__weakref__", "_base_url", "_limiter", "_observed", "_transport", "_view")

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        http_session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        user_agent: str | None = None,
        max_retries: int = 2,
        rate_limit: float | RateLimit | Limiter | Literal["account"] | None = None,
        allow_insecure_http: bool = False,
        proxy: str | None = None,
        trust_env: bool = True,
        ssl: SSLContext | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            raise ValueError(
                f"No 2Chat API key: pass api_key=... or set the {API_KEY_ENV} environment variable."
            )
        if not isinstance(key, str) or key != key.strip() or not key.isprintable():
            # The message never quotes the key: it is a secret.
            raise _wire.ArgumentError(
                "api_key", "must be a string without spaces or control characters."
            )
        _wire.check_flag(allow_insecure_http, "allow_insecure_http")
        traces = _wire.check_trace_configs(trace_configs)
        _wire.check_http_session(http_session, mine=(proxy, ssl, not trust_env, traces))
        self._base_url = _wire.check_base_url(
            base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL, allow_insecure_http
        )
        self._limiter = _limiter(rate_limit)
        self._view = False
        #: Whether OpenTelemetry is configured, looked up at the first call (`_observe`).
        self._observed: bool | None = None
        self._transport = Transport(
            api_key=key,
            base_url=self._base_url,
            timeout=_wire.check_timeout(timeout),
            http_session=http_session,
            max_connections=_wire.check_count(max_connections, "max_connections", minimum=1),
            user_agent=DEFAULT_USER_AGENT
            if user_agent is None
            else _wire.check_user_agent(user_agent),
            max_retries=_check_retries(max_retries),
            limiter=self._limiter,
            network=Network(
                proxy=_wire.check_proxy(proxy),
                trust_env=_wire.check_flag(trust_env, "trust_env"),
                ssl=_wire.check_ssl(ssl),
                trace_configs=traces,
            ),
        )
        if self._limiter is not None:
            digest = hashlib.sha256(key.encode()).hexdigest()
            self._limiter.bind(digest, _SharedFetch(self._account_limit))

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> TwoChatSession:
        """Return a view of this session whose calls have other settings.

        The view shares the session's connection pool, rate limiter and state: it is
        cheap, so make one where a call needs it (``await
        chat.with_options(timeout=2).reserve(group)``). Closing the view does nothing;
        closing the session closes it for the view too.

        Args:
            timeout: As ``TwoChatSession(timeout=...)``; ``None`` keeps the session's.
            max_retries: As ``TwoChatSession(max_retries=...)``; ``None`` keeps the
                session's.

        Returns:
            A `TwoChatSession` that makes its calls with these settings.

        Raises:
            ValueError: An argument is invalid.
        """
        view = object.__new__(TwoChatSession)
        view._base_url, view._limiter, view._view = self._base_url, self._limiter, True
        view._observed = self._observed
        view._transport = self._transport.with_options(
            None if timeout is None else _wire.check_timeout(timeout),
            None if max_retries is None else _check_retries(max_retries),
        )
        return view

    @property
    def base_url(self) -> str:
        """The address requests go to, without a trailing slash."""
        return self._base_url

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._transport.closed

    def __repr__(self) -> str:
        # Never raises, even on an object whose __init__ raised halfway: error trackers
        # call repr() on whatever is in the frame.
        transport = getattr(self, "_transport", None)
        state = "open" if transport is not None and not transport.closed else "closed"
        proxy = transport.proxy_shown if transport is not None else None
        via = f" proxy={proxy!r}" if proxy else ""
        return f"<TwoChatSession base_url={getattr(self, '_base_url', None)!r}{via} {state}>"

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

        Calling it again does nothing, and so does closing a view of `with_options`.
        """
        if self._view or self._transport.closed:
            return
        try:
            await self._transport.close()
        finally:
            if self._limiter is not None:
                await self._limiter.aclose()

    @_observe.operation("reserve", "POST", _RESERVATIONS, group=True)
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
            TwoChatError: Any other failure; see [`twochat_async.errors`][twochat_async.errors].
        """
        body = _wire.reservation_body(group_id, number)
        status, payload = await self._transport.request("POST", _RESERVATIONS, body=body)
        return _wire.decode(
            payload, "$.data.reservation_details", Reservation, status=status, group_id=group_id
        )

    @_observe.operation("regions", "GET", _REGIONS)
    async def regions(self, country: str) -> list[Region]:
        """List the regions of a country (2Chat has them for US, CA and GB).

        Args:
            country: ISO 3166 alpha-2 code, any case.

        Returns:
            The country's regions, as 2Chat lists them.

        Raises:
            ValueError: ``country`` is not two ASCII letters (nothing is sent).
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        params = _wire.query(country=_wire.check_country(country))
        status, payload = await self._transport.request("GET", _REGIONS, params=params)
        return _wire.decode(payload, "$.data.regions", list[Region], status=status)

    @_observe.operation("cities", "GET", _CITIES)
    async def cities(self, country: str, *, region_id: int | None = None) -> list[City]:
        """List the cities of a country, or of one of its regions.

        Args:
            country: ISO 3166 alpha-2 code, any case.
            region_id: A region's id from `regions()`.

        Returns:
            The cities found, as 2Chat lists them.

        Raises:
            ValueError: An argument is invalid (nothing is sent).
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        params = _wire.query(
            country=_wire.check_country(country),
            # 2Chat's query key is "region" here, unlike "region_id" for groups.
            region=_wire.check_int_id(region_id, "region_id"),
        )
        status, payload = await self._transport.request("GET", _CITIES, params=params)
        return _wire.decode(payload, "$.data.cities", list[City], status=status)

    @_observe.operation("did_types", "GET", _DID_TYPES)
    async def did_types(self) -> list[DidType]:
        """List the kinds of number (DID types) 2Chat sells.

        Returns:
            Every DID type 2Chat sells.

        Raises:
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        status, payload = await self._transport.request("GET", _DID_TYPES)
        return _wire.decode(payload, "$.data.did_types", list[DidType], status=status)

    @_observe.operation("groups", "GET", _GROUPS)
    async def groups(
        self,
        country: str,
        *,
        region_id: int | None = None,
        city_id: int | None = None,
        city_name_or_prefix: str | None = None,
        did_type: DidTypeName | None = None,
    ) -> list[NumberGroup]:
        """Search the number groups of a country (2Chat's *Search Number Groups*).

        Args:
            country: ISO 3166 alpha-2 code, any case.
            region_id: A region's id from `regions()` (2Chat needs one for US).
            city_id: A city's id from `cities()`.
            city_name_or_prefix: A city name or a number prefix.
            did_type: One of global, local, mobile, national, sharedcost, tollfree, all
                (typed ``twochat_async.models.DidTypeName``, a ``Literal``, so that a type
                checker catches a typo; checked at run time too).

        Returns:
            The groups that match every filter given.

        Raises:
            ValueError: An argument is invalid (nothing is sent).
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        params = _wire.query(
            country=_wire.check_country(country),
            region_id=_wire.check_int_id(region_id, "region_id"),
            city_id=_wire.check_int_id(city_id, "city_id"),
            city_name_or_prefix=_wire.check_text(city_name_or_prefix, "city_name_or_prefix"),
            did_type=_wire.check_did_type(did_type),
        )
        status, payload = await self._transport.request("GET", _GROUPS, params=params)
        return _wire.decode(payload, "$.data.groups", list[NumberGroup], status=status)

    @_observe.operation("available_numbers", "GET", _AVAILABLE, group=True)
    async def available_numbers(
        self, group_id: str, *, number_contains: str | None = None
    ) -> list[AvailableNumber]:
        """List the numbers of a group that can be picked (if the group allows selection).

        Args:
            group_id: The group's id, from `groups()`.
            number_contains: Digits the numbers must contain, e.g. ``"555"``.

        Returns:
            The numbers of the group that can be picked and match ``number_contains``.

        Raises:
            ValueError: An argument is invalid (nothing is sent).
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        params = _wire.query(
            group_id=_wire.check_id(group_id, "group_id"),
            number_contains=_wire.check_digits(number_contains, "number_contains"),
        )
        status, payload = await self._transport.request("GET", _AVAILABLE, params=params)
        return _wire.decode(payload, "$.data.numbers", list[AvailableNumber], status=status)

    @_observe.operation("requirements", "GET", _REQUIREMENTS)
    async def requirements(
        self, country: str, *, did_type: int | None = None
    ) -> list[Mapping[str, Any]]:
        """List what a country requires to buy its numbers (identity, address, documents).

        Args:
            country: ISO 3166 alpha-2 code, any case.
            did_type: A DID type's **id** (an int) from `did_types()`.

        Returns:
            One mapping per requirement; their fields vary by country.

        Raises:
            ValueError: An argument is invalid (nothing is sent).
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        params = _wire.query(
            country=_wire.check_country(country),
            did_type=_wire.check_int_id(did_type, "did_type"),
        )
        status, payload = await self._transport.request("GET", _REQUIREMENTS, params=params)
        return _wire.decode(payload, "$.data.requirements", list[Mapping[str, Any]], status=status)

    @_observe.operation("reservations", "GET", _RESERVATIONS)
    async def reservations(self) -> list[Reservation]:
        """List the account's active reservations.

        Their ``group_id`` is ``None``: 2Chat does not say which group they came from.

        Returns:
            The active reservations, in the order 2Chat lists them.

        Raises:
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        status, payload = await self._transport.request("GET", _RESERVATIONS)
        # data's shape is open (a list, or an object holding one): models.py reads each.
        return _wire.decode(payload, "$.data", list[Reservation], status=status)

    @_observe.operation("cancel_reservation", "DELETE", f"{_RESERVATIONS}/{{uuid}}")
    async def cancel_reservation(self, reservation: Reservation | str) -> None:
        """Cancel a reservation, returning its number to the available pool.

        It goes ahead of the calls queued in the rate limiter, as `purchase()` does.

        Args:
            reservation: The reservation, or its uuid.

        Raises:
            ValueError: The uuid is empty, ``.`` or ``..``, or holds ``/``, ``\\``, whitespace
                or control characters (nothing is sent).
            NotFoundError: 2Chat knows no active reservation with that uuid.
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        uuid = reservation.uuid if isinstance(reservation, Reservation) else reservation
        uuid = _wire.check_path_segment(uuid, "reservation uuid")
        path = f"{_RESERVATIONS}/{quote(uuid, safe='')}"
        await self._transport.request("DELETE", path, urgent=True)

    async def purchase(self, group_id: str | Reservation, number: str | None = None) -> Purchase:
        """Buy a number of a group: a reserved one, a specific one, or a random one.

        Buying a number without meeting its country's requirements can get it suspended:
        check `requirements()` first. It goes ahead of the calls queued in the rate limiter
        (so does `cancel_reservation()`).

        Args:
            group_id: The group's id; or a `Reservation`, whose number is bought from its
                group (``reserve()`` fills it in; one listed by ``reservations()`` has
                none: pass ``purchase(group_id, reservation.number)`` then).
            number: The number to buy, in E.164; ``None`` buys a random one of the group.
                Not with a `Reservation`, which names its number.

        Returns:
            The purchase, with whatever 2Chat answered in ``details``.

        Raises:
            ValueError: An argument is invalid (nothing is sent).
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        if not isinstance(group_id, Reservation):
            body = _wire.reservation_body(group_id, number)
            return await self._purchase(group_id, number, body)
        reservation = group_id
        if number is not None:
            raise ValueError(
                "purchase(reservation) buys the reservation's own number; pass no number"
            )
        if reservation.group_id is None:
            raise ValueError(
                f"Reservation {reservation.uuid} does not say its group (reservations() "
                "does not list it): pass purchase(group_id, reservation.number)"
            )
        # The number as 2Chat wrote it in the reservation, as a hold sends it.
        body = _wire.held_purchase_body(reservation.group_id, reservation.number)
        return await self._purchase(reservation.group_id, reservation.number, body)

    @_observe.operation("purchase", "POST", _PURCHASE, group=True)
    async def _purchase(
        self,
        group_id: str,
        number: str | None,
        body: bytes,
        ready: Callable[[], None] | None = None,
    ) -> Purchase:
        """Send a purchase whose body is built and checked already (`Hold` builds its own).

        ``ready`` is called just before it is sent (see `Transport.request`).
        """
        status, payload = await self._transport.request(
            "POST", _PURCHASE, body=body, urgent=True, ready=ready
        )
        # 2Chat documents nothing of the answer but "success": all the rest is kept.
        return Purchase(group_id, number, _wire.decode(payload, "$", dict[str, Any], status=status))

    @_observe.operation("info", "GET", _INFO)
    async def info(self) -> AccountInfo:
        """Return the account, its rate limit and its usage (``GET /open/info``).

        Returns:
            The account's details, its rate limit and its usage.

        Raises:
            TwoChatError: The call failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        status, payload = await self._transport.request("GET", _INFO)
        return _wire.decode(payload, "$", AccountInfo, status=status)

    @_observe.operation("account_limit", "GET", _INFO)
    async def _account_limit(self) -> RateLimit:
        """Read the account's rate limit (``rate_limit="account"``), past the limiter."""
        status, payload = await self._transport.request("GET", _INFO, limited=False)
        return RateLimit(_wire.decode_account_limit(payload, status=status))

    def hold(self, group_id: str, number: str | None = None) -> Hold:
        """Reserve a number for the length of an ``async with`` block.

        Leaving the block without a successful
        [`Hold.purchase()`][twochat_async.Hold.purchase] cancels the reservation, whatever
        ends the block: normal exit, an exception, or the task being cancelled:

        ```python
        async with chat.hold("abc-123") as hold:
            if await user_accepts(hold.reservation.number):
                await hold.purchase()
        ```

        Args:
            group_id: The group's id.
            number: A specific number of the group, in E.164; ``None`` for a random one.

        Returns:
            A [`Hold`][twochat_async.Hold] to enter with ``async with``; nothing is reserved
            until the block is entered.

        Raises:
            ValueError: An argument is invalid (checked here, before the block runs).
        """
        _wire.check_reservation(group_id, number)
        return Hold(self, group_id, number)


def _check_retries(value: int) -> int:
    return _wire.check_count(value, "max_retries", minimum=0, maximum=MAX_RETRIES_LIMIT)


def _limiter(rate_limit: object) -> Limiter | None:
    """Return the limiter ``rate_limit`` asks for (see `TwoChatSession`)."""
    if rate_limit is None or isinstance(rate_limit, Limiter):
        return rate_limit
    if rate_limit == "account":
        return _AccountLimiter()
    if callable(getattr(rate_limit, "acquire", None)):
        raise ValueError(
            f"rate_limit {shown(rate_limit)} lacks bind() or aclose(): subclass "
            "twochat_async.Limiter, which supplies both, or define all of its methods."
        )
    return RateLimiter(RateLimit.of(rate_limit))
