"""One rate budget for every process and host that uses an API key, kept in Redis.

``pip install "twochat-async[redis]"``, then::

    limit = RedisRateLimit("redis://localhost:6379/0", per_minute=80)
    async with TwoChatSession(rate_limit=limit) as chat:
        ...

Admission is decided atomically in Redis by one Lua script, on Redis's clock (``TIME``),
with the schedule of `twochat_async._limit.pacing` (GCRA). A process books one slot at a
time: its callers queue locally in their turns' order (`twochat_async.current_turn`),
the first of them books the next slot and sleeps until it comes, and whoever is first
then takes it. The Redis key is a hash of the API key (and ``name``): the key itself
never reaches Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import os
import socket
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._limit import (
    LATENESS,
    AccountLimit,
    Limiter,
    Place,
    Queue,
    RateLimiter,
    pacing,
    pause_seconds,
)
from ._loops import close_guard, close_with_loop
from ._loops import timeout as bounded
from ._wire import MAX_RETRY_AFTER, warn
from .errors import TwoChatError
from .models import MIN_PER_MINUTE, RateLimit

# The public names of this module.
__all__ = ["RedisRateLimit"]

logger = logging.getLogger("twochat_async")

#: The longest the limiter waits for one Redis round trip (connecting included), whatever
#: client it was given (redis-py's own default is to wait for ever).
ROUND_TRIP_TIMEOUT = 1.0

#: How long Redis may keep answering late (round trips timing out one after another)
#: before it is taken for down: a busy host slows Redis without it being down, and
#: meanwhile the process's calls wait rather than share nothing. A refused or dropped
#: connection is an outage at once.
LATE_FOR = 3.0

#: The most connections to Redis a client built from a URL opens: one booking is in flight
#: per process, beside the occasional pause or give-back.
MAX_CONNECTIONS = 4

#: The longest a cancelled caller spends giving its slot back: past it the slot is
#: wasted (one interval of the budget), and the cancellation goes on.
GIVE_BACK_TIMEOUT = 0.5

#: How many slots may be booked ahead on one budget before a budget that far ahead is
#: taken as corrupt state rather than a queue (see `RedisRateLimit`): each process books
#: one at a time, and limiters of older releases booked one per caller.
MAX_QUEUE = 1000

#: The furthest ahead a pause can be, in microseconds: the longest Retry-After honoured,
#: and a second for the callers' round trips.
_LONGEST_PAUSE = round((MAX_RETRY_AFTER + 1.0) * 1e6)

#: How long the per-process limit stands in after a Redis failure before Redis is tried
#: again.
FALLBACK_SECONDS = 1.0

#: How long a process counts among those sharing a budget after its last booking, in
#: microseconds: a fallback paces each process at the budget over those counted.
_SEEN_FOR = 60_000_000


class _Booking(NamedTuple):
    """A slot the process booked in Redis: for whichever of its callers is first then."""

    wait: int  # microseconds from booking to the slot, as Redis counted them
    slot: int  # the slot, in microseconds of Redis's clock
    tat: int  # the budget's TAT this booking set (to give it back)
    due: float  # the slot on time.monotonic()


# KEYS[1]: the budget's hash; KEYS[2]: the hash of the processes booking on it, each with
# its last booking's time. ARGV: mode, interval and tolerance in microseconds, the
# booked slot (confirm) or pause (pause) or booked TAT (cancel), the furthest ahead of
# now that a TAT and a pause can be, the booking process's id and how long a process
# counts. Times are integer microseconds of Redis's clock: skew between the callers'
# hosts does not matter. A budget further ahead (a bug, a clock fault, a stray write) is
# deleted: state of a budget no caller could have made.
# Returns {wait, slot, tat, reset, processes}: the microseconds until the slot, the slot,
# the TAT it set, 1 if the budget was deleted as corrupt, and (on a booking) how many
# processes booked on it lately.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local arg = tonumber(ARGV[4])
local ahead = tonumber(ARGV[5])
local longest_pause = tonumber(ARGV[6])
local seen_for = tonumber(ARGV[8])
local v = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(v[1]) or 0
local pause = tonumber(v[2]) or 0
local reset = 0
if tat - now > ahead or pause - now > longest_pause then
  redis.call('DEL', KEYS[1])
  tat, pause, reset = 0, 0, 1
end
if mode == 'confirm' and pause <= arg then
  return {0, arg, tat, reset}
elseif mode == 'cancel' then
  if tat == arg then
    redis.call('HSET', KEYS[1], 'tat', tat - interval)
  end
  return {0, 0, tat, reset}
elseif mode == 'pause' then
  pause = math.max(pause, now + arg)
  tat = math.max(tat, pause + tolerance)
  redis.call('HSET', KEYS[1], 'tat', tat, 'pause', pause)
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 60000)
  return {0, 0, tat, reset}
end
local slot = math.max(now, tat - tolerance, pause)
tat = math.max(tat, slot) + interval
redis.call('HSET', KEYS[1], 'tat', tat, 'pause', pause)
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + 60000)
redis.call('HSET', KEYS[2], ARGV[7], now)
local seen = redis.call('HGETALL', KEYS[2])
local processes = 0
for i = 1, #seen, 2 do
  if now - tonumber(seen[i + 1]) > seen_for then
    redis.call('HDEL', KEYS[2], seen[i])
  else
    processes = processes + 1
  end
end
redis.call('PEXPIRE', KEYS[2], math.ceil(seen_for / 1000) * 2)
return {slot - now, slot, tat, reset, processes}
"""


class RedisRateLimit(Limiter):
    """A rate limiter kept in Redis: one budget shared by every process using an API key.

    Pass it as ``TwoChatSession(rate_limit=...)``. Sessions with the same API key (and
    ``name``) share one budget, wherever they run; different keys have separate budgets.
    It keeps to the budget as strictly as `RateLimit` does in one process: at most
    ``per_minute`` requests in any 60 s, paced 3 % under the budget. A 429 pauses every
    process for its ``Retry-After`` (1 s without one).

    Each process books one slot at a time, just in time, for whichever of its callers is
    first then: calls that spend or free money (`current_turn`) go ahead of the process's
    queue, and wait at most for the slots other processes booked (one each). A client
    built from ``url`` opens at most 4 connections.

    Every Redis round trip is bounded by the limiter (1 s), whatever client it is given.
    Round trips that time out for 3 s in a row, or a refused or dropped connection, count
    as an outage (see ``on_error``); until then the process's calls wait for Redis. A
    budget in Redis further ahead than the longest pause plus 1,000 booked slots (or a
    pause past the longest 2Chat can ask for) is taken as corrupt: it is reset, with a
    WARNING.

    Args:
        url: A ``redis://`` URL; the client built from it (1 s timeouts, at most 4
            connections) is closed with the session.
        redis: A ``redis.asyncio.Redis`` client to use instead of a URL; never closed by us.
        per_minute: Requests per minute, or ``"account"`` to read the account's limit
            from ``info()`` on first use.
        burst: Requests that may go out back to back after an idle spell.
        name: Splits one API key's budget on purpose: sessions with different names
            have separate budgets.
        on_error: What a call does in an outage: ``"local"`` goes on under a per-process
            limit at this process's share of the budget (the budget over the processes
            that booked on it in the last minute; the whole budget if Redis never
            answered), with one WARNING per outage, until Redis answers again;
            ``"raise"`` raises `TwoChatError` before anything is sent.

    Raises:
        ValueError: Neither or both of ``url`` and ``redis`` were given, or another
            argument is invalid.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis: Redis | None = None,
        per_minute: float | Literal["account"],
        burst: int = 1,
        name: str | None = None,
        on_error: Literal["local", "raise"] = "local",
    ) -> None:
        if (url is None) == (redis is None):
            raise ValueError("Give RedisRateLimit one of url='redis://...' or redis=<client>.")
        if on_error not in ("local", "raise"):
            raise ValueError(f"on_error must be 'local' or 'raise', got {on_error!r}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string or None, got {type(name).__name__}")
        self.per_minute = per_minute
        self._burst = burst
        self._name = name or ""
        self._on_error = on_error
        self._url = url
        self._redis = redis
        self._owned: dict[asyncio.AbstractEventLoop, tuple[Redis, AsyncGenerator[None, None]]] = {}
        self._gates: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._script: AsyncScript | None = None
        self._keys: list[str] = []
        self._account_limit: AccountLimit | None = None
        self._limit: RateLimit | None = None
        self._local: RateLimiter | None = None
        self._queue = Queue()
        self._booked: _Booking | None = None
        self._busy = False  # a booking's round trip is in flight
        self._processes = 1  # that booked on the budget lately, Redis said
        self._interval = self._tolerance = self._ahead = 0
        self._late = LATENESS
        self._late_since: float | None = None
        self._fallback_until = -math.inf
        self._outage = False
        if per_minute != "account":
            self._adopt(RateLimit(per_minute, burst))

    def __repr__(self) -> str:
        return f"<RedisRateLimit per_minute={self.per_minute!r} name={self._name!r}>"

    def bind(self, api_key_digest: str, account_limit: AccountLimit) -> None:
        """Take the budget of an API key, given as its SHA-256 hex digest (the session does).

        ``per_minute="account"`` reads the rate from ``account_limit`` on first use.

        Raises:
            ValueError: Already bound to another API key: use one per key.
        """
        key = hashlib.sha256(f"{api_key_digest}\0{self._name}".encode()).hexdigest()[:32]
        keys = [f"twochat:budget:{key}", f"twochat:processes:{key}"]
        if self._keys and self._keys != keys:
            raise ValueError("This RedisRateLimit serves another API key; use one per API key.")
        self._keys = keys
        self._account_limit = account_limit

    def _adopt(self, limit: RateLimit) -> None:
        """Pace at ``limit`` (with our own burst)."""
        limit = self._limit = RateLimit(limit.per_minute, self._burst)
        interval, tolerance = pacing(limit)
        self._interval, self._tolerance = round(interval * 1e6), round(tolerance * 1e6)
        # The furthest ahead a budget can be: the longest pause, then booked slots.
        self._ahead = round((MAX_RETRY_AFTER + tolerance + MAX_QUEUE * interval) * 1e6)
        self._late = max(interval / 2, LATENESS)
        self._local = RateLimiter(limit)

    async def acquire(self) -> None:
        """Wait for a slot of the shared budget, in `current_turn`'s order; cancellable,
        counted against no timeout.

        Raises:
            TwoChatError: Redis is down and ``on_error="raise"``; nothing was sent.
        """
        if self._local is None:
            if self._account_limit is None:
                raise _unbound()
            limit = await self._account_limit()
            if self._local is None:  # another caller may have adopted it meanwhile
                self._adopt(limit)
        queue = self._queue
        place = queue.join()
        try:
            shared = await self._shared(place)
        except BaseException:
            queue.leave(place)
            if queue.empty and self._booked is not None:
                await self._give_back(self._booked)
            raise
        queue.leave(place)
        if not shared:
            await self._fallback()

    async def _shared(self, place: Place) -> bool:
        """Wait until ``place`` takes a slot of Redis's budget (``True``), or Redis is down."""
        while True:
            await self._queue.turn(place)
            if self._busy:  # a caller first before us is booking: for whoever is first next
                await self._queue.nap(place, None)
                continue
            if time.monotonic() < self._fallback_until:
                return False
            try:
                if await self._take(place):
                    self._recovered()
                    return True
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                if self._down(exc):
                    return False

    async def _take(self, place: Place) -> bool:
        """One step of the first caller: book, nap until the slot, or take it (``True``)."""
        booked, self._booked = self._booked, None
        if booked is None:
            booked = await self._book("book", 0)
        else:
            wait = booked.due - time.monotonic()
            if wait > 0:
                self._booked = booked
                await self._queue.nap(place, wait)  # the first place may change meanwhile
                return False
            # Woken half a slot late or more (a stalled loop): sent now, it would crowd the
            # next slot's caller; book another. Else check that no 429 paused the budget.
            booked = await self._book("book" if -wait > self._late else "confirm", booked.slot)
        if booked.wait > 0 or not self._queue.first(place):
            self._booked = booked  # for whoever is first now
            return False
        return True

    async def _book(self, mode: str, slot: int) -> _Booking:
        """Book a slot (or confirm ``slot``): the process's one round trip in flight.

        A caller cancelled meanwhile waits up to GIVE_BACK_TIMEOUT for the answer: Redis
        may have booked the slot, which then stays the process's (for the next first
        caller, or given back by `acquire`) instead of being lost.
        """
        self._busy = True
        trip = asyncio.ensure_future(self._run(mode, slot))
        trip.add_done_callback(_retrieved)
        try:
            wait, slot, tat = await asyncio.shield(trip)
        except asyncio.CancelledError:
            await asyncio.wait([trip], timeout=GIVE_BACK_TIMEOUT)
            if trip.done() and not trip.cancelled() and trip.exception() is None:
                wait, slot, tat = trip.result()
                self._booked = _Booking(wait, slot, tat, time.monotonic() + wait / 1e6)
            trip.cancel()  # a trip still in flight: its slot is wasted, as on a stalled Redis
            raise
        finally:
            self._busy = False
            self._queue.wake_first()
        return _Booking(wait, slot, tat, time.monotonic() + wait / 1e6)

    async def _give_back(self, booked: _Booking) -> None:
        """Give back a slot no caller waits for any more, if it is still the last booked; a
        Redis failure here must not replace the cancellation."""
        self._booked = None
        with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
            await self._run("cancel", booked.tat, GIVE_BACK_TIMEOUT)

    async def pause(self, seconds: float | None) -> None:
        """Hold every process back after a 429, for ``seconds`` (or a default pause)."""
        wait = pause_seconds(seconds)
        if self._local is None:  # the account's limit is not known yet: nothing booked
            return
        await self._local.pause(seconds)
        try:
            await self._run("pause", round(wait * 1e6))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._down(exc, raising=False)

    async def aclose(self) -> None:
        """Close the Redis client built from the URL; a borrowed one is left open."""
        owned, self._owned = self._owned, {}
        for loop, (_, guard) in owned.items():
            await close_guard(guard, loop)

    def _client(self) -> Redis:
        if self._redis is not None:
            return self._redis
        loop = asyncio.get_running_loop()
        owned = self._owned.get(loop)
        if owned is not None:
            return owned[0]
        # A client's connections belong to the loop they were made on: one client per
        # loop, closed as that loop shuts down (asyncio.run() finalizes async generators
        # first) or with the session.
        self._owned = {old: c for old, c in self._owned.items() if not old.is_closed()}
        client = Redis.from_url(
            str(self._url),
            max_connections=MAX_CONNECTIONS,  # `_gate` keeps our round trips within it
            socket_connect_timeout=ROUND_TRIP_TIMEOUT,
            socket_timeout=ROUND_TRIP_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._owned[loop] = (client, close_with_loop(client.aclose))
        return client

    def _gate(self) -> asyncio.Semaphore:
        """The round trips this process may have in flight on the running loop at once."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            self._gates = {old: g for old, g in self._gates.items() if not old.is_closed()}
            gate = self._gates[loop] = asyncio.Semaphore(MAX_CONNECTIONS)
        return gate

    async def _run(
        self, mode: str, arg: int, timeout: float = ROUND_TRIP_TIMEOUT
    ) -> tuple[int, int, int]:
        """Run the script once, within ``timeout``: ``(wait, slot, tat)``.

        Raises:
            asyncio.TimeoutError: Redis did not answer in time.
            RedisError: Redis failed.
        """
        if not self._keys or self._local is None:
            raise _unbound()
        client = self._client()
        if self._script is None:
            self._script = client.register_script(_SCRIPT)  # run by its SHA-1 after once
        args: list[str | int] = [
            mode,
            self._interval,
            self._tolerance,
            arg,
            self._ahead,
            _LONGEST_PAUSE,
            _process(),
            _SEEN_FOR,
        ]
        async with bounded(timeout), self._gate():
            answer: Any = await self._script(keys=self._keys, args=args, client=client)
        if int(answer[3]):
            warn(
                logger,
                "The shared rate limit's budget in Redis (%s) was further ahead than any "
                "caller could have set it (a clock fault, a bug, another writer?); it was "
                "reset.",
                self._keys[0],
            )
        if len(answer) > 4:
            self._processes = max(1, int(answer[4]))
        self._late_since = None
        return int(answer[0]), int(answer[1]), int(answer[2])

    def _down(self, exc: BaseException, *, raising: bool = True) -> bool:
        """Whether ``exc`` means Redis is down (a refused connection, or late for too long).

        Raises:
            TwoChatError: Redis is down and ``on_error="raise"`` (with ``raising``).
        """
        now = time.monotonic()
        if isinstance(exc, (asyncio.TimeoutError, RedisTimeoutError)) and not self._outage:
            self._late_since = self._late_since or now
            if now - self._late_since < LATE_FOR:
                logger.debug("Redis of the shared rate limit answered late; asking again.")
                return False
        what = type(exc).__name__
        if self._on_error == "raise" and raising:
            raise TwoChatError(
                f"The shared rate limit's Redis failed ({what}: {exc}); the request was not "
                "sent. Check that Redis is up, or use on_error='local'."
            ) from None
        self._fallback_until = now + FALLBACK_SECONDS
        if not self._outage:
            self._outage = True
            assert self._limit is not None  # adopted before any Redis call
            assert self._local is not None
            share = max(self._limit.per_minute / self._processes, MIN_PER_MINUTE)
            self._local = self._local.at(RateLimit(share, self._burst))
            warn(
                logger,
                "Redis of the shared rate limit failed (%s: %s); each process keeps its own "
                "limit at its share of the budget (%s of %s a minute) until Redis answers "
                "again.",
                what,
                exc,
                f"{share:g}",
                f"{self._limit.per_minute:g}",
            )
        return True

    def _recovered(self) -> None:
        if self._outage:
            self._outage = False
            logger.warning("Redis of the shared rate limit answers again; the budget is shared.")

    async def _fallback(self) -> None:
        local = self._local
        assert local is not None  # set with the rate, before any Redis call
        await local.acquire()


@functools.cache
def _booker(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def _retrieved(trip: asyncio.Future[Any]) -> None:
    """Retrieve a booking trip's error, which its cancelled caller may not have read."""
    if not trip.cancelled():
        trip.exception()


def _process() -> str:
    """This process as the budget's count of processes knows it (a fork is another)."""
    return _booker(os.getpid())


def _unbound() -> TwoChatError:
    return TwoChatError("RedisRateLimit is used outside a TwoChatSession; pass it as rate_limit=.")
