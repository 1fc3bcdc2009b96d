"""``FakeTwoChat``: an in-process 2Chat speaking the documented wire format over real HTTP."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import re
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Literal

import attrs
from aiohttp import web

from .._wire import check_count
from ._catalogue import (
    CITIES,
    DID_TYPES,
    REGION_REQUIRED,
    REGIONS,
    REQUIREMENTS,
    FakeGroup,
    default_catalogue,
)

# The public names of this module; twochat_async.testing exports them.
__all__ = ["FakeReservation", "FakeTwoChat", "Reply"]

Handler = Callable[[web.Request], Any]
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def error_envelope(message: str) -> dict[str, Any]:
    """Return 2Chat's error envelope around ``message``, the body of every error answer."""
    return {"success": False, "error": True, "error_message": message}


class _Refusal(Exception):
    """An error answer: raised by a handler, answered in 2Chat's envelope by the middleware."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> web.Response:
        return web.json_response(error_envelope(self.message), status=self.status)


@attrs.frozen
class Reply:
    """A scripted answer the fake gives instead of its own, for testing failures.

    Attributes:
        status: The HTTP status to answer.
        json: A JSON value to send as the body (ignored when ``body`` is set). With
            neither, an error status sends 2Chat's error envelope and others
            ``{"success": true}``.
        body: Raw bytes to send as the body.
        headers: Extra response headers, e.g. ``{"Retry-After": "2"}``.
        content_type: The body's content type.
        delay: Seconds to wait before answering.
        fault: ``"drop"`` closes the connection after reading the request, without an
            answer; ``"truncate"`` sends the headers and half the body, then closes;
            ``"hang"`` never answers.
        handle: Handle the request as usual first (a reservation or purchase is made),
            then answer with this reply instead: the client cannot know it succeeded.
    """

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0
    fault: Literal["drop", "truncate", "hang"] | None = None
    handle: bool = False

    def payload(self) -> bytes:
        """Return the body bytes: ``body``, else ``json``, else 2Chat's envelope for the status.

        Returns:
            The bytes the fake sends as the body of this reply.
        """
        if self.body is not None:
            return self.body
        if self.json is not None:
            return json.dumps(self.json).encode()
        if self.status >= 400:
            return json.dumps(error_envelope(f"Scripted error {self.status}")).encode()
        return b'{"success": true}'


@attrs.define
class FakeReservation:
    """A reservation as the fake keeps it, in `FakeTwoChat.reservations`.

    Attributes:
        uuid: The reservation's id.
        number: The number it holds.
        group_id: The group the number belongs to.
        created_at: When it was made, by the fake's clock.
        expires_at: When it stops holding the number, by the fake's clock.
    """

    uuid: str
    number: str
    group_id: str
    created_at: datetime
    expires_at: datetime

    def details(self) -> dict[str, str]:
        """Return the reservation as 2Chat's ``reservation_details`` object."""
        return {
            "uuid": self.uuid,
            "number": self.number,
            "created_at": _timestamp(self.created_at),
            "expires_at": _timestamp(self.expires_at),
        }


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _reachable(host: str) -> str:
    """Return the address a client on this machine reaches ``host`` at.

    ``0.0.0.0`` (or ``""``) listens on every interface but is no address to connect to:
    the SDK would refuse it as plain http to another machine.
    """
    try:
        unspecified = host == "" or ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a name such as "localhost"
        unspecified = False
    return "127.0.0.1" if unspecified else host


def _country(request: web.Request) -> str:
    """Return the required ``country`` query parameter, upper-cased, or refuse with 422."""
    country = request.query.get("country", "").upper()
    if not country:
        raise _Refusal(422, "country is required")
    return country


class FakeTwoChat:
    """A stateful fake of 2Chat's Numbers API, served on 127.0.0.1 on an ephemeral port.

    Use it as an async context manager; it yields its base URL:

    ```python
    fake = FakeTwoChat()
    async with fake as base_url, TwoChatSession(fake.api_key, base_url=base_url) as chat:
        reservation = await chat.reserve("abc-123")
    ```

    It serves every Numbers endpoint of 2Chat with real state: it checks the
    ``X-User-API-Key`` header (401 otherwise); holds a catalogue of regions, cities, DID
    types, requirements and number groups; gives reservations that expire
    ``reservation_ttl`` after creation by its ``clock``; takes reserved numbers out of the
    available ones until cancelled or expired, and sold ones for good; counts requests in
    ``info()``. Wrong inputs answer in 2Chat's error envelope: 400 a body that is not a JSON
    object, 404 an unknown group or reservation, 406 picking a number in a group that does
    not allow it, 422 a missing parameter (``region_id`` too, in a search of US groups, as
    2Chat requires) or a number that is not E.164, not in the group or not available.

    Args:
        api_key: The only key the fake accepts.
        clock: Returns the current time, timezone-aware; inject a `ManualClock` to move
            it by hand (to test expiry).
        reservation_ttl: How long a reservation holds its number.
        groups: The catalogue; defaults to a small seeded one that includes group
            ``abc-123`` with number ``+12135551234`` from 2Chat's documentation.
        latency: Seconds added before every answer.
        requests_per_minute: The account limit ``GET /open/info`` reports.
        port: The port to listen on; 0 picks a free one.
        host: The IPv4 address to listen on: ``127.0.0.1`` (this machine only), or
            ``0.0.0.0`` to be reached from other machines or containers too.
        keep_requests: How many of the latest requests `requests` keeps; ``None`` (the
            default) keeps every one. A fake that serves for long should bound it: each
            entry holds a request's headers and body. `calls`, `received()` and the
            count ``info()`` reports still count every request.

    Attributes:
        api_key: The only API key the fake accepts.
        clock: Returns the current time, timezone-aware; reservations expire by it.
        reservation_ttl: How long a new reservation holds its number.
        groups: The catalogue of number groups, by id.
        reservations: The reservations neither cancelled nor bought, by uuid, expired ones
            included (`active_reservations()` leaves those out).
        sold: Numbers bought, by number, with the group they came from.
        calls: How many requests arrived, by ``"METHOD /path"`` (path without query).
        requests: Every request's method, path, query, headers, raw body and arrival time
            (``"received"``, on ``time.monotonic()``), in order of arrival; only the
            latest ``keep_requests`` of them when that is set.
        keep_requests: How many of the latest requests `requests` keeps, or ``None``.
        latency: Seconds added before every answer.
        requests_per_minute: The limit ``GET /open/info`` reports.
        port: The port asked for; 0 picks a free one (``base_url`` shows the one in use).
        host: The address it listens on.
        rate_limited: How many requests were refused with 429 by the budget (see
            `set_budget()`).
        base_url: The address the fake serves on, set by `start()`; ``""`` until then.
            With ``host="0.0.0.0"`` it names ``127.0.0.1``, which reaches every
            interface from this machine (other machines use this machine's address).
        app: The aiohttp ``web.Application`` that answers the requests; `start()` after a
            `stop()` serves a new one (an application is bound to the loop it ran on).
    """

    def __init__(
        self,
        api_key: str = "fake-api-key",
        *,
        clock: Callable[[], datetime] = _utcnow,
        reservation_ttl: timedelta = timedelta(hours=1),
        groups: Iterable[FakeGroup] | None = None,
        latency: float = 0.0,
        requests_per_minute: int = 80,
        port: int = 0,
        host: str = "127.0.0.1",
        keep_requests: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.keep_requests = (
            None
            if keep_requests is None
            else check_count(keep_requests, "keep_requests", minimum=0)
        )
        self.host = host
        self.clock = clock
        self.reservation_ttl = reservation_ttl
        self.groups: dict[str, FakeGroup] = {
            group.id: group for group in (default_catalogue() if groups is None else groups)
        }
        self.reservations: dict[str, FakeReservation] = {}
        self.sold: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.latency = latency
        self.requests_per_minute = requests_per_minute
        self.port = port
        self.rate_limited = 0
        self._budget: tuple[float, float] | None = None  # (capacity, tokens per second)
        self._tokens = 0.0
        self._refilled = 0.0
        self._script: deque[Reply] = deque()
        # received() calls waiting: (route, count, future), each woken once its count is met.
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = self._application()

    def __repr__(self) -> str:
        # Never the key: the fake's is no secret, but a repr that shows one teaches habits.
        state = f"running at {self.base_url}" if self._runner is not None else "stopped"
        return (
            f"<FakeTwoChat {state} groups={len(self.groups)} "
            f"reservations={len(self.reservations)} sold={len(self.sold)}>"
        )

    def _application(self) -> web.Application:
        """Return a new application serving every endpoint through the middleware."""
        app = web.Application(middlewares=[self._middleware])
        routes = app.router
        routes.add_get("/open/info", self._info)
        routes.add_get("/open/numbers/regions", self._regions)
        routes.add_get("/open/numbers/cities", self._cities)
        routes.add_get("/open/numbers/did-types", self._did_types)
        routes.add_get("/open/numbers/groups", self._groups)
        routes.add_get("/open/numbers/available", self._available)
        routes.add_get("/open/numbers/requirements", self._requirements)
        routes.add_post("/open/numbers/reservations", self._reserve)
        routes.add_get("/open/numbers/reservations", self._reservations)
        routes.add_delete("/open/numbers/reservations/{uuid}", self._cancel)
        routes.add_post("/open/numbers/purchase", self._purchase)
        return app

    # -- control --------------------------------------------------------------------------

    def set_budget(self, requests: int | None, per: float = 60.0) -> None:
        """Answer 429 with ``Retry-After`` beyond ``requests`` per ``per`` seconds.

        A token bucket of ``requests`` tokens refilled evenly over ``per`` seconds, like
        2Chat's requests-per-minute limit. ``None`` removes the budget.

        Args:
            requests: How many requests the bucket holds, all of them available at once
                at first; ``None`` removes the budget.
            per: The seconds over which the bucket refills from empty to full.
        """
        self._budget = None if requests is None else (float(requests), requests / per)
        self._tokens = float(requests or 0)
        self._refilled = time.monotonic()

    def _over_budget(self) -> float | None:
        """Take a token; return the seconds until one is free when there is none."""
        if self._budget is None:
            return None
        capacity, rate = self._budget
        now = time.monotonic()
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / rate

    def script(self, *replies: Reply) -> None:
        """Answer the next requests, in order, with ``replies`` instead of the fake's own.

        Args:
            replies: One reply per request, used once each; they queue after any replies
                scripted before and not yet used.
        """
        self._script.extend(replies)

    async def received(self, route: str, count: int = 1, *, timeout: float = 10.0) -> None:
        """Wait until the fake has received ``count`` requests of ``route`` in all.

        A request counts as soon as the fake has read it, before it answers (and before
        `latency`, a budget's 429 or a scripted `Reply` delays or ends the answer): awaiting
        this is how a test knows that a request is in flight, instead of sleeping. Requests
        received before the call count too; it returns at once if there were enough.

        ```python
        task = asyncio.create_task(chat.purchase("abc-123"))
        await fake.received("POST /open/numbers/purchase")
        ```

        Args:
            route: ``"METHOD /path"``, the path without its query, as in `calls`.
            count: How many requests of ``route`` to wait for, counted since the fake was
                made.
            timeout: Seconds to wait at most.

        Raises:
            TimeoutError: Fewer than ``count`` requests of ``route`` arrived within
                ``timeout``; the message lists the requests that did arrive.
        """
        waiter = asyncio.get_running_loop().create_future()
        entry = (route, count, waiter)
        # Listed before the count is read: a request arriving on another thread's loop
        # in between still wakes it.
        self._waiters.append(entry)
        try:
            if self.calls[route] < count:
                await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError(
                f"the fake received {self.calls[route]} of {count} {route!r} requests within "
                f"{timeout} s; it received {dict(self.calls)}"
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _wake(self) -> None:
        """Wake every `received()` waiter whose count has been reached."""
        for route, count, waiter in list(self._waiters):
            if self.calls[route] >= count and not waiter.done():
                # The fake may run on another thread's loop than the waiter's.
                waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    def active_reservations(self) -> list[FakeReservation]:
        """Return the reservations that have not expired by the fake's clock.

        Returns:
            The reservations of `reservations` whose ``expires_at`` is after ``clock()``.
        """
        now = self.clock()
        return [r for r in self.reservations.values() if r.expires_at > now]

    def available(self, group_id: str) -> list[str]:
        """Return the numbers of a group that are neither sold nor actively reserved.

        Args:
            group_id: The id of a group of the catalogue (`groups`).

        Returns:
            The group's available numbers, in the group's order.

        Raises:
            KeyError: The catalogue has no group ``group_id``.
        """
        held = {r.number for r in self.active_reservations()}
        return [n for n in self.groups[group_id].numbers if n not in held and n not in self.sold]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> str:
        """Start serving on `host` (127.0.0.1 by default) and return the base URL.

        It can be called again after `stop()`, on the same event loop or a later one.

        Returns:
            The base URL, e.g. ``http://127.0.0.1:54321``; also kept in `base_url`.
        """
        if self.app.frozen:  # it has served already, maybe on another loop
            self.app = self._application()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        self.base_url = f"http://{_reachable(self.host)}:{sock.getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        """Stop serving; requests left hanging by a ``"hang"`` fault are ended."""
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- serving --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.calls[f"{request.method} {request.path}"] += 1
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
                "received": time.monotonic(),
            }
        )
        if self.keep_requests is not None and len(self.requests) > self.keep_requests:
            del self.requests[: len(self.requests) - self.keep_requests]
        self._wake()
        if self.latency:
            await asyncio.sleep(self.latency)
        wait = self._over_budget()
        if wait is not None:
            self.rate_limited += 1
            response = _Refusal(429, "Too many requests").response()
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        reply = self._script.popleft() if self._script else None
        if reply is None or reply.handle:
            try:
                if request.headers.get("X-User-API-Key") != self.api_key:
                    raise _Refusal(401, "Invalid or missing API key")
                answer: web.StreamResponse = await handler(request)
            except _Refusal as refusal:
                answer = refusal.response()
            if reply is None:
                return answer
        return await self._scripted(request, reply)

    async def _scripted(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.fault == "hang":
            await self._stopping.wait()
        transport = request.transport
        if reply.fault in ("drop", "hang"):
            if transport is not None:
                transport.abort()
            return web.Response()
        payload = reply.payload()
        response = web.StreamResponse(status=reply.status, headers=dict(reply.headers))
        response.content_type = reply.content_type
        response.content_length = len(payload)
        await response.prepare(request)
        if reply.fault == "truncate" and transport is not None:
            await response.write(payload[: len(payload) // 2])
            transport.abort()
            return response
        await response.write(payload)
        await response.write_eof()
        return response

    @staticmethod
    def _ok(data: Any, status: int = 200) -> web.Response:
        return web.json_response({"success": True, "data": data}, status=status)

    async def _info(self, request: web.Request) -> web.Response:
        usage = {
            "api_request_count": self.calls.total(),
            "max_api_request_count": 500000,
            "number_check_count": 0,
            "max_number_check_count": 500000,
        }
        account = {
            "name": "Fake Account (ACCfake)",
            "uuid": "ACCfake",
            "on_trial": False,
            "blocked": False,
            "created_at": "2022-04-21T21:55:37Z",
            "expires_at": _timestamp(self.clock() + timedelta(days=365)),
        }
        return web.json_response(
            {
                "success": True,
                "account": account,
                "limits": {"requests_per_minute": self.requests_per_minute},
                "usage": usage,
            }
        )

    async def _regions(self, request: web.Request) -> web.Response:
        country = _country(request)
        return self._ok({"regions": [r for r in REGIONS if r["iso_country_code"] == country]})

    async def _cities(self, request: web.Request) -> web.Response:
        country = _country(request)
        region = request.query.get("region")
        cities = [
            city
            for region_id, city in CITIES
            if city["iso_country_code"] == country and (region is None or str(region_id) == region)
        ]
        return self._ok({"cities": cities})

    async def _did_types(self, request: web.Request) -> web.Response:
        return self._ok({"did_types": DID_TYPES})

    async def _groups(self, request: web.Request) -> web.Response:
        query = request.query
        country = _country(request)
        if country in REGION_REQUIRED and "region_id" not in query:
            raise _Refusal(
                422,
                f"region_id is required for {country}: search the number groups of a region "
                f"(see GET /open/numbers/regions?country={country})",
            )
        did_type = query.get("did_type", "all")
        needle = query.get("city_name_or_prefix", "").lower()
        groups = [
            group.to_json()
            for group in self.groups.values()
            if group.country == country
            and did_type in ("all", group.type)
            # A group without a region (toll-free: the whole country) is in every region.
            and (group.region_id is None or query.get("region_id") in (None, str(group.region_id)))
            and query.get("city_id", str(group.city_id)) == str(group.city_id)
            and (needle in group.location.lower() or needle in group.prefix.lower())
        ]
        return self._ok({"groups": groups})

    def _group(self, group_id: object, *, picking: bool = False) -> FakeGroup:
        """Return the catalogue's group ``group_id``, or refuse it.

        404 for a group the catalogue does not have; 406 when ``picking`` a number of a
        group that does not allow it.
        """
        group = self.groups.get(group_id) if isinstance(group_id, str) else None
        if group is None:
            raise _Refusal(404, f"Number group {group_id} not found")
        if picking and not group.allow_number_selection:
            raise _Refusal(406, f"Number group {group.id} does not allow number selection")
        return group

    async def _available(self, request: web.Request) -> web.Response:
        group = self._group(request.query.get("group_id"), picking=True)
        contains = request.query.get("number_contains", "")
        numbers = [
            {"id": f"did-{number[1:]}", "number": number}
            for number in self.available(group.id)
            if contains in number
        ]
        return self._ok({"numbers": numbers})

    async def _requirements(self, request: web.Request) -> web.Response:
        country = _country(request)
        did_type = request.query.get("did_type")
        items = [
            item
            for type_id, item in REQUIREMENTS.get(country, [])
            if did_type is None or str(type_id) == did_type
        ]
        return self._ok({"requirements": items})

    def _pick(self, group: FakeGroup, number: Any) -> str:
        """Return the number to reserve or buy, or refuse it."""
        available = self.available(group.id)
        if number is None:
            if not available:
                raise _Refusal(404, f"No number available in group {group.id}")
            return available[0]
        if not isinstance(number, str) or _E164.fullmatch(number) is None:
            raise _Refusal(422, f"Invalid number {number!r}: use E.164, e.g. +12135551234")
        if number not in group.numbers:
            raise _Refusal(422, f"Number {number} does not belong to group {group.id}")
        if number not in available:
            raise _Refusal(422, f"Number {number} is not available")
        return number

    async def _order(self, request: web.Request) -> tuple[str, Any]:
        """Return the group id and number of a reservation or purchase body, or refuse it."""
        try:
            data = json.loads(await request.read())
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("group_id"), str):
            raise _Refusal(400, "Wrong JSON structure: expected an object with a group_id string")
        return data["group_id"], data.get("number")

    async def _reserve(self, request: web.Request) -> web.Response:
        group_id, number = await self._order(request)
        group = self._group(group_id, picking=number is not None)
        picked = self._pick(group, number)
        now = self.clock()
        reservation = FakeReservation(
            uuid=str(uuid.uuid4()),
            number=picked,
            group_id=group.id,
            created_at=now,
            expires_at=now + self.reservation_ttl,
        )
        self.reservations[reservation.uuid] = reservation
        return self._ok({"reservation_details": reservation.details()}, status=201)

    async def _reservations(self, request: web.Request) -> web.Response:
        return self._ok([r.details() for r in self.active_reservations()])

    async def _cancel(self, request: web.Request) -> web.Response:
        uuid_ = request.match_info["uuid"]
        reservation = self.reservations.get(uuid_)
        if reservation is None or reservation.expires_at <= self.clock():
            raise _Refusal(404, f"Reservation {uuid_} not found")
        del self.reservations[uuid_]
        return web.json_response(
            {"success": True, "message": f"Reservation {uuid_} cancelled successfully"}
        )

    async def _purchase(self, request: web.Request) -> web.Response:
        group_id, number = await self._order(request)
        # A number this account has reserved may be bought, whatever the group allows.
        mine = [r for r in self.active_reservations() if r.number == number]
        group = self._group(group_id, picking=number is not None and not mine)
        # Its hold is released first, so that the number counts as available; it is put
        # back if the purchase is refused.
        for reservation in mine:
            del self.reservations[reservation.uuid]
        try:
            picked = self._pick(group, number)
        except _Refusal:
            self.reservations.update((r.uuid, r) for r in mine)
            raise
        self.sold[picked] = group.id
        # 2Chat leaves the success body open; the fake answers the number it sold.
        return web.json_response(
            {
                "success": True,
                "message": f"Number {picked} purchased successfully",
                "data": {"number": picked, "group_id": group.id},
            },
            status=201,
        )
