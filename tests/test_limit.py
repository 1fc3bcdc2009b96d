"""Rate limiting: the in-process RateLimiter, and any Limiter given to a session."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import time
from typing import Any

import pytest
from conftest import API_KEY, refusal
from standin import stand_in

from twochat_async import Limiter, RateLimit, RateLimitError, TwoChatSession
from twochat_async._limit import RateLimiter, pacing
from twochat_async.testing import FakeGroup, FakeTwoChat

# -- RateLimiter --------------------------------------------------------------------------


async def grant_times(limiter: RateLimiter, calls: int) -> list[float]:
    """Acquire ``calls`` slots concurrently; return when each was granted, in order."""
    loop = asyncio.get_running_loop()
    granted: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        granted.append(loop.time())

    await asyncio.gather(*(one() for _ in range(calls)))
    return granted


async def test_acquire_paces_waiters_evenly() -> None:
    """At 600 a minute (burst 1), 6 waiters are granted one every 0.1 s."""
    granted = await grant_times(RateLimiter(RateLimit(600)), 6)
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    assert min(gaps) >= 0.09
    assert granted[-1] - granted[0] >= 0.45


async def test_a_burst_goes_out_at_once_then_the_pace_holds() -> None:
    """RateLimit(60, burst=5): five slots at once although the pace is one a second."""
    limiter = RateLimiter(RateLimit(60, burst=5))
    granted = await grant_times(limiter, 5)
    assert granted[-1] - granted[0] < 0.5
    with pytest.raises(asyncio.TimeoutError):  # the sixth waits the pace's second
        await asyncio.wait_for(limiter.acquire(), 0.3)


async def test_a_stalled_event_loop_releases_no_burst() -> None:
    """After the loop stalls, queued callers still go out at the pace, not all at once."""
    limiter = RateLimiter(RateLimit(600))  # one every 0.1 s
    waiting = asyncio.create_task(grant_times(limiter, 8))
    await asyncio.sleep(0.15)  # two slots handed out by now
    time.sleep(0.5)  # noqa: ASYNC251 - the stall under test: the loop is blocked
    after_stall = (await waiting)[2:]
    gaps = [b - a for a, b in itertools.pairwise(after_stall)]
    # At most one back-to-back pair (the one token of lateness kept), then the pace.
    assert sum(gap < 0.05 for gap in gaps) <= 1
    assert after_stall[-1] - after_stall[0] >= 0.4


@pytest.mark.parametrize(("seconds", "held"), [(0.4, 0.4), (None, 1.0)])
async def test_a_pause_holds_every_caller(seconds: float | None, held: float) -> None:
    """After pause(s) (1 s when 2Chat said nothing), no slot is handed out for that long."""
    limiter = RateLimiter(RateLimit(6000, burst=100))
    await limiter.pause(seconds)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(limiter.acquire(), held - 0.1)


async def test_a_waiter_can_be_cancelled_and_the_next_one_served() -> None:
    """Cancelling a task waiting for a slot ends its wait; the queue carries on."""
    limiter = RateLimiter(RateLimit(600))
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.02)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(limiter.acquire(), 1)


async def test_concurrent_reserves_within_the_budget_meet_no_429() -> None:
    """300 concurrent reserve() at the fake's budget: no 429 at all, at >= 90 % of the rate."""
    numbers = [f"+1213{n:07d}" for n in range(300)]
    fake = FakeTwoChat(API_KEY, groups=[FakeGroup(id="big", country="US", numbers=numbers)])
    # 100 a second, bursts of 10 at most: fast enough to show the pace, slow enough that a
    # loaded 2-core machine (the fake serves in this same process) keeps up with it.
    per_second = 100
    fake.set_budget(per_second // 10, per=0.1)
    async with (
        fake as base_url,
        TwoChatSession(API_KEY, base_url=base_url, rate_limit=per_second * 60) as chat,
    ):
        started = time.monotonic()
        results = await asyncio.gather(*(chat.reserve("big") for _ in numbers))
        elapsed = time.monotonic() - started
    assert len({r.uuid for r in results}) == 300
    assert fake.rate_limited == 0
    assert 300 / elapsed >= 0.9 * per_second


async def test_without_the_limiter_the_same_load_trips_the_budget() -> None:
    """The control for the test above: without rate_limit the fake does answer 429s."""
    numbers = [f"+1213{n:07d}" for n in range(100)]
    fake = FakeTwoChat(API_KEY, groups=[FakeGroup(id="big", country="US", numbers=numbers)])
    fake.set_budget(25, per=0.1)
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url, max_retries=0) as chat:
        results = await asyncio.gather(
            *(chat.reserve("big") for _ in numbers), return_exceptions=True
        )
    assert fake.rate_limited > 0
    assert any(isinstance(r, RateLimitError) for r in results)


# -- a Limiter of one's own ---------------------------------------------------------------


class CountingLimiter(Limiter):
    """A Limiter that grants every slot and records how the session uses it."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def acquire(self) -> None:
        self.calls.append("acquire")

    async def pause(self, seconds: float | None) -> None:
        self.calls.append(("pause", seconds))

    def bind(self, api_key_digest: str, account_limit: Any) -> None:
        self.calls.append(("bind", api_key_digest))

    async def aclose(self) -> None:
        self.calls.append("aclose")


class OnlyTwoMethods:
    """Not a Limiter: it lacks bind() and aclose()."""

    async def acquire(self) -> None:
        """Grant at once."""

    async def pause(self, seconds: float | None) -> None:
        """Do nothing."""


class Inheriting(Limiter):
    """A Limiter defining only the two methods it must; bind() and aclose() are inherited."""

    async def acquire(self) -> None:
        """Grant at once."""

    async def pause(self, seconds: float | None) -> None:
        """Do nothing."""


def test_a_limiter_defines_the_four_methods_or_inherits_two() -> None:
    """Limiter is runtime-checkable: ours, the in-process ones and a subclass are ones."""
    assert isinstance(CountingLimiter(), Limiter)
    assert isinstance(RateLimiter(RateLimit(60)), Limiter)
    assert isinstance(Inheriting(), Limiter)
    assert not isinstance(OnlyTwoMethods(), Limiter)
    assert not isinstance(RateLimit(60), Limiter)


async def test_a_subclass_inherits_bind_and_aclose_that_do_nothing(fake: FakeTwoChat) -> None:
    """A Limiter subclass with acquire() and pause() alone serves a session."""
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=Inheriting()) as chat:
        await chat.did_types()
    assert len(fake.requests) == 1


def test_an_object_with_acquire_but_not_the_whole_interface_is_refused() -> None:
    """Without bind() and aclose(), the session refuses it saying how to fix it."""
    with pytest.raises(ValueError, match=r"subclass twochat_async\.Limiter"):
        TwoChatSession(API_KEY, rate_limit=OnlyTwoMethods())  # type: ignore[arg-type]


async def test_a_session_awaits_its_limiter_for_each_request_429_and_close(
    fake: FakeTwoChat,
) -> None:
    """acquire() before each request, pause(Retry-After) after a 429, aclose() once on close."""
    limiter = CountingLimiter()
    fake.script(refusal(429, "slow down", headers={"Retry-After": "0"}))
    chat = TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limiter, max_retries=1)
    async with chat:
        await chat.regions("US")
        await chat.did_types()
    await chat.close()
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    assert limiter.calls == [
        ("bind", digest),
        "acquire",
        ("pause", 0.0),
        "acquire",
        "acquire",
        "aclose",
    ]
    assert len(fake.requests) == 3


# -- The in-process limiter holds the budget as 2Chat counts it: on its clock, after jitter ---
def most_in_any_window(times: list[float], window: float) -> int:
    """The most arrivals in any ``window`` seconds (a closed interval)."""
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] > window:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_most_in_any_window_counts_a_closed_interval() -> None:
    """The helper the tests below rely on counts the busiest window, ends included."""
    assert most_in_any_window([0.0, 0.5, 1.0, 1.6, 1.7], 1.0) == 3
    assert most_in_any_window([], 1.0) == 0


async def test_paced_at_the_limit_meets_no_429_from_a_sliding_window() -> None:
    """80 calls at rate_limit=600 against 10-in-any-1-s: no 429, >= 95 % of the budget."""
    with stand_in(10, window=1.0) as server:
        async with TwoChatSession(API_KEY, base_url=server.base_url, rate_limit=600) as chat:
            started = time.monotonic()
            await asyncio.gather(*(chat.did_types() for _ in range(80)))
            elapsed = time.monotonic() - started
    assert server.refused == 0
    assert len(server.times()) == 80
    # 80 slots of 0.1 s, 79 intervals of them after the first: >= 95 % of 10 a second.
    assert elapsed <= 79 * 0.1 / 0.95 + 0.5


@pytest.mark.parametrize(
    ("per_minute", "burst"), [(80, 1), (80, 5), (30, 3), (600, 40), (7.5, 1), (60, 10**6)]
)
def test_the_pace_keeps_any_sixty_seconds_within_the_budget(per_minute: float, burst: int) -> None:
    """A burst, then one slot per interval: at most per_minute in 60 s, >= 95 % used."""
    interval, tolerance = pacing(RateLimit(per_minute, burst))
    at_once = round(tolerance / interval) + 1
    in_sixty_seconds = at_once + math.floor(60.0 / interval)
    assert in_sixty_seconds <= per_minute
    if burst == 1:
        assert 60.0 / interval >= 0.95 * math.floor(per_minute)


async def test_paced_calls_never_fill_a_window_past_its_share() -> None:
    """rate_limit=1200: any 1 s holds at most 20 calls, any 0.05 s (one slot) at most 2."""
    with stand_in(None) as server:
        async with TwoChatSession(API_KEY, base_url=server.base_url, rate_limit=1200) as chat:
            await chat.did_types()  # opens the connection: its setup is not pacing jitter
            await asyncio.gather(*(chat.did_types() for _ in range(50)))
    times = server.times()[1:]
    assert most_in_any_window(times, 1.0) <= 20
    assert most_in_any_window(times, 0.05) <= 2
