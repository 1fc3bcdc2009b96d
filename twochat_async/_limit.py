"""Client-side rate limiting: the interface a session's limiter meets, and the in-process ones.

A session asks its limiter for a slot before each request, and tells it about every 429.
`RateLimiter` keeps its bucket in the process, shared by every task of one session. A
limiter shared by several processes (kept in Redis, say) implements `Limiter` too.

Waiting calls are served in their `Turn`'s order, not first come first served: calls that
spend or free money go first, and a call sent again after a 429 keeps its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import NamedTuple, Protocol, runtime_checkable

from ._wire import DEFAULT_429_PAUSE, MAX_RETRY_AFTER
from .models import RateLimit

# The public names of this module; the package exports them (see __init__.py).
__all__ = ["Limiter", "Turn", "current_turn"]

#: `Turn.rank` of `purchase()`, `cancel_reservation()` and what a hold sends on exit.
URGENT = 0
#: `Turn.rank` of every other call.
NORMAL = 1


class Turn(NamedTuple):
    """A call's place in a limiter's queue: the smaller turn is served first.

    Attributes:
        rank: 0 (`urgent`) for the calls that spend or free money (`purchase()`,
            `cancel_reservation()`, what `hold()` sends on exit), 1 for every other call.
        ticket: When the call first asked for a slot (increasing in the process); the
            same call sent again after a 429 keeps its ticket, and so its place.
    """

    rank: int
    ticket: int

    @property
    def urgent(self) -> bool:
        """Whether the call spends or frees money, and goes ahead of the others."""
        return self.rank == URGENT


_TICKETS = itertools.count()
_TURN: ContextVar[Turn | None] = ContextVar("twochat_async_turn", default=None)


def new_turn(urgent: bool) -> Turn:
    """A turn behind every turn handed out so far (of its rank)."""
    return Turn(URGENT if urgent else NORMAL, next(_TICKETS))


def current_turn() -> Turn:
    """Return the turn of the call that is asking a limiter for a slot.

    A session sets it around each `Limiter.acquire` (a context variable, so it is the
    awaiting task's own); a limiter of your own reads it there to order its waiters.
    Outside a session's call, it is a new ordinary turn.
    """
    turn = _TURN.get()
    return new_turn(False) if turn is None else turn


async def acquire_in_turn(limiter: Limiter, turn: Turn) -> None:
    """Await ``limiter.acquire()`` with `current_turn` returning ``turn``."""
    token = _TURN.set(turn)
    try:
        await limiter.acquire()
    finally:
        # A coroutine closed by the garbage collector runs this in another context.
        with contextlib.suppress(ValueError):
            _TURN.reset(token)


#: How a limiter learns the account's own limit (``limits.requests_per_minute`` of
#: ``GET /open/info``): awaited, it returns it. Concurrent callers share one request; after
#: a failure the next call asks again. That request is not held back by the limiter.
AccountLimit = Callable[[], Awaitable[RateLimit]]


@runtime_checkable
class Limiter(Protocol):
    """What a session needs of a rate limiter; pass one as ``rate_limit=``.

    A session calls exactly these four methods. Subclass `Limiter` to inherit the
    defaults of `bind` and `aclose` (they do nothing), or define all four.
    """

    __slots__ = ()

    async def acquire(self) -> None:
        """Wait until a request may be sent; cancellable, and counted against no timeout.

        `current_turn` tells the waiting call's place: serve waiters in the order of their
        turns to give money calls and 429'd calls their places, or ignore it to serve
        them as they come.
        """

    async def pause(self, seconds: float | None) -> None:
        """Hold every caller back after a 429, for ``seconds`` (``None``: 2Chat gave none).

        The call that met the 429 asks `acquire` again straight away (with its turn):
        `acquire` is what holds it back until the pause is over.
        """

    def bind(self, api_key_digest: str, account_limit: AccountLimit) -> None:
        """Called once, when the session is created.

        Args:
            api_key_digest: The SHA-256 hex digest of the session's API key, for a limiter
                that keys a budget shared beyond the process by it.
            account_limit: An async callable returning the account's own
                [`RateLimit`][twochat_async.RateLimit] (read from ``GET /open/info``; callers
                share one request, and a failed one is tried again by the next caller), for
                a limiter that keeps to it. Await it from `acquire` only: its request is
                not held back by the limiter.
        """
        return None

    async def aclose(self) -> None:
        """Release what the limiter holds; awaited when the session is closed."""
        return None


#: How much slower than the budget the limiters pace: 2Chat counts on its own clock, after
#: network jitter, so a pace of exactly the budget is over it in some windows. 3 % keeps
#: 1.8 s of jitter off any 60 s window and still uses 97 % of the budget.
MARGIN = 0.03

#: The lateness of a wake-up that a limiter absorbs instead of moving its schedule (an
#: event loop's timers fire a few milliseconds late on a busy machine); beyond it, the
#: schedule moves. Small beside the margin: 10 ms against 1.8 s in a 60 s window (above
#: 6,000 a minute, where slots are closer than 10 ms, late slots may go out together).
LATENESS = 0.01


def pacing(limit: RateLimit) -> tuple[float, float]:
    """Return ``(interval, tolerance)`` in seconds: the pace that keeps to ``limit``.

    The schedule is GCRA's: one slot every ``interval``, up to ``tolerance`` early after an
    idle spell (``burst - 1`` slots at once). A burst of B then spends B - 1 of the
    minute's budget, so the pace is that of ``per_minute - B + 1``: at most ``per_minute``
    requests in any 60 s. A burst is capped at half the budget, or the pace would crawl.
    """
    rate = limit.per_minute
    # Whole requests: a budget of 7.5 a minute lets 7 through in any 60 s.
    budget = math.floor(rate) if rate >= 1.0 else rate
    burst = max(1, min(limit.burst, math.floor(budget / 2)))
    interval = 60.0 * (1.0 + MARGIN) / (budget - burst + 1)
    return interval, (burst - 1) * interval


class Queue:
    """Callers waiting for a limiter, in the order of their turns, on one event loop.

    A caller `join`s, waits for its `turn` to be first, may `nap` there (a caller with a
    smaller turn can get ahead meanwhile: after its nap it waits again) and must `leave`.
    """

    __slots__ = ("_heap", "_loop")

    def __init__(self) -> None:
        self._heap: list[tuple[Turn, int, Place]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def join(self) -> Place:
        """Queue the current call at `current_turn`; return its place."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # waiters of another loop can never be woken
            self._heap, self._loop = [], loop
        place = Place()
        heapq.heappush(self._heap, (current_turn(), next(_TICKETS), place))
        return place

    def first(self, place: Place) -> bool:
        """Whether ``place`` is served next."""
        return self._heap[0][2] is place

    @property
    def empty(self) -> bool:
        """Whether no caller waits."""
        return not self._heap

    async def turn(self, place: Place) -> None:
        """Wait until ``place`` is first."""
        while not self.first(place):
            await self.nap(place, None)

    async def nap(self, place: Place, seconds: float | None) -> None:
        """Sleep ``seconds`` (``None``: until woken); `leave` and `wake_first` wake the first."""
        loop = asyncio.get_running_loop()
        woken = place.woken = loop.create_future()
        timer = None if seconds is None else loop.call_later(seconds, _wake, woken)
        try:
            await woken
        finally:
            place.woken = None
            if timer is not None:
                timer.cancel()

    def leave(self, place: Place) -> None:
        """Take ``place`` out of the queue and wake the caller now first."""
        heap = self._heap
        if heap and heap[0][2] is place:
            heapq.heappop(heap)
        else:
            heap[:] = [entry for entry in heap if entry[2] is not place]
            heapq.heapify(heap)
        self.wake_first()

    def wake_first(self) -> None:
        """End the nap of the caller now first, if it naps."""
        if self._heap:
            _wake(self._heap[0][2].woken)


class Place:
    """A caller's place in a `Queue`: what wakes it from its nap."""

    __slots__ = ("woken",)

    def __init__(self) -> None:
        self.woken: asyncio.Future[None] | None = None


def _wake(woken: asyncio.Future[None] | None) -> None:
    if woken is not None and not woken.done():
        woken.set_result(None)


class RateLimiter(Limiter):
    """Hands out request slots at a `RateLimit`, shared by every task of a session.

    As strict as 2Chat's count: at most ``per_minute`` requests in any 60 s, each slot
    ``60 / per_minute`` s and a 3 % margin after the last (see `pacing`). A slot is checked
    when it is handed out (not booked ahead), so the pace holds in real time even after the
    event loop stalls. Waiters are served in their turns' order (`current_turn`); only the
    first of them sleeps. A 429 from 2Chat pauses every caller, not just the one that got
    it, and leaves no burst.

    It is used from one event loop at a time, and its state carries over to the next one:
    the pace holds across ``asyncio.run()`` calls, as asyncio's loops all tell time by
    ``time.monotonic()``.

    Args:
        limit: The budget to keep to.
    """

    __slots__ = ("_interval", "_paused_until", "_queue", "_tat", "_tolerance")

    def __init__(self, limit: RateLimit) -> None:
        self._interval, self._tolerance = pacing(limit)
        self._tat = -math.inf  # the next slot's time on the loop's clock: all free now
        self._paused_until = -math.inf
        self._queue = Queue()

    def _wait(self, now: float) -> float:
        """Return the seconds until a slot is free; ``<= 0``: take it now."""
        return max(self._paused_until - now, self._tat - self._tolerance - now)

    def _grant(self, now: float) -> None:
        # Up to `LATENESS` of a late wake-up keeps the schedule (else timers' lateness
        # would drift the pace below the budget); no more, or slots would bunch up.
        self._tat = max(self._tat, now - LATENESS) + self._interval

    async def acquire(self) -> None:
        """Wait for a slot; cancellable, and counted against no request timeout."""
        loop, queue = asyncio.get_running_loop(), self._queue
        place = queue.join()
        try:
            while True:
                await queue.turn(place)
                now = loop.time()
                wait = self._wait(now)
                if wait <= 0.0:
                    self._grant(now)
                    return
                await queue.nap(place, wait)  # a 429 meanwhile is seen on the next turn
        finally:
            queue.leave(place)

    def at(self, limit: RateLimit) -> RateLimiter:
        """Return a limiter at ``limit`` that keeps this one's schedule and pause."""
        other = RateLimiter(limit)
        other._tat, other._paused_until = self._tat, self._paused_until
        return other

    async def pause(self, seconds: float | None) -> None:
        """Hold every caller back after a 429, for ``seconds`` (or a default pause)."""
        until = asyncio.get_running_loop().time() + pause_seconds(seconds)
        self._paused_until = max(self._paused_until, until)
        # No burst when the pause ends: the next slot is its end, then the pace.
        self._tat = max(self._tat, until + self._tolerance)


def pause_seconds(seconds: float | None) -> float:
    """Return how long a 429 with ``Retry-After: seconds`` pauses a limiter."""
    return DEFAULT_429_PAUSE if seconds is None else min(seconds, MAX_RETRY_AFTER)


class _AccountLimiter(Limiter):
    """``rate_limit="account"``: a `RateLimiter` at the account's own limit, read on first use."""

    __slots__ = ("_account_limit", "_limiter")

    def __init__(self) -> None:
        self._limiter: RateLimiter | None = None
        self._account_limit: AccountLimit | None = None

    def bind(self, api_key_digest: str, account_limit: AccountLimit) -> None:
        """Keep ``account_limit``, read by the first `acquire`."""
        self._account_limit = account_limit

    async def acquire(self) -> None:
        """Wait for a slot of the account's budget, reading the budget first if needed."""
        if self._limiter is None:
            assert self._account_limit is not None, "bound by the session"
            limit = await self._account_limit()
            if self._limiter is None:  # another caller may have built it meanwhile
                self._limiter = RateLimiter(limit)
        await self._limiter.acquire()

    async def pause(self, seconds: float | None) -> None:
        """Hold every caller back after a 429 (before the budget is known: nothing to hold)."""
        if self._limiter is not None:
            await self._limiter.pause(seconds)


class _SharedFetch:
    """Turns ``fetch`` into an `AccountLimit`: one request for every concurrent caller.

    The request runs in its own task, so a caller cancelled while waiting does not cancel
    it for the others; a new one starts after a failure, or on another event loop.
    """

    __slots__ = ("_fetch", "_task")

    def __init__(self, fetch: AccountLimit) -> None:
        self._fetch = fetch
        self._task: asyncio.Task[RateLimit] | None = None

    async def __call__(self) -> RateLimit:
        """Return the account's limit, sharing a request already in flight."""
        task, loop = self._task, asyncio.get_running_loop()
        if task is None or task.get_loop() is not loop or _failed(task):
            task = self._task = loop.create_task(self._coroutine())
            # Read here too: a failure nobody waits for any more is not "never retrieved".
            task.add_done_callback(_failed)
        return await asyncio.shield(task)

    async def _coroutine(self) -> RateLimit:
        return await self._fetch()


def _failed(task: asyncio.Task[RateLimit]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
