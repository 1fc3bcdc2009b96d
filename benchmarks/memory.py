"""Memory per call in flight: N calls held open by a server that does not answer yet.

Each client runs in a fresh child. The stand-in holds every reservation of
``SLOW_GROUP``; the calls beyond the pool's 100 connections wait for one, as a user's
would. Once the stand-in has the 100 held requests, every call has started (the others
queue at their first step) and memory is read: the resident set's growth (untraced),
then, for a second batch, what ``tracemalloc`` sees still allocated.
"""

from __future__ import annotations

import asyncio
import gc
import os
import tracemalloc
from typing import Any

from benchmarks.common import GROUP_ID, SLOW_GROUP, Result, child, log, table
from benchmarks.cpu import CLIENTS, TITLES, Call
from benchmarks.servers import Servers, counts

#: Connections in each client's pool (the SDK's and aiohttp's default).
POOL = 100


def rss_bytes() -> int:
    """This process's resident set now (Linux's /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _held(call: Call, n: int, url: str, probe: Any) -> list[asyncio.Task[Any]]:
    """Start ``n`` held calls; return their tasks once the server has the pool's share."""
    expected = (await counts(probe, url))[0] + min(n, POOL)
    tasks = [asyncio.create_task(call(SLOW_GROUP)) for _ in range(n)]
    while (await counts(probe, url))[0] < expected:  # noqa: ASYNC110 - the count is in the server
        await asyncio.sleep(0.02)
    return tasks


def in_flight(job: Result) -> Result:
    """In a child: memory per call with ``job["calls"]`` calls of ``job["client"]`` in flight."""
    import aiohttp

    n, url = job["calls"], job["url"]

    async def main() -> Result:
        async with CLIENTS[job["client"]](url) as call, aiohttp.ClientSession() as probe:
            await call(GROUP_ID)  # imports done, pool made
            sizes = []
            for traced in (False, True):
                gc.collect()
                if traced:
                    tracemalloc.start()
                before = rss_bytes()
                tasks = await _held(call, n, url, probe)
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
        out[name] = child(
            "memory.in_flight", {"client": name, "calls": calls, "url": servers.standin.url}
        )
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
