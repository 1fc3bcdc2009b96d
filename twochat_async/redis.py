"""One rate budget for every process and host that uses an API key, kept in Redis.

``pip install "twochat-async[redis]"``, then::

    limit = RedisRateLimit("redis://localhost:6379/0", per_minute=80)
    async with TwoChatSession(rate_limit=limit) as chat:
        ...

Admission is decided atomically in Redis by one Lua script, on Redis's clock (``TIME``),
with the schedule of `twochat_async._limit.pacing` (GCRA): each caller books the next
slot and sleeps locally until it comes. The Redis key is a hash of the API key (and
``name``): the key itself never reaches Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import AsyncGenerator
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ._limit import LATENESS, AccountLimit, Limiter, RateLimiter, pacing, pause_seconds
from ._loops import close_guard, close_with_loop
from ._loops import timeout as bounded
from ._wire import MAX_RETRY_AFTER, warn
from .errors import TwoChatError
from .models import RateLimit

# The public names of this module.
__all__ = ["RedisRateLimit"]

logger = logging.getLogger("twochat_async")

#: Connect and command timeouts of a client built from a URL, not redis-py's 5 s: an
#: unreachable Redis costs this once a second at most (a refused connection, a
#: millisecond). Shorter, processes starting together on a busy host time out.
REDIS_TIMEOUT = 0.5

#: The longest the limiter waits for one Redis round trip, whatever client it was given
#: (redis-py's own default is to wait for ever): a stalled Redis then costs a call this
#: once a second at most, as a failure does.
ROUND_TRIP_TIMEOUT = 1.0

#: The longest a cancelled caller spends giving its slot back: past it the slot is
#: wasted (one interval of the budget), and the cancellation goes on.
GIVE_BACK_TIMEOUT = 0.5

#: How many callers may queue on one budget, across every process, before a budget that
#: far ahead is taken as corrupt state rather than a queue (see `RedisRateLimit`): callers
#: book their slots as they come, so a large gather() legitimately books far ahead.
MAX_QUEUE = 1000

#: The furthest ahead a pause can be, in microseconds: the longest Retry-After honoured,
#: and a second for the callers' round trips.
_LONGEST_PAUSE = round((MAX_RETRY_AFTER + 1.0) * 1e6)

#: How long the per-process limit stands in after a Redis failure before Redis is tried
#: again.
FALLBACK_SECONDS = 1.0

# KEYS[1]: the budget's hash. ARGV: mode, interval and tolerance in microseconds, the
# booked slot (confirm) or pause (pause) or booked TAT (cancel), and the furthest ahead of
# now that a TAT and a pause can be. Times are integer microseconds of Redis's clock: skew
# between the callers' hosts does not matter. A budget further ahead (a bug, a clock
# fault, a stray write) is deleted: state of a budget no caller could have made.
# Returns {wait, slot, tat, reset}: the microseconds until the slot, the slot, the TAT it
# set, and 1 if the budget was deleted as corrupt.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local arg = tonumber(ARGV[4])
local ahead = tonumber(ARGV[5])
local longest_pause = tonumber(ARGV[6])
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
return {slot - now, slot, tat, reset}
"""


class RedisRateLimit(Limiter):
    """A rate limiter kept in Redis: one budget shared by every process using an API key.

    Pass it as ``TwoChatSession(rate_limit=...)``. Sessions with the same API key (and
    ``name``) share one budget, wherever they run; different keys have separate budgets.
    It keeps to the budget as strictly as `RateLimit` does in one process: at most
    ``per_minute`` requests in any 60 s, paced 3 % under the budget. A 429 pauses every
    process for its ``Retry-After`` (1 s without one).

    Every Redis round trip is bounded by the limiter (1 s), whatever client it is given:
    a stalled Redis counts as a failure (see ``on_error``). A budget in Redis further
    ahead than the longest pause plus 1,000 queued callers could put it (or a pause past
    the longest 2Chat can ask for) is taken as corrupt: it is reset, with a WARNING.

    Args:
        url: A ``redis://`` URL; the client built from it (short timeouts) is closed with
            the session.
        redis: A ``redis.asyncio.Redis`` client to use instead of a URL; never closed by us.
        per_minute: Requests per minute, or ``"account"`` to read the account's limit
            from ``info()`` on first use.
        burst: Requests that may go out back to back after an idle spell.
        name: Splits one API key's budget on purpose: sessions with different names
            have separate budgets.
        on_error: What a call does when Redis fails: ``"local"`` goes on under a
            per-process limit at the same rate (one WARNING per outage) until Redis
            answers again; ``"raise"`` raises `TwoChatError` before anything is sent.

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
        self._script: AsyncScript | None = None
        self._key: str | None = None
        self._account_limit: AccountLimit | None = None
        self._local: RateLimiter | None = None
        self._interval = self._tolerance = self._ahead = 0
        self._late = LATENESS
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
        key = f"twochat:budget:{key}"
        if self._key is not None and self._key != key:
            raise ValueError("This RedisRateLimit serves another API key; use one per API key.")
        self._key = key
        self._account_limit = account_limit

    def _adopt(self, limit: RateLimit) -> None:
        """Pace at ``limit`` (with our own burst)."""
        limit = RateLimit(limit.per_minute, self._burst)
        interval, tolerance = pacing(limit)
        self._interval, self._tolerance = round(interval * 1e6), round(tolerance * 1e6)
        # The furthest ahead a budget can be: the longest pause, then a queue of callers.
        self._ahead = round((MAX_RETRY_AFTER + tolerance + MAX_QUEUE * interval) * 1e6)
        self._late = max(interval / 2, LATENESS)
        self._local = RateLimiter(limit)

    async def acquire(self) -> None:
        """Wait for a slot of the shared budget; cancellable, counted against no timeout.

        Raises:
            TwoChatError: Redis failed and ``on_error="raise"``; nothing was sent.
        """
        if self._local is None:
            if self._account_limit is None:
                raise _unbound()
            limit = await self._account_limit()
            if self._local is None:  # another caller may have adopted it meanwhile
                self._adopt(limit)
        if time.monotonic() < self._fallback_until:
            return await self._fallback()
        try:
            wait, slot, tat = await self._run("book", 0)
            while wait > 0:
                booked = time.monotonic()
                try:
                    await asyncio.sleep(wait / 1e6)
                except asyncio.CancelledError:
                    # Give the slot back if it is still the last one booked; a Redis
                    # failure here must not replace the cancellation.
                    with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                        await self._run("cancel", tat, GIVE_BACK_TIMEOUT)
                    raise
                late = time.monotonic() - booked - wait / 1e6
                # Woken half a slot late or more (a stalled loop): sent now, it would
                # crowd the next slot's caller; book another. Else make sure no 429
                # paused the budget while this one slept.
                mode = "book" if late > self._late else "confirm"
                wait, slot, tat = await self._run(mode, slot)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return await self._fallback()
        self._recovered()
        return None

    async def pause(self, seconds: float | None) -> None:
        """Hold every process back after a 429, for ``seconds`` (or a default pause)."""
        wait = pause_seconds(seconds)
        if self._local is not None:
            await self._local.pause(seconds)
        try:
            await self._run("pause", round(wait * 1e6))
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc, raising=False)

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
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._owned[loop] = (client, close_with_loop(client.aclose))
        return client

    async def _run(
        self, mode: str, arg: int, timeout: float = ROUND_TRIP_TIMEOUT
    ) -> tuple[int, int, int]:
        """Run the script once, within ``timeout``: ``(wait, slot, tat)``.

        Raises:
            asyncio.TimeoutError: Redis did not answer in time.
            RedisError: Redis failed.
        """
        if self._key is None or self._local is None:
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
        ]
        async with bounded(timeout):
            answer: Any = await self._script(keys=[self._key], args=args, client=client)
        if int(answer[3]):
            warn(
                logger,
                "The shared rate limit's budget in Redis (%s) was further ahead than any "
                "caller could have set it (a clock fault, a bug, another writer?); it was "
                "reset.",
                self._key,
            )
        return int(answer[0]), int(answer[1]), int(answer[2])

    def _failed(self, exc: BaseException, *, raising: bool = True) -> None:
        what = type(exc).__name__
        if self._on_error == "raise" and raising:
            raise TwoChatError(
                f"The shared rate limit's Redis failed ({what}: {exc}); the request was not "
                "sent. Check that Redis is up, or use on_error='local'."
            ) from None
        self._fallback_until = time.monotonic() + FALLBACK_SECONDS
        if not self._outage:
            self._outage = True
            warn(
                logger,
                "Redis of the shared rate limit failed (%s: %s); each process keeps its own "
                "limit at the same rate until Redis answers again.",
                what,
                exc,
            )

    def _recovered(self) -> None:
        if self._outage:
            self._outage = False
            logger.warning("Redis of the shared rate limit answers again; the budget is shared.")

    async def _fallback(self) -> None:
        local = self._local
        assert local is not None  # set with the rate, before any Redis call
        await local.acquire()


def _unbound() -> TwoChatError:
    return TwoChatError("RedisRateLimit is used outside a TwoChatSession; pass it as rate_limit=.")
