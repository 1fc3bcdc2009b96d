"""The in-process limiter holds the budget as 2Chat counts it: on its clock, after jitter."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from conftest import API_KEY
from standin import stand_in

from twochat_async import RateLimit, TwoChatSession
from twochat_async._limit import pacing


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
