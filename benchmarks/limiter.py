"""The rate limiters' own cost per request: in-process ``RateLimiter`` beside ``RedisRateLimit``.

Run from the repository root, with ``redis-server`` on ``PATH`` (Debian's package)::

    python -m benchmarks.limiter            # 20,000 acquires each
    python -m benchmarks.limiter --quick    # 500 each: a smoke run, its numbers mean little

A private ``redis-server`` (no persistence) is started on a free port of 127.0.0.1
(:func:`benchmarks.redis_server.running_redis`). Each limiter is given a budget it never
reaches (``per_minute=1e9``), so what is measured is the cost of deciding, not of waiting:
one ``acquire()`` after another, sequentially, in one task. It prints wall and CPU
microseconds per acquire; for ``RedisRateLimit`` that is one round trip to Redis and its
script (EVALSHA) per request.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.redis_server import running_redis
from twochat_async import RateLimit
from twochat_async._limit import RateLimiter
from twochat_async.redis import RedisRateLimit


async def per_acquire(limiter: RateLimiter | RedisRateLimit, calls: int) -> tuple[float, float]:
    """Return (wall, CPU) microseconds per ``acquire()`` over ``calls`` of them."""
    await limiter.acquire()  # warm-up: connections, the script's first load
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await limiter.acquire()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


async def measure(url: str, calls: int) -> list[tuple[str, float, float]]:
    """Measure both limiters (the shared one in Redis at ``url``); (name, wall us, CPU us) rows."""
    local = RateLimiter(RateLimit(1e9))
    shared = RedisRateLimit(url, per_minute=1e9)
    shared.bind("0" * 64)  # what a session does with its API key's digest
    try:
        rows = [("RateLimiter (in-process)", *await per_acquire(local, calls))]
        rows.append(("RedisRateLimit (local redis)", *await per_acquire(shared, calls)))
    finally:
        await shared.aclose()
    return rows


def main() -> None:
    """Start a private redis-server, measure, print one line per limiter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 acquires: a smoke run")
    calls = 500 if parser.parse_args().quick else 20_000
    with running_redis() as url:
        if url is None:
            raise SystemExit("redis-server is not installed: apt-get install redis-server")
        rows = asyncio.run(measure(url, calls))
    print(f"{'limiter':<30} {'wall us/acquire':>16} {'CPU us/acquire':>15}")
    for name, wall, cpu in rows:
        print(f"{name:<30} {wall:>16.1f} {cpu:>15.1f}")


if __name__ == "__main__":
    main()
