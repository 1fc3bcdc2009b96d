"""Client-side rate limiting: the interface a session's limiter meets, and the in-process one.

A session asks its limiter for a slot before each request, and tells it about every 429.
`RateLimiter` keeps its bucket in the process, shared by every task of one session. A
limiter shared by several processes (kept in Redis, say) implements `Limiter` too: both
of its methods are awaitable, as such a limiter talks to its store for each.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol, runtime_checkable

from ._wire import DEFAULT_429_PAUSE, MAX_RETRY_AFTER
from .models import RateLimit

# The public names of this module; the package exports them (see __init__.py).
__all__ = ["Limiter"]


@runtime_checkable
class Limiter(Protocol):
    """What a session needs of a rate limiter; pass one as ``rate_limit=``.

    Two optional methods are used when present: ``take() -> bool``, a synchronous fast
    path that takes a free slot without a coroutine (``acquire()`` is awaited only when
    it returns ``False``), and ``async aclose()``, awaited when the session is closed.
    """

    async def acquire(self) -> None:
        """Wait until a request may be sent; cancellable, and counted against no timeout."""

    async def pause(self, seconds: float | None) -> None:
        """Hold every caller back after a 429, for ``seconds`` (``None``: 2Chat gave none)."""


class RateLimiter:
    """Hands out request slots at a `RateLimit`, shared by every task of a session.

    A token bucket of ``burst`` tokens refilled at the limit's rate, checked when a slot
    is handed out (not booked ahead), so the pace holds in real time even after the event
    loop stalls. Waiters queue in order on one lock; only the first of them sleeps. A 429
    from 2Chat empties the bucket and pauses every caller, not just the one that got it.

    It is used from one event loop at a time, and its state carries over to the next one:
    the pace holds across ``asyncio.run()`` calls, as asyncio's loops all tell time by
    ``time.monotonic()``.

    Args:
        limit: The budget to keep to.
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

    async def pause(self, seconds: float | None) -> None:
        """Hold every caller back after a 429, for ``seconds`` (or a default pause)."""
        wait = DEFAULT_429_PAUSE if seconds is None else min(seconds, MAX_RETRY_AFTER)
        until = asyncio.get_running_loop().time() + wait
        self._paused_until = max(self._paused_until, until)
        self._tokens = min(self._tokens, 0.0)
