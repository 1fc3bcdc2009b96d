"""Memory per call in flight: N calls held open by the stand-in, each client in a fresh
child; the resident set's growth, then what ``tracemalloc`` sees (docs/performance.md)."""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc

from benchmarks.common import GROUP_ID, SLOW_GROUP, Result, child, log, table
from benchmarks.cpu import CLIENTS, TITLES
from benchmarks.servers import Servers, StandIn

#: Connections in each client's pool (the SDK's and aiohttp's default).
POOL = 100


def rss_bytes() -> int:
    """This process's resident set now (Linux's /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def in_flight(job: Result) -> Result:
    """In a child: memory per call with ``job["calls"]`` calls of ``job["client"]`` in flight."""
    n, standin = job["calls"], StandIn(job["url"])

    async def main() -> Result:
        async with CLIENTS[job["client"]](standin.url) as call:
            await call(GROUP_ID)  # imports done, pool made
            sizes = []
            for traced in (False, True):
                expected = await standin.reached() + min(n, POOL)
                gc.collect()
                if traced:
                    tracemalloc.start()
                before = rss_bytes()
                tasks = [asyncio.create_task(call(SLOW_GROUP)) for _ in range(n)]
                await standin.reached(expected)
                sizes.append(tracemalloc.get_traced_memory()[0] if traced else rss_bytes() - before)
                tracemalloc.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return {"rss_kib_per_call": sizes[0] / 1024 / n, "traced_kib_per_call": sizes[1] / 1024 / n}

    return asyncio.run(main())


def memory(servers: Servers, *, calls: int) -> Result:
    """The memory section: the SDK and raw aiohttp, each in a fresh child."""
    out: Result = {"calls": calls, "pool": POOL}
    servers.standin.reset(None)  # no budget: every held call must reach it
    for name in ("sdk", "aiohttp"):
        log(f"memory: {calls} calls of {name} in flight")
        job = {"client": name, "calls": calls, "url": servers.standin.url}
        out[name] = child("memory.in_flight", job)
    return out


def memory_report(out: Result) -> list[str]:
    """The memory section as text lines."""
    rows = [
        [
            TITLES[name],
            f"{out[name]['rss_kib_per_call']:.2f}",
            f"{out[name]['traced_kib_per_call']:.2f}",
        ]
        for name in ("sdk", "aiohttp")
    ]
    return [
        f"memory per call in flight: {out['calls']:,} calls held open, {out['pool']} connections",
        *table(["client", "RSS KiB/call", "tracemalloc KiB/call"], rows),
    ]
